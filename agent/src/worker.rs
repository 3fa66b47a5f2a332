//! The collector's own thread: collections run here, off the loop that drives the link, so a
//! collection stuck in a file or a command never holds up heartbeats, acknowledgements,
//! reconnects or a stop.
//!
//! The run loop hands over "collect a fast/medium/slow sample stamped T"; the thread owns the
//! `Collector`, collects, turns the sample into its push text and notifies a `Signal` that the
//! loop's one `poll` watches. Requests are served one at a time in the order given, so samples
//! reach the spool in the order they were due. At most one collection of a kind is ever
//! requested: one that is due while the previous of its kind has not finished is skipped,
//! counted, and logged once per stall with the file or command the collector is in.
//!
//! The thread is never joined: a stop does not wait for a collection stuck in a read that
//! cannot be interrupted (process exit ends it).

use std::sync::mpsc;
use std::sync::Arc;

use common::events::MetricKind;
use common::sample::SourceError;

use crate::collect::{Activity, Collector};
use crate::error::{Error, Result};
use crate::wake::Signal;

/// A sample collected and ready for the spool.
#[derive(Debug)]
pub struct Collected {
    pub kind: MetricKind,
    /// The `MetricPush` JSON text.
    pub payload: String,
}

struct Request {
    kind: MetricKind,
    collected_at: String,
    errors: Vec<SourceError>,
}

/// The collector's thread as the run loop sees it.
pub struct Collections {
    requests: mpsc::Sender<Request>,
    collected: mpsc::Receiver<Collected>,
    signal: Arc<Signal>,
    activity: Activity,
    /// Per kind: requested and not finished yet.
    busy: [bool; 3],
    /// Per kind: skipped since the agent started.
    skipped: [u64; 3],
    /// Per kind: a skip has been logged in the current stall.
    stalled: [bool; 3],
}

impl Collections {
    /// Starts the thread that owns `collector`.
    pub fn start(mut collector: Collector) -> Result<Collections> {
        let (requests, inbox) = mpsc::channel::<Request>();
        let (outbox, collected) = mpsc::channel();
        let signal = Arc::new(Signal::new().map_err(|e| thread_error(&e))?);
        let activity = collector.activity();
        let notify = signal.clone();
        std::thread::Builder::new()
            .name("collector".into())
            .spawn(move || {
                for request in inbox {
                    let payload = collect(&mut collector, request.kind, &request);
                    let done = Collected {
                        kind: request.kind,
                        payload,
                    };
                    if outbox.send(done).is_err() {
                        return;
                    }
                    notify.notify();
                }
            })
            .map_err(|e| thread_error(&e))?;
        Ok(Collections {
            requests,
            collected,
            signal,
            activity,
            busy: [false; 3],
            skipped: [0; 3],
            stalled: [false; 3],
        })
    }

    /// Notified each time a sample is ready (for `wake::wait`).
    pub fn signal(&self) -> &Signal {
        &self.signal
    }

    /// Whether a collection of `kind` was requested and has not finished.
    pub fn is_busy(&self, kind: MetricKind) -> bool {
        self.busy[kind as usize]
    }

    /// The file or command the collector last started.
    pub fn activity(&self) -> String {
        self.activity.get()
    }

    /// Samples of `kind` skipped because the previous one had not finished.
    pub fn skipped(&self, kind: MetricKind) -> u64 {
        self.skipped[kind as usize]
    }

    /// Asks for a `kind` sample stamped with what `collected_at` gives, carrying `errors` too,
    /// unless the previous one of its kind is still being collected: then this one is
    /// skipped (counted, and logged once per stall). Whether it was asked for.
    pub fn request(
        &mut self,
        kind: MetricKind,
        collected_at: impl FnOnce() -> String,
        errors: Vec<SourceError>,
    ) -> bool {
        let slot = kind as usize;
        if self.busy[slot] {
            self.skipped[slot] += 1;
            if !std::mem::replace(&mut self.stalled[slot], true) {
                log::warn!(
                    "skipping the {} sample due now: the previous one is still being \
                     collected (in {}); {} {} samples skipped since the agent started",
                    kind.as_str(),
                    self.activity.get(),
                    self.skipped[slot],
                    kind.as_str()
                );
            }
            return false;
        }
        let request = Request {
            kind,
            collected_at: collected_at(),
            errors,
        };
        if self.requests.send(request).is_err() {
            // The thread is gone (it panicked): nothing will be collected again.
            log::error!(
                "the collector thread has ended; no {} sample",
                kind.as_str()
            );
            return false;
        }
        self.busy[slot] = true;
        true
    }

