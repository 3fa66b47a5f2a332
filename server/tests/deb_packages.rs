//! The Debian packages of `make deb` (`packaging/deb/build.sh`): built from the static binaries
//! of `make musl` into `target/tmp`, then checked with `dpkg-deb -I`/`-c` (metadata, files,
//! modes, conffiles), lintian (no error, no warning), `systemd-analyze verify` of the units, and
//! the maintainer scripts run against a temp root with logging stand-ins for `adduser`,
//! `deb-systemd-helper`, `deb-systemd-invoke` … (install, configure, upgrade, remove, purge).
//!
//! The binaries come from `$PM_DEB_BIN_DIR` (`make test` sets it to dist/ and runs `make musl`
//! first when they are missing), else dist/. Without them, or without dpkg-deb, the tests say
//! so and pass — unless `PM_REQUIRE_DEB=1` (CI), where that fails; lintian and systemd-analyze
//! likewise with `PM_REQUIRE_LINTIAN=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const PACKAGES: [&str; 2] = ["proxmox-monitor-agent", "proxmox-monitor-server"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn required(var: &str) -> bool {
    std::env::var(var).as_deref() == Ok("1")
}

fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"))
}

fn stdout_of(command: &mut Command) -> String {
    let out = run(command);
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program} >/dev/null"))
        .status()
        .is_ok_and(|s| s.success())
}

/// The workspace version, the packages' version.
fn version() -> String {
    let cargo = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let table: toml::Table = cargo.parse().unwrap();
    table["workspace"]["package"]["version"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The built packages, once per test process; None (after a note) when they cannot be built
/// here and nothing requires them.
fn debs() -> Option<&'static Debs> {
    static DEBS: OnceLock<Option<Debs>> = OnceLock::new();
    DEBS.get_or_init(build_debs).as_ref()
}

struct Debs {
    bin_dir: PathBuf,
    out: PathBuf,
}

impl Debs {
    fn path(&self, package: &str) -> PathBuf {
        self.out.join(format!("{package}_{}_amd64.deb", version()))
    }

    /// The package's files, and its control files in `DEBIAN/`, extracted into a fresh `into`.
    fn extract(&self, package: &str, into: &Path) {
        let _ = std::fs::remove_dir_all(into);
        std::fs::create_dir_all(into).unwrap();
        stdout_of(
            Command::new("dpkg-deb")
                .arg("-x")
                .arg(self.path(package))
                .arg(into),
        );
        stdout_of(
            Command::new("dpkg-deb")
                .arg("-e")
                .arg(self.path(package))
                .arg(into.join("DEBIAN")),
        );
    }
}

fn skip(reason: &str) -> Option<Debs> {
    assert!(!required("PM_REQUIRE_DEB"), "PM_REQUIRE_DEB=1 but {reason}");
    eprintln!("SKIPPED .deb checks: {reason}");
    None
}

fn build_debs() -> Option<Debs> {
    if !have("dpkg-deb") {
        return skip("dpkg-deb is not installed");
    }
    let bin_dir = std::env::var_os("PM_DEB_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("dist"));
    for package in PACKAGES {
        if !bin_dir.join(package).is_file() {
            return skip(&format!(
                "{} is missing (make musl builds it; make test does that when it is missing)",
                bin_dir.join(package).display()
            ));
        }
    }
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("debs");
    let _ = std::fs::remove_dir_all(&out);
    let debs = Debs { bin_dir, out };
    build_into(&debs.bin_dir, &debs.out);
    Some(debs)
}

fn build_into(bin_dir: &Path, out: &Path) -> String {
    stdout_of(
        Command::new(repo().join("packaging/deb/build.sh"))
            .arg("--bin-dir")
            .arg(bin_dir)
            .arg("--out")
            .arg(out)
            // The same time for every build, so two builds can be compared byte for byte.
            .env("SOURCE_DATE_EPOCH", "1764115200"),
    )
}

/// `dpkg-deb -c`: path → (mode string, owner/group, size).
fn contents(deb: &Path) -> BTreeMap<String, (String, String, u64)> {
    stdout_of(Command::new("dpkg-deb").arg("-c").arg(deb))
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let path = fields[5].trim_start_matches('.').to_owned();
            (
                path,
                (
                    fields[0].to_owned(),
                    fields[1].to_owned(),
                    fields[2].parse().unwrap(),
                ),
            )
        })
        .collect()
}

