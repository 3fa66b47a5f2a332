//! Admin commands and the database's write lock: while another connection holds it (as the
//! running server's commits and maintenance do, again and again), every writing command of
//! the real binary waits for it, says so on stderr, and succeeds once it is free, instead of
//! failing with "database is locked". Reading commands do not wait at all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod inspect;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use testkit::{admin, register, server_bin, wait_until, ChildGuard, TempDir, PATIENCE};

const WAITING: &str = "waiting for the database lock";

/// A connection holding the write locks of both files (an open `BEGIN IMMEDIATE`), as the
/// server does while it commits.
fn hold_the_lock(db: &Path) -> rusqlite::Connection {
    let conn = inspect::open_database(db);
    conn.execute_batch("BEGIN IMMEDIATE; UPDATE hosts SET updated_at = updated_at")
        .unwrap();
    conn
}

/// Starts `proxmox-monitor-server --database DIR/db ARGS`, its output going to a log file,
/// with `input` on its stdin.
fn start(dir: &Path, label: &str, args: &[&str], input: &str) -> ChildGuard {
    let log = dir.join(format!("{label}.log"));
    let out = std::fs::File::create(&log).unwrap();
    let mut child = Command::new(server_bin())
        .arg("--database")
        .arg(dir.join("db"))
        .args(["--bcrypt-cost", "4"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    ChildGuard {
        child: Some(child),
        log,
    }
}

#[test]
fn writing_admin_commands_wait_for_the_servers_write_lock_instead_of_failing() {
    let dir = TempDir::new("admin-lock");
    let db = dir.path().join("db");
    register(dir.path(), "pve1");
    register(dir.path(), "pve2");
    // A firing alert to acknowledge.
    inspect::open_database(&db)
        .execute(
            "INSERT INTO alerts (rule, host_id, host, state, severity, summary, since, changed_at)
             VALUES ('host_down', 1, 'pve1', 'firing', 'critical', 'pve1 is down', 0, 0)",
            [],
        )
        .unwrap();

    let commands: &[(&str, &[&str], &str, &str)] = &[
        (
            "register",
            &["register-host", "pve3"],
            "",
            "Host 'pve3' registered",
        ),
        (
            "rotate",
            &["rotate-token", "pve1"],
            "",
            "New token for host 'pve1'",
        ),
        (
            "password",
            &["set-password"],
            "a long enough password\n",
            "Password for 'admin' set",
        ),
        (
            "silence",
            &[
                "silence",
                "--host",
                "pve1",
                "--for",
                "1h",
                "--comment",
                "work",
            ],
            "",
            "Silence 1 added",
        ),
        ("unsilence", &["unsilence", "1"], "", "Silence 1 ended."),
        (
            "ack",
            &["ack", "1", "--comment", "on it"],
            "",
            "Alert 1 acknowledged",
        ),
        (
            "remove",
            &["remove-host", "pve2"],
            "",
            "Host 'pve2' removed.",
        ),
    ];
    for (label, args, input, expected) in commands {
        let blocker = hold_the_lock(&db);
        let mut command = start(dir.path(), label, args, input);
        // It waits (and says so) as long as the lock is held...
        assert!(
            command.wait_for_output(WAITING, PATIENCE),
            "{label}: no notice of waiting; output:\n{}",
            command.output()
        );
        assert!(command.try_wait().is_none(), "{label}: did not wait");
        // ...and does its work once the lock is free.
        blocker.execute_batch("COMMIT").unwrap();
        drop(blocker);
        let status = command.wait_timeout(PATIENCE);
        let output = command.output();
        assert!(
            status.is_some_and(|s| s.success()),
            "{label}: {status:?}\n{output}"
        );
        assert!(output.contains(expected), "{label}: {output}");
        assert!(!output.contains("database is locked"), "{label}: {output}");
    }

    // Everything took effect.
    let conn = inspect::open_database(&db);
    let hosts: Vec<String> = conn
        .prepare("SELECT name FROM hosts ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(hosts, ["pve1", "pve3"]);
    let acked: Option<String> = conn
        .query_row("SELECT acked_by FROM alerts WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    assert!(acked.is_some());
    let users: i64 = conn
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(users, 1);
    drop(conn);

    // A reading command does not wait for the lock at all.
    let blocker = hold_the_lock(&db);
    let out = admin(dir.path(), &["hosts"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains(WAITING), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("pve3"));
    drop(blocker);
}

#[test]
fn a_lock_released_while_many_commands_wait_lets_all_of_them_through() {
    let dir = TempDir::new("admin-lock-many");
    let db = dir.path().join("db");
    register(dir.path(), "pve0");
    let blocker = hold_the_lock(&db);
    let mut commands: Vec<ChildGuard> = (1..=4)
        .map(|i| {
            start(
                dir.path(),
                &format!("register-{i}"),
                &["register-host", &format!("pve{i}")],
                "",
            )
        })
        .collect();
    assert!(wait_until(PATIENCE, || commands
        .iter()
        .all(|c| c.output().contains(WAITING))));
    blocker.execute_batch("ROLLBACK").unwrap();
    drop(blocker);
    for command in &mut commands {
        let status = command.wait_timeout(PATIENCE);
        assert!(
            status.is_some_and(|s| s.success()),
            "{status:?}\n{}",
            command.output()
        );
    }
    let out = admin(dir.path(), &["hosts"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    for i in 0..=4 {
        assert!(listed.contains(&format!("pve{i}")), "{listed}");
    }
}
