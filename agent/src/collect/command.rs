//! Running the few commands the agent needs (`zpool`, `pvesm`, `pveversion`, `smartctl`), with a
//! timeout, or reading their captured output from a fixture tree.
//!
//! A command that does not exist is a normal case (a node without ZFS, a plain Debian host):
//! callers get `CommandError::NotFound` and report it once, not on every cycle.
//!
//! Most commands say "failed" with a non-zero exit status and nothing useful on stdout: `run`
//! turns that into `CommandError::Failed`. `smartctl` is different: its exit status is a bit
//! mask (smartctl(8) "EXIT STATUS") and a failing or worn disk gives a non-zero status with a
//! complete JSON document on stdout, so `run_output` hands back the output whatever the status.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Runs a program and returns its standard output.
pub trait CommandRunner: Send {
    /// Runs `program` and returns its standard output and exit status, whatever the status.
    /// Errors are only "could not run it to the end": not installed, timed out, I/O.
    fn run_output(&self, program: &str, args: &[&str]) -> Result<Output, CommandError>;

    /// Kills what runs longer than `timeout` (runners without a timeout ignore it).
    fn set_timeout(&mut self, _timeout: Duration) {}

    /// Runs `program` and returns its standard output when it exits with status 0; any other
    /// status is `CommandError::Failed` with the first line of its standard error.
    fn run(&self, program: &str, args: &[&str]) -> Result<String, CommandError> {
        let output = self.run_output(program, args)?;
        if output.status == Some(0) {
            return Ok(output.stdout);
        }
        Err(CommandError::Failed {
            command: command_line(program, args),
            status: match output.status {
                Some(code) => format!("exit status: {code}"),
                None => "killed by a signal".to_owned(),
            },
            stderr: output.stderr,
        })
    }
}

/// What a command printed, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Output {
    /// The exit status; `None` when a signal ended it.
    pub status: Option<i32>,
    pub stdout: String,
    /// The first non-empty line of its standard error.
    pub stderr: String,
}

/// Why a command gave no output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// The program is not installed (or, in a fixture tree, was not captured).
    NotFound { program: String },
    /// It ran longer than the timeout and was killed.
    Timeout { command: String, timeout: Duration },
    /// It exited unsuccessfully; carries the first line of its standard error.
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
    /// It could not be started or its output could not be read.
    Io { command: String, message: String },
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::NotFound { program } => write!(f, "{program}: command not found"),
            CommandError::Timeout { command, timeout } => {
                write!(
                    f,
                    "`{command}` took longer than {}s and was killed",
                    timeout.as_secs_f64()
                )
            }
            CommandError::Failed {
                command,
                status,
                stderr,
            } => {
                write!(f, "`{command}` failed ({status})")?;
                if !stderr.is_empty() {
                    write!(f, ": {stderr}")?;
                }
                Ok(())
            }
            CommandError::Io { command, message } => write!(f, "`{command}`: {message}"),
        }
    }
}

impl std::error::Error for CommandError {}

/// The longest output we keep; `zpool`/`pvesm` print a few KiB even on big nodes.
const MAX_OUTPUT: u64 = 16 * 1024 * 1024;

/// Runs real programs (found on `PATH`, else in `/usr/sbin` and `/sbin`, where `zpool` and
/// `pvesm` live) with the C locale, and kills them after `timeout`.
#[derive(Debug, Clone)]
pub struct SystemRunner {
    pub timeout: Duration,
}

impl Default for SystemRunner {
    fn default() -> SystemRunner {
        SystemRunner {
            timeout: Duration::from_secs(10),
        }
    }
}

impl CommandRunner for SystemRunner {
    fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    fn run_output(&self, program: &str, args: &[&str]) -> Result<Output, CommandError> {
        let command_line = command_line(program, args);
        let mut candidates = vec![PathBuf::from(program)];
        if !program.contains('/') {
            candidates.push(Path::new("/usr/sbin").join(program));
            candidates.push(Path::new("/sbin").join(program));
        }
        for candidate in candidates {
            match self.run_path(&candidate, args, &command_line) {
                Err(Spawn::NotFound) => continue,
                Err(Spawn::Other(e)) => return Err(e),
                Ok(output) => return Ok(output),
            }
        }
        Err(CommandError::NotFound {
            program: program.to_owned(),
        })
    }
}