    /// The samples finished since the last call, in the order they were asked for; never
    /// waits.
    pub fn finished(&mut self) -> Vec<Collected> {
        self.signal.clear();
        let done: Vec<Collected> = self.collected.try_iter().collect();
        for sample in &done {
            let slot = sample.kind as usize;
            self.busy[slot] = false;
            if std::mem::take(&mut self.stalled[slot]) {
                log::warn!(
                    "the stalled {} collection has finished; {} {} samples skipped since the \
                     agent started",
                    sample.kind.as_str(),
                    self.skipped[slot],
                    sample.kind.as_str()
                );
            }
        }
        done
    }
}

fn thread_error(e: &std::io::Error) -> Error {
    Error::Connection(format!("cannot start the collector thread: {e}"))
}

/// Collects one sample and returns its push text, with `request.errors` added to its own.
fn collect(collector: &mut Collector, kind: MetricKind, request: &Request) -> String {
    let with = |mut errors: Vec<SourceError>| {
        errors.extend(request.errors.iter().cloned());
        errors
    };
    // Straight from the typed sample to text: no JSON tree of a big sample in memory.
    match kind {
        MetricKind::Fast => {
            let mut sample = collector.fast();
            sample.errors = with(sample.errors);
            push_text(&request.collected_at, &sample)
        }
        MetricKind::Medium => {
            let mut sample = collector.medium();
            sample.errors = with(sample.errors);
            push_text(&request.collected_at, &sample)
        }
        MetricKind::Slow => {
            let mut sample = collector.slow();
            sample.errors = with(sample.errors);
            push_text(&request.collected_at, &sample)
        }
    }
}