fn field(deb: &Path, name: &str) -> String {
    stdout_of(Command::new("dpkg-deb").arg("-f").arg(deb).arg(name))
        .trim()
        .to_owned()
}

#[test]
fn packages_have_the_files_modes_and_metadata_debian_expects() {
    let Some(debs) = debs() else { return };
    let version = version();
    for package in PACKAGES {
        let deb = debs.path(package);
        let short = package.trim_start_matches("proxmox-monitor-");
        assert_eq!(field(&deb, "Package"), package);
        assert_eq!(field(&deb, "Version"), version);
        assert_eq!(field(&deb, "Architecture"), "amd64");
        assert_eq!(field(&deb, "Section"), "admin");
        assert_eq!(field(&deb, "Priority"), "optional");
        assert!(field(&deb, "Maintainer").contains('@'));
        assert!(field(&deb, "Description").lines().count() > 3);
        let depends = field(&deb, "Depends");
        assert!(depends.contains("init-system-helpers"), "{depends}");
        assert_eq!(
            depends.contains("adduser"),
            short == "server",
            "only the server's postinst makes a user: {depends}"
        );

        let files = contents(&deb);
        let binary_size = std::fs::metadata(debs.bin_dir.join(package)).unwrap().len();
        let installed: u64 = files.values().map(|(_, _, size)| size).sum();
        let declared: u64 = field(&deb, "Installed-Size").parse().unwrap();
        assert!(
            declared >= installed / 1024 && declared <= installed / 1024 + 64,
            "Installed-Size {declared} KiB for {installed} bytes"
        );
        let mut expected = vec![
            (format!("/usr/bin/{package}"), "-rwxr-xr-x"),
            (
                format!("/usr/lib/systemd/system/{package}.service"),
                "-rw-r--r--",
            ),
            (format!("/etc/proxmox-monitor/{short}.toml"), "-rw-r-----"),
            (format!("/usr/share/doc/{package}/copyright"), "-rw-r--r--"),
            (
                format!("/usr/share/doc/{package}/changelog.gz"),
                "-rw-r--r--",
            ),
            (format!("/usr/share/man/man1/{package}.1.gz"), "-rw-r--r--"),
            (
                format!("/usr/share/lintian/overrides/{package}"),
                "-rw-r--r--",
            ),
        ];
        if short == "server" {
            expected.push((
                format!("/usr/share/doc/{package}/examples/grafana-dashboard.json"),
                "-rw-r--r--",
            ));
            // The agent that the server's /install/agent hands out to nodes.
            expected.push((
                "/usr/lib/proxmox-monitor/proxmox-monitor-agent".to_owned(),
                "-rwxr-xr-x",
            ));
        }
        let regular: BTreeMap<&String, &str> = files
            .iter()
            .filter(|(_, (mode, _, _))| !mode.starts_with('d'))
            .map(|(path, (mode, _, _))| (path, mode.as_str()))
            .collect();
        let want: BTreeMap<&String, &str> = expected.iter().map(|(p, m)| (p, *m)).collect();
        assert_eq!(regular, want, "files and modes of {package}");
        for (path, (mode, owner, _)) in &files {
            assert_eq!(owner, "root/root", "{path}");
            if mode.starts_with('d') {
                assert_eq!(mode, "drwxr-xr-x", "{path}");
            }
        }
        assert!(
            !files.keys().any(|p| p.starts_with("/var/")),
            "/var/lib/proxmox-monitor is made by the postinst, not shipped"
        );
        assert_eq!(files[&format!("/usr/bin/{package}")].2, binary_size);

        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("deb-files-{short}"));
        debs.extract(package, &dir);
        // The packaged binary is the one given, and says the package's version.
        let packaged = dir.join("usr/bin").join(package);
        assert_eq!(
            std::fs::read(&packaged).unwrap(),
            std::fs::read(debs.bin_dir.join(package)).unwrap()
        );
        let says = stdout_of(Command::new(&packaged).arg("--version"));
        assert_eq!(
            says.trim(),
            format!("{package} {version}"),
            "a stale binary?"
        );
        if short == "server" {
            // agent_binary's default: the server's installer works without configuration.
            assert_eq!(
                std::fs::read(dir.join("usr/lib/proxmox-monitor/proxmox-monitor-agent")).unwrap(),
                std::fs::read(debs.bin_dir.join("proxmox-monitor-agent")).unwrap()
            );
        }

        // Control files: conffiles, md5sums of every file, maintainer scripts.
        let control = dir.join("DEBIAN");
        assert_eq!(
            std::fs::read_to_string(control.join("conffiles")).unwrap(),
            format!("/etc/proxmox-monitor/{short}.toml\n")
        );
        let md5sums = std::fs::read_to_string(control.join("md5sums")).unwrap();
        assert_eq!(md5sums.lines().count(), expected.len());
        let check = run(Command::new("md5sum")
            .args(["--check", "--quiet", "DEBIAN/md5sums"])
            .current_dir(&dir));
        assert!(check.status.success(), "{check:?}");
        for script in ["postinst", "prerm", "postrm"] {
            let path = control.join(script);
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o755, "{script}");
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(text.starts_with("#!/bin/sh\n"), "{script}");
            assert!(text.contains("\nset -e\n"), "{script}");
            stdout_of(Command::new("sh").arg("-n").arg(&path));
        }
        for absent in ["preinst", "config", "templates"] {
            assert!(!control.join(absent).exists(), "{absent}");
        }

        // The unit runs the packaged binary with the packaged config.
        let unit =
            std::fs::read_to_string(dir.join(format!("usr/lib/systemd/system/{package}.service")))
                .unwrap();
        let exec = unit.lines().find(|l| l.starts_with("ExecStart=")).unwrap();
        assert!(
            exec.starts_with(&format!(
                "ExecStart=/usr/bin/{package} --config /etc/proxmox-monitor/{short}.toml "
            )),
            "{exec}"
        );
        assert!(!unit.contains("/usr/local/bin/proxmox"), "{unit}");

        // The changelog is a Debian changelog of this version, compressed without a name/time.
        let changelog = stdout_of(
            Command::new("gzip")
                .arg("-dc")
                .arg(dir.join(format!("usr/share/doc/{package}/changelog.gz"))),
        );
        assert!(
            changelog.starts_with(&format!("{package} ({version}) unstable; urgency=medium\n")),
            "{changelog}"
        );
        assert!(changelog.contains("\n -- "), "{changelog}");

        // copyright names our license and every statically linked crate with its license.
        let copyright =
            std::fs::read_to_string(dir.join(format!("usr/share/doc/{package}/copyright")))
                .unwrap();
        assert!(copyright.contains("MIT license or the Apache License 2.0"));
        assert!(copyright.contains("/usr/share/common-licenses/Apache-2.0"));
        assert!(copyright.contains("Permission is hereby granted, free of charge"));
        assert!(copyright.contains("musl libc"));
        // Both have TLS; the server's package also carries the agent (webpki-roots).
        let mut crates = vec![
            ("rustls ", "Apache-2.0 OR ISC OR MIT"),
            ("ring ", "Apache-2.0 AND ISC"),
            ("webpki-roots ", "CDLA-Permissive-2.0"),
        ];
        if short == "server" {
            crates.extend([("rusqlite ", "MIT"), ("bcrypt ", "MIT")]);
        }
        for (name, license) in crates {
            assert!(
                copyright
                    .lines()
                    .any(|l| l.trim_start().starts_with(name) && l.ends_with(license)),
                "{name} under {license} not listed in:\n{copyright}"
            );
        }
        for text in ["License: ISC", "License: CDLA-Permissive-2.0"] {
            assert!(copyright.contains(text), "{text}");
        }
        assert_eq!(
            copyright.contains("the agent in /usr/lib/proxmox-monitor/"),
            short == "server"
        );
        assert_eq!(copyright.contains("rusqlite "), short == "server");
        assert_eq!(
            copyright.contains("SQLite (public domain)"),
            short == "server"
        );
        assert!(!copyright.contains("proxmox-monitor-common"));
    }
}