enum Spawn {
    NotFound,
    Other(CommandError),
}

impl SystemRunner {
    fn run_path(&self, path: &Path, args: &[&str], command: &str) -> Result<Output, Spawn> {
        let io_error = |message: String| {
            Spawn::Other(CommandError::Io {
                command: command.to_owned(),
                message,
            })
        };
        let mut child = match Command::new(path)
            .args(args)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Spawn::NotFound),
            Err(e) => return Err(io_error(format!("cannot start: {e}"))),
        };
        // Read both pipes on threads, so a big output cannot fill a pipe and stall the child
        // while we wait for it; the results come back over channels so that a grandchild
        // holding a pipe open cannot make us wait past the deadline either.
        let stdout = read_on_thread(child.stdout.take());
        let stderr = read_on_thread(child.stderr.take());
        let deadline = Instant::now() + self.timeout;
        let mut pause = Duration::from_millis(1);
        let status: ExitStatus = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline => {
                    // Best effort: the child may have exited just now.
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(Spawn::Other(CommandError::Timeout {
                        command: command.to_owned(),
                        timeout: self.timeout,
                    }));
                }
                Ok(None) => {
                    thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Err(e) => return Err(io_error(format!("cannot wait for it: {e}"))),
            }
        };
        let remaining = || deadline.saturating_duration_since(Instant::now());
        let out = stdout
            .recv_timeout(remaining())
            .map_err(|_| io_error("its output did not end".into()))?
            .map_err(|e| io_error(format!("cannot read its output: {e}")))?;
        let err = if status.success() {
            Vec::new()
        } else {
            stderr
                .recv_timeout(remaining())
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default()
        };
        let first_line = String::from_utf8_lossy(&err)
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_owned();
        Ok(Output {
            status: status.code(),
            stdout: String::from_utf8_lossy(&out).into_owned(),
            stderr: first_line,
        })
    }
}

fn read_on_thread<R: Read + Send + 'static>(
    pipe: Option<R>,
) -> mpsc::Receiver<std::io::Result<Vec<u8>>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buffer = Vec::new();
        let result = match pipe {
            Some(pipe) => pipe
                .take(MAX_OUTPUT)
                .read_to_end(&mut buffer)
                .map(|_| buffer),
            None => Ok(buffer),
        };
        // The receiver may have given up (timeout); nobody is left to tell.
        let _ = tx.send(result);
    });
    rx
}

/// Answers commands from captured output under `dir` (a fixture tree's `cmd/`): the command
/// line maps to a file name by `fixture_file_name`; a missing file means the command is not
/// installed. A file of the same name with `.status` instead of `.txt` holds how the command
/// ended: its exit status (`0` when there is no such file), or `timeout` for a command that
/// hung and was killed.
#[derive(Debug, Clone)]
pub struct FixtureRunner {
    pub dir: PathBuf,
}

impl CommandRunner for FixtureRunner {
    fn run_output(&self, program: &str, args: &[&str]) -> Result<Output, CommandError> {
        let name = fixture_file_name(program, args);
        let path = self.dir.join(&name);
        let io = |path: &Path, e: std::io::Error| CommandError::Io {
            command: command_line(program, args),
            message: format!("cannot read {}: {e}", path.display()),
        };
        let stdout = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(CommandError::NotFound {
                    program: program.to_owned(),
                })
            }
            Err(e) => return Err(io(&path, e)),
        };
        let status_path = self.dir.join(name.replace(".txt", ".status"));
        let status = match std::fs::read_to_string(&status_path) {
            Ok(text) if text.trim() == "timeout" => {
                return Err(CommandError::Timeout {
                    command: command_line(program, args),
                    timeout: SystemRunner::default().timeout,
                })
            }
            Ok(text) => text.trim().parse().map_err(|_| CommandError::Io {
                command: command_line(program, args),
                message: format!(
                    "{}: {:?} is not an exit status",
                    status_path.display(),
                    text.trim()
                ),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io(&status_path, e)),
        };
        Ok(Output {
            status: Some(status),
            stdout,
            stderr: String::new(),
        })
    }
}

