//! Reads that can hang, bounded in time: a file under `/etc/pve` when pmxcfs hangs (corosync
//! lost quorum, the FUSE daemon stuck) — the one file system a Proxmox VE node's agent reads
//! that is served by a daemon rather than by the kernel from memory or a local disk.
//!
//! A blocked read(2) cannot be interrupted or killed, so such reads run on a reader thread and
//! the collector waits for the answer at most `timeout`. A read that takes longer becomes an
//! error naming the file and the bound, and its subtree is *stuck*: nothing under it is read
//! again (each such read is an error naming the file still blocking it) until the blocked read
//! returns, which is noticed at the next read of the subtree; then the subtree is read again.
//! So a hung pmxcfs costs one blocked thread, never one per cycle.
//!
//! Everything else is read directly: `/proc`, `/sys` and `/run` (~1500 files a fast cycle) are
//! the kernel's, answered from memory, and a hand-off per file would cost more than the read;
//! `/etc`, `/usr` and `/var` are on the root disk the agent's own binary pages in from — if it
//! hangs, a reader thread would not save the agent. Each reader thread costs wake-ups on every
//! read and resident memory, on every node, so there is one only where a hang is a known event.
//! The whole collection runs off the link's thread (`run.rs`) anyway, so even a read that hangs
//! elsewhere stops only the collections, not the link, and the run loop logs which file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How long a guarded read or a command may take unless configured otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Stack of a reader thread.
const READER_STACK: usize = 128 * 1024;

/// What is at a path, as far as the collector cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Missing,
    Dir,
    Other,
}

/// The file system as the reader threads see it; a stand-in in tests.
pub trait Files: Send + Sync + 'static {
    fn read(&self, path: &Path) -> Result<Vec<u8>>;
    fn kind(&self, path: &Path) -> Kind;
}

/// The real file system.
pub struct RealFiles;

impl Files for RealFiles {
    fn read(&self, path: &Path) -> Result<Vec<u8>> {
        super::read_bytes(path)
    }

    fn kind(&self, path: &Path) -> Kind {
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => Kind::Dir,
            Ok(_) => Kind::Other,
            Err(_) => Kind::Missing,
        }
    }
}

/// The subtree `relative` (a path under the collector's root, no leading `/`) is read through,
/// or `None` for a file read directly: only pmxcfs (`etc/pve`) has a reader thread.
pub fn subtree(relative: &str) -> Option<&str> {
    let pmxcfs = "etc/pve";
    let under = relative
        .strip_prefix(pmxcfs)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    under.then_some(pmxcfs)
}

/// The reader threads, one per subtree met so far, and which of them are stuck.
pub struct Guard {
    files: Arc<dyn Files>,
    timeout: Duration,
    readers: HashMap<String, Reader>,
    /// Reader threads started since the collector was made (one per subtree, plus one more
    /// each time a reader thread died).
    started: u64,
}

enum Job {
    Read(PathBuf),
    Kind(PathBuf),
}

enum Answer {
    Read(Result<Vec<u8>>),
    Kind(Kind),
}

struct Reader {
    jobs: mpsc::Sender<Job>,
    answers: mpsc::Receiver<Answer>,
    /// The read that did not finish in time, and since when; while set, the thread is
    /// blocked in it and nothing else is asked of it.
    stuck: Option<(PathBuf, Instant)>,
}

impl Guard {
    pub fn new(files: Arc<dyn Files>, timeout: Duration) -> Guard {
        Guard {
            files,
            timeout,
            readers: HashMap::new(),
            started: 0,
        }
    }

    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    pub fn set_files(&mut self, files: Arc<dyn Files>) {
        self.files = files;
        self.readers.clear();
    }

    /// Reader threads started so far.
    pub fn readers_started(&self) -> u64 {
        self.started
    }

    /// The subtrees whose reader is blocked, each with the file it is blocked in.
    pub fn stuck(&self) -> Vec<(String, PathBuf)> {
        let mut out: Vec<_> = self
            .readers
            .iter()
            .filter_map(|(key, r)| r.stuck.as_ref().map(|(p, _)| (key.clone(), p.clone())))
            .collect();
        out.sort();
        out
    }

    /// Reads the whole file `path` on `subtree`'s reader, waiting at most the timeout.
    pub fn read(&mut self, subtree: &str, path: &Path) -> Result<Vec<u8>> {
        match self.ask(subtree, Job::Read(path.to_owned())) {
            Ok(Answer::Read(result)) => result,
            Ok(Answer::Kind(_)) => Err(read_error(path, "reader thread answered out of turn")),
            Err(message) => Err(read_error(path, &message)),
        }
    }