#[test]
fn conffiles_are_the_examples_with_the_agent_waiting_for_its_server_and_token() {
    let Some(debs) = debs() else { return };
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("deb-conffiles");
    debs.extract("proxmox-monitor-server", &dir.join("server"));
    debs.extract("proxmox-monitor-agent", &dir.join("agent"));
    let example = |name: &str| {
        std::fs::read_to_string(
            repo()
                .join("packaging")
                .join(format!("{name}.toml.example")),
        )
        .unwrap()
    };
    let packaged = |name: &str| {
        std::fs::read_to_string(
            dir.join(name)
                .join(format!("etc/proxmox-monitor/{name}.toml")),
        )
        .unwrap()
    };
    assert_eq!(packaged("server"), example("server"));
    let agent = packaged("agent");
    let expected = example("agent")
        .replace("\nserver_url = ", "\n#server_url = ")
        .replace("\ntoken = ", "\n#token = ");
    assert_eq!(agent, expected);
    assert!(!agent
        .lines()
        .any(|l| l.starts_with("token") || l.starts_with("server_url")));
    // Without them the agent refuses to run with exit status 2, which the unit does not retry.
    let out = run(Command::new(debs.bin_dir.join("proxmox-monitor-agent"))
        .arg("--config")
        .arg(dir.join("agent/etc/proxmox-monitor/agent.toml"))
        .arg("run"));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("server_url"),
        "{out:?}"
    );
}