/// The column list Proxmox asks `zpool list` for; long, so its fixture file says `pve-columns`.
pub const ZPOOL_PVE_COLUMNS: &str = "name,size,alloc,free,frag,dedup,health";

/// The captured-output file of a command line: the program and its arguments joined by `-`,
/// leading dashes dropped and `/`, `,` and spaces turned into `-`, plus `.txt`.
/// `zpool status -x` → `zpool-status-x.txt`; `zpool list -HpPLo <ZPOOL_PVE_COLUMNS>` →
/// `zpool-list-HpPLo-pve-columns.txt`.
pub fn fixture_file_name(program: &str, args: &[&str]) -> String {
    let mut name = program.rsplit('/').next().unwrap_or(program).to_owned();
    for arg in args {
        name.push('-');
        if *arg == ZPOOL_PVE_COLUMNS {
            name.push_str("pve-columns");
        } else {
            name.push_str(&arg.trim_start_matches('-').replace(['/', ',', ' '], "-"));
        }
    }
    name.push_str(".txt");
    name
}

pub(crate) fn command_line(program: &str, args: &[&str]) -> String {
    let mut line = program.to_owned();
    for arg in args {
        line.push(' ');
        line.push_str(arg);
    }
    line
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fixture_file_names() {
        assert_eq!(
            fixture_file_name("zpool", &["list", "-HpPLo", ZPOOL_PVE_COLUMNS]),
            "zpool-list-HpPLo-pve-columns.txt"
        );
        assert_eq!(
            fixture_file_name("zpool", &["status", "-x"]),
            "zpool-status-x.txt"
        );
        assert_eq!(fixture_file_name("pvesm", &["status"]), "pvesm-status.txt");
        assert_eq!(fixture_file_name("pveversion", &[]), "pveversion.txt");
        assert_eq!(
            fixture_file_name("lxc-info", &["-n", "101", "-p"]),
            "lxc-info-n-101-p.txt"
        );
    }

    #[test]
    fn fixture_runner_reads_captures_and_misses_are_not_found() {
        let runner = FixtureRunner {
            dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/pve-node/cmd"),
        };
        assert_eq!(
            runner.run("zpool", &["status", "-x"]).unwrap(),
            "all pools are healthy\n"
        );
        assert_eq!(
            runner.run("ceph", &["status"]),
            Err(CommandError::NotFound {
                program: "ceph".into()
            })
        );
    }

    #[test]
    fn system_runner_output_failure_missing_and_timeout() {
        let runner = SystemRunner::default();
        assert_eq!(runner.run("sh", &["-c", "echo hi"]).unwrap(), "hi\n");
        // Bigger than a pipe buffer: must not deadlock.
        let big = runner
            .run("sh", &["-c", "head -c 1000000 /dev/zero | tr '\\0' x"])
            .unwrap();
        assert_eq!(big.len(), 1_000_000);
        match runner.run("sh", &["-c", "echo oops >&2; exit 3"]) {
            Err(CommandError::Failed { stderr, .. }) => assert_eq!(stderr, "oops"),
            other => panic!("{other:?}"),
        }
        // The bit-mask status of smartctl: output and status, whatever the status.
        let output = runner
            .run_output("sh", &["-c", "echo '{\"ok\":1}'; echo worn >&2; exit 4"])
            .unwrap();
        assert_eq!(
            output,
            Output {
                status: Some(4),
                stdout: "{\"ok\":1}\n".into(),
                stderr: "worn".into()
            }
        );
        match runner.run("sh", &["-c", "exit 4"]) {
            Err(CommandError::Failed { status, .. }) => assert_eq!(status, "exit status: 4"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            runner.run("no-such-program-pm-test", &[]),
            Err(CommandError::NotFound { .. })
        ));
        let quick = SystemRunner {
            timeout: Duration::from_millis(200),
        };
        let started = Instant::now();
        assert!(matches!(
            quick.run("sleep", &["5"]),
            Err(CommandError::Timeout { .. })
        ));
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