/// The JSON text of a `MetricPush` carrying `data`.
fn push_text<T: serde::Serialize>(collected_at: &str, data: &T) -> String {
    #[derive(serde::Serialize)]
    struct Push<'a, T> {
        collected_at: &'a str,
        data: &'a T,
    }
    // Serializing plain structs of numbers, strings and options cannot fail.
    serde_json::to_string(&Push { collected_at, data }).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::guard::testing::BlockingFiles;
    use crate::wake::{wait, Woke};
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    /// Collections over the PVE tree whose `.vmlist` read blocks until the test releases it,
    /// with reads bounded by `timeout`.
    fn blocked_vmlist(timeout: Duration) -> (Collections, Arc<BlockingFiles>, PathBuf) {
        let root = pve_tree();
        let vmlist = root.join("etc/pve/.vmlist");
        let files = Arc::new(BlockingFiles::default());
        files.block(&vmlist);
        let mut collector = Collector::new(&root);
        collector.set_files(files.clone());
        collector.set_timeout(timeout);
        (Collections::start(collector).unwrap(), files, vmlist)
    }

    fn pve_tree() -> PathBuf {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/pve-node");
        assert!(root.join("etc/pve/.vmlist").is_file(), "{}", root.display());
        root
    }

    /// Waits (with a generous deadline, no timing assumed) until a sample is ready.
    fn next_sample(collections: &mut Collections) -> Collected {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(done) = collections.finished().into_iter().next() {
                return done;
            }
            assert!(Instant::now() < deadline, "no sample");
            let woke = wait(None, None, Some(collections.signal()), Some(deadline)).unwrap();
            assert!(matches!(woke, Woke::Signalled | Woke::Timeout));
        }
    }

    #[test]
    fn a_collection_blocked_in_a_read_holds_up_neither_the_loop_nor_its_kind_forever() {
        // Far longer than this test: the read stays blocked until released.
        let (mut collections, files, vmlist) = blocked_vmlist(Duration::from_secs(3600));

        // Asking never waits, however long the collection takes.
        assert!(collections.request(MetricKind::Fast, || "t1".into(), vec![]));
        assert!(collections.is_busy(MetricKind::Fast));
        // The loop's wait is not woken by it (nothing is ready), and the next fast sample due
        // while the first is blocked is skipped, not queued behind it.
        let now = Some(Instant::now());
        assert_eq!(
            wait(None, None, Some(collections.signal()), now).unwrap(),
            Woke::Timeout
        );
        let deadline = Instant::now() + Duration::from_secs(120);
        while files.calls(&vmlist) == 0 {
            assert!(
                Instant::now() < deadline,
                "the collector never read .vmlist"
            );
            std::thread::yield_now();
        }
        assert_eq!(collections.activity.get(), "/etc/pve/.vmlist");
        assert!(!collections.request(MetricKind::Fast, || unreachable!(), vec![]));
        assert!(!collections.request(MetricKind::Fast, || unreachable!(), vec![]));
        assert_eq!(collections.skipped(MetricKind::Fast), 2);
        assert!(collections.finished().is_empty());
        // Another kind queues behind it (in order), it is not skipped.
        assert!(collections.request(MetricKind::Slow, || "t2".into(), vec![]));

        files.release(&vmlist);
        let fast = next_sample(&mut collections);
        assert_eq!(fast.kind, MetricKind::Fast);
        assert!(fast.payload.starts_with(r#"{"collected_at":"t1","data":{"#));
        let slow = next_sample(&mut collections);
        assert_eq!(slow.kind, MetricKind::Slow);
        assert!(!collections.is_busy(MetricKind::Fast));
        assert!(collections.request(MetricKind::Fast, || "t3".into(), vec![]));
        let again = next_sample(&mut collections);
        assert!(again.payload.contains(r#""collected_at":"t3""#));
        assert_eq!(collections.skipped(MetricKind::Fast), 2);
    }

    #[test]
    fn a_read_that_times_out_is_an_error_naming_the_file_and_the_rest_is_sent() {
        // The read never returns in this test, so the bound is always what ends the wait.
        let (mut collections, files, vmlist) = blocked_vmlist(Duration::from_millis(50));

        let extra = SourceError {
            source: "spool".into(),
            message: "disk full".into(),
        };
        assert!(collections.request(MetricKind::Fast, || "t1".into(), vec![extra]));
        let first = next_sample(&mut collections);
        let push: serde_json::Value = serde_json::from_str(&first.payload).unwrap();
        let errors = push["data"]["errors"].as_array().unwrap();
        let stuck = errors
            .iter()
            .find(|e| e["source"] == "/etc/pve/.vmlist")
            .unwrap_or_else(|| panic!("{errors:?}"));
        let message = stuck["message"].as_str().unwrap();
        assert!(message.contains(&vmlist.display().to_string()), "{message}");
        assert!(message.contains("no answer within 0.05 s"), "{message}");
        assert!(errors.iter().any(|e| e["source"] == "spool"));
        // Everything else of the sample is there.
        assert!(push["data"]["load1"].is_number(), "{push}");
        assert!(push["data"]["mem_total_bytes"].is_number(), "{push}");

        // The next samples do not wait for it again or start a second blocked read.
        for stamp in ["t2", "t3"] {
            assert!(collections.request(MetricKind::Fast, || stamp.into(), vec![]));
            let next = next_sample(&mut collections);
            assert!(next.payload.contains("/etc/pve/.vmlist"));
            assert!(
                next.payload.contains("has not answered for"),
                "{}",
                next.payload
            );
        }
        assert_eq!(files.calls(&vmlist), 1);

        // Once the read returns, .vmlist is read again.
        files.release(&vmlist);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            assert!(collections.request(MetricKind::Fast, || "t".into(), vec![]));
            let next = next_sample(&mut collections);
            if !next.payload.contains("/etc/pve/.vmlist") {
                break;
            }
            assert!(Instant::now() < deadline, "still stuck: {}", next.payload);
        }
        assert!(files.calls(&vmlist) >= 2);
    }
}