#[test]
fn lintian_reports_no_error_and_no_warning() {
    let Some(debs) = debs() else { return };
    if !have("lintian") {
        assert!(
            !required("PM_REQUIRE_LINTIAN"),
            "PM_REQUIRE_LINTIAN=1 but lintian is not installed (apt-get install lintian)"
        );
        eprintln!("SKIPPED lintian: not installed (apt-get install lintian)");
        return;
    }
    let out = run(Command::new("lintian")
        .args(["--fail-on", "error,warning", "--info", "--pedantic"])
        .args(PACKAGES.map(|p| debs.path(p))));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let tags: Vec<&str> = text
        .lines()
        .filter(|l| l.len() > 2 && l.as_bytes()[1] == b':' && !l.starts_with("N:"))
        .collect();
    assert!(
        out.status.success(),
        "lintian failed ({}):\n{text}",
        out.status
    );
    assert!(tags.is_empty(), "lintian says:\n{}", tags.join("\n"));
}

#[test]
fn units_pass_systemd_analyze_verify_and_keep_their_hardening() {
    let Some(debs) = debs() else { return };
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("deb-units");
    let verify_dir = dir.join("verify");
    let _ = std::fs::remove_dir_all(&verify_dir);
    std::fs::create_dir_all(&verify_dir).unwrap();
    let mut units = BTreeMap::new();
    for package in PACKAGES {
        let root = dir.join(package);
        debs.extract(package, &root);
        let unit =
            std::fs::read_to_string(root.join(format!("usr/lib/systemd/system/{package}.service")))
                .unwrap();
        // systemd-analyze verify checks that ExecStart= exists: point it at the extracted one.
        std::fs::write(
            verify_dir.join(format!("{package}.service")),
            unit.replace("/usr/bin/", &format!("{}/usr/bin/", root.display())),
        )
        .unwrap();
        units.insert(package, unit);
    }

    let agent = &units["proxmox-monitor-agent"];
    let server = &units["proxmox-monitor-server"];
    let has = |unit: &str, line: &str| unit.lines().any(|l| l == line);
    let key = |unit: &str, key: &str| unit.lines().any(|l| l.starts_with(&format!("{key}=")));
    for unit in [agent, server] {
        for line in [
            "ProtectSystem=strict",
            "NoNewPrivileges=true",
            "PrivateTmp=true",
            "ProtectHome=true",
            "ProtectKernelModules=true",
            "RestrictNamespaces=true",
            "MemoryDenyWriteExecute=true",
            "KillSignal=SIGINT",
        ] {
            assert!(has(unit, line), "{line} missing");
        }
    }
    // The agent: root with four capabilities, its spool writable, devices reachable.
    assert!(has(agent, "User=root"));
    assert!(has(
        agent,
        "CapabilityBoundingSet=CAP_DAC_READ_SEARCH CAP_DAC_OVERRIDE CAP_SYS_RAWIO CAP_SYS_ADMIN"
    ));
    assert!(has(
        agent,
        "ReadWritePaths=-/var/lib/proxmox-monitor -/run/lock -/run/lvm"
    ));
    assert!(has(agent, "RestartPreventExitStatus=2"));
    for absent in [
        "PrivateDevices",
        "DevicePolicy",
        "DeviceAllow",
        "ProtectClock",
        "StateDirectory",
    ] {
        assert!(
            !key(agent, absent),
            "{absent}= in the agent's unit: see the comments there (devices, the shared state dir)"
        );
    }
    assert!(agent
        .lines()
        .any(|l| l.starts_with("SystemCallFilter=~") && l.contains("@mount")));
    // The server: its own user, no capability, no devices.
    assert!(has(server, "User=proxmox-monitor"));
    assert!(has(server, "StateDirectory=proxmox-monitor"));
    assert!(has(server, "CapabilityBoundingSet="));
    assert!(has(server, "PrivateDevices=true"));
    assert!(has(server, "SystemCallFilter=@system-service"));
    // `systemctl reload` reloads the TLS certificate.
    assert!(has(server, "ExecReload=/bin/kill -HUP $MAINPID"));

    if !have("systemd-analyze") {
        assert!(
            !required("PM_REQUIRE_LINTIAN"),
            "PM_REQUIRE_LINTIAN=1 but systemd-analyze is missing (apt-get install systemd)"
        );
        eprintln!("SKIPPED systemd-analyze verify: not installed");
        return;
    }
    for package in PACKAGES {
        let out = run(Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(verify_dir.join(format!("{package}.service"))));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "systemd-analyze verify {package} ({}):\n{stderr}",
            out.status
        );
    }
}