    /// What is at `path`, asked of `subtree`'s reader; an error when it cannot say in time.
    pub fn kind(&mut self, subtree: &str, path: &Path) -> Result<Kind> {
        match self.ask(subtree, Job::Kind(path.to_owned())) {
            Ok(Answer::Kind(kind)) => Ok(kind),
            Ok(Answer::Read(_)) => Err(read_error(path, "reader thread answered out of turn")),
            Err(message) => Err(read_error(path, &message)),
        }
    }

    fn ask(&mut self, subtree: &str, job: Job) -> Result<Answer, String> {
        let path = match &job {
            Job::Read(path) | Job::Kind(path) => path.clone(),
        };
        let timeout = self.timeout;
        let reader = self.reader(subtree)?;
        if let Some((blocked, since)) = &reader.stuck {
            match reader.answers.try_recv() {
                Ok(_) => {
                    log::warn!(
                        "{} answered after {} s; reading /{subtree} again",
                        blocked.display(),
                        since.elapsed().as_secs()
                    );
                    reader.stuck = None;
                }
                Err(mpsc::TryRecvError::Empty) => {
                    return Err(format!(
                        "not read: {} has not answered for {} s (a hung file system?); \
                         nothing under /{subtree} is read until it does",
                        blocked.display(),
                        since.elapsed().as_secs()
                    ));
                }
                Err(mpsc::TryRecvError::Disconnected) => {
                    self.readers.remove(subtree);
                    return Err("the reader thread ended".into());
                }
            }
        }
        if reader.jobs.send(job).is_err() {
            self.readers.remove(subtree);
            return Err("the reader thread ended".into());
        }
        match reader.answers.recv_timeout(timeout) {
            Ok(answer) => Ok(answer),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                log::error!(
                    "{} did not answer within {} s (a hung file system?); its reader thread \
                     stays blocked, and nothing else under /{subtree} is read until it answers",
                    path.display(),
                    timeout.as_secs_f64()
                );
                reader.stuck = Some((path, Instant::now()));
                Err(format!(
                    "no answer within {} s (a hung file system?); nothing under /{subtree} is \
                     read until it answers",
                    timeout.as_secs_f64()
                ))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                self.readers.remove(subtree);
                Err("the reader thread ended".into())
            }
        }
    }

    /// `subtree`'s reader, started on first use.
    fn reader(&mut self, subtree: &str) -> Result<&mut Reader, String> {
        if !self.readers.contains_key(subtree) {
            let (jobs, inbox) = mpsc::channel::<Job>();
            let (outbox, answers) = mpsc::channel();
            let files = self.files.clone();
            std::thread::Builder::new()
                .name(format!("read /{subtree}"))
                // It only opens and reads files into a Vec; a blocked one holds little.
                .stack_size(READER_STACK)
                .spawn(move || {
                    for job in inbox {
                        let answer = match job {
                            Job::Read(path) => Answer::Read(files.read(&path)),
                            Job::Kind(path) => Answer::Kind(files.kind(&path)),
                        };
                        if outbox.send(answer).is_err() {
                            return;
                        }
                    }
                })
                .map_err(|e| format!("cannot start a reader thread: {e}"))?;
            self.started += 1;
            self.readers.insert(
                subtree.to_owned(),
                Reader {
                    jobs,
                    answers,
                    stuck: None,
                },
            );
        }
        self.readers
            .get_mut(subtree)
            .ok_or_else(|| "no reader thread".to_owned())
    }
}

fn read_error(path: &Path, message: &str) -> Error {
    Error::Read {
        path: path.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::TimedOut, message.to_owned()),
    }
}

/// Files that answer at once, except the ones a test blocks until it releases them.
#[cfg(test)]
pub mod testing {
    use super::*;
    use std::collections::HashSet;
    use std::sync::{Condvar, Mutex};

    #[derive(Default)]
    pub struct BlockingFiles {
        state: Mutex<State>,
        changed: Condvar,
    }

    #[derive(Default)]
    struct State {
        blocked: HashSet<PathBuf>,
        /// Reads (and kind probes) started, per path.
        calls: HashMap<PathBuf, usize>,
    }

    impl BlockingFiles {
        pub fn block(&self, path: &Path) {
            self.state.lock().unwrap().blocked.insert(path.to_owned());
        }

        pub fn release(&self, path: &Path) {
            self.state.lock().unwrap().blocked.remove(path);
            self.changed.notify_all();
        }

        pub fn calls(&self, path: &Path) -> usize {
            *self.state.lock().unwrap().calls.get(path).unwrap_or(&0)
        }

        fn wait(&self, path: &Path) {
            let mut state = self.state.lock().unwrap();
            *state.calls.entry(path.to_owned()).or_default() += 1;
            while state.blocked.contains(path) {
                state = self.changed.wait(state).unwrap();
            }
        }
    }