#[test]
fn two_builds_of_the_same_tree_are_identical() {
    let Some(debs) = debs() else { return };
    let again = Path::new(env!("CARGO_TARGET_TMPDIR")).join("debs-again");
    let _ = std::fs::remove_dir_all(&again);
    build_into(&debs.bin_dir, &again);
    for package in PACKAGES {
        let name = debs.path(package).file_name().unwrap().to_owned();
        assert!(
            std::fs::read(debs.path(package)).unwrap() == std::fs::read(again.join(&name)).unwrap(),
            "{package}: two builds differ"
        );
    }
}

/// A root directory for the maintainer scripts, with stand-ins on PATH that log their
/// arguments to `calls` instead of touching the machine.
struct ScriptRoot {
    dir: PathBuf,
    control: PathBuf,
    bin: PathBuf,
}

impl ScriptRoot {
    /// The package's files in `<name>/root`, its scripts in `<name>/DEBIAN`; systemd "runs"
    /// in the root (`run/systemd/system` exists).
    fn new(debs: &Debs, package: &str, name: &str) -> ScriptRoot {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("deb-scripts-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        let root = dir.join("root");
        debs.extract(package, &root);
        let control = dir.join("DEBIAN");
        std::fs::rename(root.join("DEBIAN"), &control).unwrap();
        std::fs::create_dir_all(root.join("run/systemd/system")).unwrap();
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let log = dir.join("calls");
        std::fs::write(&log, "").unwrap();
        for (program, status) in [
            ("deb-systemd-helper", 0),
            ("deb-systemd-invoke", 0),
            ("systemctl", 0),
            ("adduser", 0),
            ("deluser", 0),
            ("delgroup", 0),
            ("chown", 0),
            ("getent", 0),
            // No admin override of owners and modes.
            ("dpkg-statoverride", 1),
        ] {
            let path = bin.join(program);
            std::fs::write(
                &path,
                format!(
                    "#!/bin/sh\necho \"{program} $*\" >>'{}'\nexit {status}\n",
                    log.display()
                ),
            )
            .unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        ScriptRoot {
            dir: root,
            control,
            bin,
        }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }

    /// Runs maintainer script `script` with `args`; its stdout. Clears the call log first.
    fn run(&self, script: &str, args: &[&str]) -> String {
        let log = self.bin.parent().unwrap().join("calls");
        std::fs::write(&log, "").unwrap();
        let path = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", self.bin.display());
        stdout_of(
            Command::new("sh")
                .arg(self.control.join(script))
                .args(args)
                .env("DPKG_ROOT", &self.dir)
                .env("PATH", path),
        )
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.bin.parent().unwrap().join("calls"))
            .unwrap()
            .lines()
            .map(|l| l.replace(&self.dir.display().to_string(), "$ROOT"))
            .collect()
    }

    fn mode(&self, relative: &str) -> u32 {
        std::fs::metadata(self.path(relative))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }
}

fn invoked(calls: &[String]) -> Vec<&String> {
    calls
        .iter()
        .filter(|c| c.starts_with("deb-systemd-invoke"))
        .collect()
}

#[test]
fn agent_scripts_enable_start_once_configured_and_purge_the_spool() {
    let Some(debs) = debs() else { return };
    let package = "proxmox-monitor-agent";
    let unit = "proxmox-monitor-agent.service";

    // Fresh install with the shipped config: enabled, spool directory made, not started.
    let root = ScriptRoot::new(debs, package, "agent");
    let said = root.run("postinst", &["configure", ""]);
    assert!(said.contains("enabled, not started"), "{said}");
    assert!(said.contains("server_url and token"), "{said}");
    let calls = root.calls();
    assert!(
        calls.contains(&format!("deb-systemd-helper enable {unit}")),
        "{calls:?}"
    );
    assert!(invoked(&calls).is_empty(), "{calls:?}");
    assert_eq!(root.mode("var/lib/proxmox-monitor"), 0o700);

    // Configured: started on install, restarted on upgrade.
    let config = root.path("etc/proxmox-monitor/agent.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let configured = text
        .replace(
            "#server_url = \"wss://monitor.example.com/socket/websocket\"",
            "server_url = \"wss://mon.example.net/socket/websocket\"",
        )
        .replace("#token = \"paste-the-token-here\"", "token = \"t0ken\"");
    assert_ne!(
        configured, text,
        "the shipped agent.toml changed: update this test"
    );
    std::fs::write(&config, &configured).unwrap();
    root.run("postinst", &["configure", ""]);
    assert_eq!(
        invoked(&root.calls()),
        [&format!("deb-systemd-invoke start {unit}")]
    );
    root.run("postinst", &["configure", "0.0.9"]);
    assert_eq!(
        invoked(&root.calls()),
        [&format!("deb-systemd-invoke restart {unit}")]
    );
    // Only a real value counts: an empty token is no configuration.
    std::fs::write(
        &config,
        configured.replace("token = \"t0ken\"", "token = \"\""),
    )
    .unwrap();
    root.run("postinst", &["configure", "0.0.9"]);
    assert!(invoked(&root.calls()).is_empty());

    // Stopped on removal, not on upgrade.
    root.run("prerm", &["upgrade", "0.2.0"]);
    assert!(invoked(&root.calls()).is_empty());
    root.run("prerm", &["remove"]);
    assert_eq!(
        invoked(&root.calls()),
        [&format!("deb-systemd-invoke stop {unit}")]
    );

    // Purge deletes the spool, and the directories once empty; dpkg deletes the conffile.
    std::fs::write(root.path("var/lib/proxmox-monitor/spool.log"), "x").unwrap();
    std::fs::remove_file(&config).unwrap();
    root.run("postrm", &["remove"]);
    assert!(root.path("var/lib/proxmox-monitor/spool.log").exists());
    root.run("postrm", &["purge"]);
    assert!(root
        .calls()
        .contains(&format!("deb-systemd-helper purge {unit}")));
    assert!(!root.path("var/lib/proxmox-monitor").exists());
    assert!(!root.path("etc/proxmox-monitor").exists());

    // With the server's database beside the spool, only the spool goes.
    std::fs::create_dir_all(root.path("var/lib/proxmox-monitor")).unwrap();
    std::fs::write(root.path("var/lib/proxmox-monitor/spool.log"), "x").unwrap();
    std::fs::write(root.path("var/lib/proxmox-monitor/server.db"), "x").unwrap();
    root.run("postrm", &["purge"]);
    assert!(!root.path("var/lib/proxmox-monitor/spool.log").exists());
    assert!(root.path("var/lib/proxmox-monitor/server.db").exists());
}

#[test]
fn server_scripts_make_the_user_start_and_purge_everything() {
    let Some(debs) = debs() else { return };
    let package = "proxmox-monitor-server";
    let unit = "proxmox-monitor-server.service";
    let root = ScriptRoot::new(debs, package, "server");

    // Fresh install: user, config group, state directory, enabled and started.
    root.run("postinst", &["configure", ""]);
    let calls = root.calls();
    assert!(
        calls.contains(&"adduser --system --group --home /var/lib/proxmox-monitor --no-create-home --quiet proxmox-monitor".to_owned()),
        "{calls:?}"
    );
    assert!(
        calls.contains(
            &"chown root:proxmox-monitor $ROOT/etc/proxmox-monitor/server.toml".to_owned()
        ),
        "{calls:?}"
    );
    assert!(
        calls.contains(
            &"chown proxmox-monitor:proxmox-monitor $ROOT/var/lib/proxmox-monitor".to_owned()
        ),
        "{calls:?}"
    );
    assert_eq!(root.mode("etc/proxmox-monitor/server.toml"), 0o640);
    assert_eq!(root.mode("var/lib/proxmox-monitor"), 0o750);
    assert!(calls.contains(&format!("deb-systemd-helper enable {unit}")));
    assert_eq!(
        invoked(&calls),
        [&format!("deb-systemd-invoke start {unit}")]
    );

    root.run("postinst", &["configure", "0.0.9"]);
    assert_eq!(
        invoked(&root.calls()),
        [&format!("deb-systemd-invoke restart {unit}")]
    );

    // Without its config file (deleted by the admin) it is enabled but not started.
    let config = root.path("etc/proxmox-monitor/server.toml");
    std::fs::remove_file(&config).unwrap();
    let said = root.run("postinst", &["configure", "0.0.9"]);
    assert!(said.contains("not started"), "{said}");
    assert!(invoked(&root.calls()).is_empty());

    root.run("prerm", &["remove"]);
    assert_eq!(
        invoked(&root.calls()),
        [&format!("deb-systemd-invoke stop {unit}")]
    );

    // Purge: the database, the directories, the user.
    for file in [
        "server.db",
        "server.db-wal",
        "server-history.db",
        "server-history.db-shm",
    ] {
        std::fs::write(root.path(&format!("var/lib/proxmox-monitor/{file}")), "x").unwrap();
    }
    root.run("postrm", &["purge"]);
    let calls = root.calls();
    assert!(!root.path("var/lib/proxmox-monitor").exists());
    assert!(!root.path("etc/proxmox-monitor").exists());
    assert!(
        calls.contains(&"deluser --system --quiet proxmox-monitor".to_owned()),
        "{calls:?}"
    );
    assert!(calls.contains(&format!("deb-systemd-helper purge {unit}")));

    // The agent's spool stays, handed back to root.
    std::fs::create_dir_all(root.path("var/lib/proxmox-monitor")).unwrap();
    std::fs::write(root.path("var/lib/proxmox-monitor/server.db"), "x").unwrap();
    std::fs::write(root.path("var/lib/proxmox-monitor/spool.log"), "x").unwrap();
    root.run("postrm", &["purge"]);
    assert!(!root.path("var/lib/proxmox-monitor/server.db").exists());
    assert!(root.path("var/lib/proxmox-monitor/spool.log").exists());
    assert!(root
        .calls()
        .contains(&"chown root:root $ROOT/var/lib/proxmox-monitor".to_owned()));
}