    impl Files for BlockingFiles {
        fn read(&self, path: &Path) -> Result<Vec<u8>> {
            self.wait(path);
            RealFiles.read(path)
        }

        fn kind(&self, path: &Path) -> Kind {
            self.wait(path);
            RealFiles.kind(path)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::BlockingFiles;
    use super::*;

    #[test]
    fn only_pmxcfs_is_read_through_a_reader_thread() {
        assert_eq!(subtree("proc/stat"), None);
        assert_eq!(subtree("sys/class/net/eth0/bridge"), None);
        assert_eq!(subtree("var/run/qemu-server/100.pid"), None);
        assert_eq!(subtree("run/qemu-server/100.pid"), None);
        assert_eq!(subtree("var/lib/pve-manager/jobs/x.json"), None);
        assert_eq!(subtree("etc/hostname"), None);
        assert_eq!(subtree("etc/pve-other/x"), None);
        assert_eq!(subtree("etc/pve/.vmlist"), Some("etc/pve"));
        assert_eq!(subtree("etc/pve/qemu-server/100.conf"), Some("etc/pve"));
        assert_eq!(subtree("etc/pve"), Some("etc/pve"));
    }

    fn tree() -> (PathBuf, PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "pm-guard-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(dir.join("etc/pve")).unwrap();
        let stuck = dir.join("etc/pve/.vmlist");
        let other = dir.join("etc/pve/storage.cfg");
        std::fs::write(&stuck, "vmlist\n").unwrap();
        std::fs::write(&other, "storage\n").unwrap();
        (dir, stuck, other)
    }

    #[test]
    fn a_hung_read_times_out_blocks_its_subtree_only_and_recovers_when_it_returns() {
        let (dir, stuck, other) = tree();
        let files = Arc::new(BlockingFiles::default());
        // The read never returns until released, so the (short) bound always passes first.
        let mut guard = Guard::new(files.clone(), Duration::from_millis(20));
        files.block(&stuck);

        let err = guard.read("etc/pve", &stuck).unwrap_err().to_string();
        assert!(err.contains(&stuck.display().to_string()), "{err}");
        assert!(err.contains("no answer within 0.02 s"), "{err}");
        assert_eq!(guard.stuck(), vec![("etc/pve".into(), stuck.clone())]);

        // While it is stuck nothing else under /etc/pve is asked of any thread: no second
        // reader, no second blocked read; the error names the file that blocks.
        for _ in 0..5 {
            let err = guard.read("etc/pve", &other).unwrap_err().to_string();
            assert!(err.contains(&other.display().to_string()), "{err}");
            assert!(
                err.contains(&format!("{} has not answered", stuck.display())),
                "{err}"
            );
            assert!(guard.kind("etc/pve", &other).is_err());
            assert!(guard.read("etc/pve", &stuck).is_err());
        }
        assert_eq!(files.calls(&stuck), 1);
        assert_eq!(files.calls(&other), 0);
        assert_eq!(guard.readers_started(), 1);

        // Another subtree has its own reader and is not held up.
        let hostname = dir.join("etc/hostname");
        std::fs::write(&hostname, "pve1\n").unwrap();
        assert_eq!(guard.read("etc/hostname", &hostname).unwrap(), b"pve1\n");
        assert_eq!(guard.readers_started(), 2);

        // Released, the subtree is read again (once the late answer is in), by the same thread.
        files.release(&stuck);
        let deadline = Instant::now() + Duration::from_secs(60);
        let bytes = loop {
            match guard.read("etc/pve", &other) {
                Ok(bytes) => break bytes,
                Err(e) if Instant::now() < deadline => {
                    assert!(e.to_string().contains("has not answered"), "{e}");
                    std::thread::yield_now();
                }
                Err(e) => panic!("still stuck: {e}"),
            }
        };
        assert_eq!(bytes, b"storage\n");
        assert!(guard.stuck().is_empty());
        assert_eq!(guard.read("etc/pve", &stuck).unwrap(), b"vmlist\n");
        assert_eq!(
            guard.kind("etc/pve", &dir.join("etc/pve")).unwrap(),
            Kind::Dir
        );
        assert_eq!(
            guard.kind("etc/pve", &dir.join("etc/pve/nope")).unwrap(),
            Kind::Missing
        );
        assert_eq!(guard.readers_started(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_file_is_still_not_found_through_the_guard() {
        let mut guard = Guard::new(Arc::new(RealFiles), DEFAULT_TIMEOUT);
        let err = guard
            .read("etc/pve", Path::new("/nonexistent/etc/pve/.vmlist"))
            .unwrap_err();
        let Error::Read { source, .. } = err else {
            panic!("{err}")
        };
        assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
    }
}
