//! Command-line interface: argument parsing (clap) and the admin subcommands.

use std::io::{IsTerminal, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

use crate::alert_cli;
use crate::config::{Overrides, ServerConfig};
use crate::error::{Error, Result};
use crate::store::{SeriesQuery, Store};
use crate::tls::Tls;
use crate::{auth, serve};

#[derive(Debug, Parser)]
#[command(
    name = "proxmox-monitor-server",
    version,
    about = "Proxmox Monitor server: authenticates agents, tracks hosts, stores samples, serves the dashboard",
    after_help = "Settings come from built-in defaults, then --config FILE, then these flags.\n\
                  Run without a command to serve."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct GlobalArgs {
    /// TOML configuration file
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on for agents and HTTP [default: 127.0.0.1:4000]
    #[arg(long, global = true, value_name = "ADDR")]
    pub listen: Option<String>,
    /// SQLite database file [default: /var/lib/proxmox-monitor/server.db]
    #[arg(long, global = true, value_name = "PATH")]
    pub database: Option<PathBuf>,
    /// off, error, warn, info, debug or trace [default: info]
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// bcrypt cost for new tokens and passwords, 4..=31 [default: 12]
    #[arg(long, global = true, value_name = "N")]
    pub bcrypt_cost: Option<u32>,
    /// Close an agent socket that sent nothing for this long [default: 60]
    #[arg(long, global = true, value_name = "SECONDS")]
    pub idle_timeout: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve agents and HTTP (the default)
    Serve,
    /// Register a host and print its token (shown only this once)
    RegisterHost {
        /// 1-100 characters of A-Z a-z 0-9 . _ -
        name: String,
    },
    /// List registered hosts with status, last seen and versions
    Hosts,
    /// Remove a host and everything stored for it
    RemoveHost { name: String },
    /// Give a host a new token (the old one stops working at once)
    RotateToken { name: String },
    /// Set the dashboard password of user `admin` (asked twice on a terminal, else read from
    /// the first line of stdin); logs out every open session
    SetPassword,
    /// List the names of a host's stored series
    Metrics {
        /// Registered host name
        host: String,
    },
    /// Print the stored points of one series
    Query {
        /// Registered host name
        host: String,
        /// Series name, as listed by `metrics HOST` (e.g. load1, guest.100.cpu_percent)
        series: String,
        /// Start: RFC 3339 (2026-11-25T12:00:00Z), Unix seconds, or a duration ago (90m, 7d)
        #[arg(
            long,
            value_name = "TIME",
            default_value = "1h",
            allow_hyphen_values = true
        )]
        from: String,
        /// End: same forms as --from, or "now"
        #[arg(
            long,
            value_name = "TIME",
            default_value = "now",
            allow_hyphen_values = true
        )]
        to: String,
        /// Merge points into at most N buckets
        #[arg(long, value_name = "N", default_value_t = 10_000)]
        max_points: usize,
        /// Print a JSON array of {"t", "avg", "min", "max"}
        #[arg(long)]
        json: bool,
    },
    /// Show points, bytes and bytes per point of each history tier in each database file
    /// (reads every page once: a few seconds per GiB)
    DbStats {
        /// Print JSON: {"tiers": [{tier, file, table, points, bytes, bytes_per_point}],
        /// "files": [{file, path, bytes, wal_bytes, free_bytes}]}
        #[arg(long)]
        json: bool,
    },
    /// List open alerts (firing and pending), worst first
    Alerts(alert_cli::AlertsArgs),
    /// Silence alerts of a host (optionally one rule, object, guest or tag) for a while
    Silence(alert_cli::SilenceArgs),
    /// List silences and maintenance windows
    Silences(alert_cli::SilencesArgs),
    /// End a silence now
    Unsilence {
        /// The silence's id (from `silences`)
        id: i64,
    },
    /// Acknowledge a firing alert: no reminders until it resolves (or --expires)
    Ack(alert_cli::AckArgs),
    /// List notification events in the outbox (firing, repeat, resolved)
    AlertEvents(alert_cli::EventsArgs),
    /// Send a test message through a notification channel of the config ([notify.channels.NAME])
    NotifyTest {
        /// The channel's name
        channel: String,
    },
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    let overrides = Overrides {
        listen: cli.global.listen.clone(),
        database: cli.global.database.clone(),
        log_level: cli.global.log_level.clone(),
        bcrypt_cost: cli.global.bcrypt_cost,
        idle_timeout_seconds: cli.global.idle_timeout,
    };
    let config = ServerConfig::load(cli.global.config.as_deref(), &overrides)?;
    let command = cli.command.unwrap_or(Command::Serve);
    let log_level = match command {
        Command::Serve => config.log_level,
        // Admin commands print their result; only trouble goes to the log.
        _ => config.log_level.min(log::LevelFilter::Warn),
    };
    init_logging(log_level);
    // Commands that change what a running server holds in memory tell it so when they succeed.
    let announce = matches!(
        command,
        Command::RegisterHost { .. }
            | Command::RemoveHost { .. }
            | Command::RotateToken { .. }
            | Command::Silence(_)
            | Command::Unsilence { .. }
            | Command::Ack(_)
    )
    .then(|| config.database.clone());
    let done = match command {
        Command::Serve => run_server(config),
        Command::RegisterHost { name } => register_host(&config, &name),
        Command::Hosts => list_hosts(&config),
        Command::RemoveHost { name } => {
            open_store(&config)?.remove_host(&name)?;
            println!("Host '{name}' removed.");
            Ok(())
        }
        Command::RotateToken { name } => rotate_token(&config, &name),
        Command::SetPassword => set_password(&config),
        Command::Metrics { host } => list_series(&config, &host),
        Command::Query {
            host,
            series,
            from,
            to,
            max_points,
            json,
        } => {
            let now = common::time::now_unix();
            let from = common::time::parse_time(&from, now)
                .map_err(|m| Error::Usage(format!("--from: {m}")))?;
            let to = common::time::parse_time(&to, now)
                .map_err(|m| Error::Usage(format!("--to: {m}")))?;
            query(&config, &host, &series, from, to, max_points, json)
        }
        Command::DbStats { json } => db_stats(&config, json),
        Command::Alerts(args) => alert_cli::alerts(&config, &open_store(&config)?, &args),
        Command::Silence(args) => alert_cli::silence(&config, &open_store(&config)?, &args),
        Command::Silences(args) => alert_cli::silences(&config, &open_store(&config)?, &args),
        Command::Unsilence { id } => alert_cli::unsilence(&open_store(&config)?, id),
        Command::Ack(args) => alert_cli::ack(&open_store(&config)?, &args),
        Command::AlertEvents(args) => alert_cli::events(&open_store(&config)?, &args),
        Command::NotifyTest { channel } => {
            crate::notify::send_test(&config.notify, &channel, common::time::now_unix())
                .map_err(|e| Error::Usage(format!("notify-test {channel}: {e}")))?;
            println!("Test message sent through channel '{channel}'.");
            Ok(())
        }
    };
    if let (Some(database), Ok(())) = (&announce, &done) {
        crate::store::announce_change(database);
    }
    done
}

fn db_stats(config: &ServerConfig, json: bool) -> Result<()> {
    let stats = open_store(config)?.stats()?;
    let mut out = std::io::stdout().lock();
    if json {
        let text = serde_json::to_string(&stats).map_err(|e| Error::Usage(e.to_string()))?;
        let _ = writeln!(out, "{text}");
        return Ok(());
    }
    let _ = writeln!(
        out,
        "{:<5} {:<8} {:<8} {:>14} {:>14} {:>8}",
        "TIER", "FILE", "TABLE", "POINTS", "BYTES", "B/POINT"
    );
    for t in &stats.tiers {
        let per = t
            .bytes_per_point
            .map_or_else(|| "-".into(), |b| format!("{b:.2}"));
        let _ = writeln!(
            out,
            "{:<5} {:<8} {:<8} {:>14} {:>14} {:>8}",
            t.tier, t.file, t.table, t.points, t.bytes, per
        );
    }
    let _ = writeln!(
        out,
        "(the rollup tiers share one table, its bytes split by rows)"
    );
    for f in &stats.files {
        let _ = writeln!(
            out,
            "{}: {} bytes, write-ahead log {} bytes, {} bytes free inside",
            f.path.display(),
            f.bytes,
            f.wal_bytes,
            f.free_bytes
        );
    }
    Ok(())
}

fn init_logging(level: log::LevelFilter) {
    let config = simplelog::ConfigBuilder::new()
        .set_target_level(log::LevelFilter::Off)
        .set_thread_level(log::LevelFilter::Off)
        .build();
    let _ = simplelog::WriteLogger::init(level, config, std::io::stderr());
}

/// The store for an admin command: its writes wait up to 30 s for the server's write lock
/// (saying so on stderr after a second) instead of failing with "database is locked".
fn open_store(config: &ServerConfig) -> Result<Store> {
    Store::open_for_admin(&config.database, config.synchronous)
}

fn run_server(config: ServerConfig) -> Result<()> {
    // The certificate first: a bad pair is an error at start, before anything else happens.
    let tls = match &config.tls {
        Some(files) => Some(Arc::new(Tls::load(&files.cert, &files.key)?)),
        None => None,
    };
    let shutdown = Arc::new(crate::shutdown::Shutdown::new());
    // Before any thread starts, so that all of them leave the signals to the signal thread.
    crate::signals::install(shutdown.clone(), tls.clone())?;
    let store = Store::open(&config.database, config.synchronous)?;
    let listener = TcpListener::bind(&config.listen).map_err(|source| Error::Listen {
        addr: config.listen.clone(),
        source,
    })?;
    serve(config, store, listener, shutdown, tls)
}

fn register_host(config: &ServerConfig, name: &str) -> Result<()> {
    common::events::validate_host_name(name).map_err(Error::InvalidHostName)?;
    let store = open_store(config)?;
    if store.host_by_name(name)?.is_some() {
        return Err(Error::HostExists(name.to_owned()));
    }
    let token = auth::generate_token()?;
    let hash = auth::hash_secret(&token, config.bcrypt_cost)?;
    let host = store.create_host(name, &hash, common::time::now_unix())?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "Host '{}' registered (id={}).", host.name, host.id);
    let _ = writeln!(out, "TOKEN: {token}");
    let _ = writeln!(out, "Store this token NOW — it will never be shown again.");
    Ok(())
}

fn rotate_token(config: &ServerConfig, name: &str) -> Result<()> {
    let store = open_store(config)?;
    let token = auth::generate_token()?;
    let hash = auth::hash_secret(&token, config.bcrypt_cost)?;
    store.set_token_hash(name, &hash, common::time::now_unix())?;
    println!("New token for host '{name}' (the old one no longer works):");
    println!("TOKEN: {token}");
    println!("Store this token NOW — it will never be shown again.");
    Ok(())
}

fn set_password(config: &ServerConfig) -> Result<()> {
    let password = if std::io::stdin().is_terminal() {
        let first = prompt_hidden("New dashboard password for admin: ")?;
        let again = prompt_hidden("Repeat it: ")?;
        if first != again {
            return Err(Error::Usage(
                "the two passwords differ; nothing changed".into(),
            ));
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| Error::Usage(format!("reading the password from stdin: {e}")))?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    let store = open_store(config)?;
    auth::set_admin_password(&store, &password, config.bcrypt_cost)?;
    println!(
        "Password for '{}' set; open sessions were logged out.",
        crate::store::ADMIN_USER
    );
    Ok(())
}

/// Reads a line from the terminal with echo off. `stty` does the terminal switching so that
/// no unsafe termios code (or a crate for it) is needed; echo is restored even on error.
fn prompt_hidden(prompt: &str) -> Result<String> {
    let stty = |arg: &str| {
        std::process::Command::new("stty")
            .arg(arg)
            .stdin(std::process::Stdio::inherit())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let hidden = stty("-echo");
    let mut line = String::new();
    let read = std::io::stdin().read_line(&mut line);
    if hidden {
        stty("echo");
    }
    eprintln!();
    read.map_err(|e| Error::Usage(format!("reading the password: {e}")))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn list_hosts(config: &ServerConfig) -> Result<()> {
    let hosts = open_store(config)?.list_hosts()?;
    if hosts.is_empty() {
        println!("No hosts registered. Add one with: proxmox-monitor-server register-host NAME");
        return Ok(());
    }
    let rows: Vec<[String; 5]> = hosts
        .iter()
        .map(|h| {
            [
                h.name.clone(),
                h.status.as_str().to_owned(),
                h.last_seen_at
                    .map_or_else(|| "never".to_owned(), format_time),
                h.agent_version.clone().unwrap_or_else(|| "-".into()),
                h.proxmox_version.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let header = ["NAME", "STATUS", "LAST SEEN", "AGENT", "PROXMOX"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = std::io::stdout().lock();
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let _ = writeln!(out, "{}", line(&header.map(String::from)));
    for row in &rows {
        let _ = writeln!(out, "{}", line(row));
    }
    Ok(())
}

fn format_time(unix: i64) -> String {
    common::time::format_rfc3339(common::time::from_unix_seconds(unix))
}

fn host_id(store: &Store, name: &str) -> Result<i64> {
    store
        .host_by_name(name)?
        .map(|h| h.id)
        .ok_or_else(|| Error::UnknownHost(name.to_owned()))
}

fn list_series(config: &ServerConfig, host: &str) -> Result<()> {
    let store = open_store(config)?;
    let names = store.series_names(host_id(&store, host)?)?;
    if names.is_empty() {
        eprintln!("host '{host}' has no stored series yet");
    }
    let mut out = std::io::stdout().lock();
    for name in names {
        let _ = writeln!(out, "{name}");
    }
    Ok(())
}

fn query(
    config: &ServerConfig,
    host: &str,
    series: &str,
    from: i64,
    to: i64,
    max_points: usize,
    json: bool,
) -> Result<()> {
    if to < from {
        return Err(Error::Usage(format!(
            "--to ({}) is before --from ({})",
            format_time(to),
            format_time(from)
        )));
    }
    let store = open_store(config)?;
    let id = host_id(&store, host)?;
    if !store.series_names(id)?.iter().any(|n| n == series) {
        return Err(Error::Usage(format!(
            "host '{host}' has no series named '{series}' (list them with: proxmox-monitor-server metrics {host})"
        )));
    }
    let now = common::time::now_unix();
    let query = SeriesQuery {
        host_id: id,
        name: series,
        from,
        to,
        max_points: max_points.max(1),
    };
    let points = store.query_series(&query, &config.retention, now)?;
    let mut out = std::io::stdout().lock();
    if json {
        let text = serde_json::to_string(&points).map_err(|e| Error::Usage(e.to_string()))?;
        let _ = writeln!(out, "{text}");
        return Ok(());
    }
    let _ = writeln!(
        out,
        "{:<20}  {:>14}  {:>14}  {:>14}",
        "TIME", "AVG", "MIN", "MAX"
    );
    for p in points {
        let _ = writeln!(
            out,
            "{:<20}  {:>14}  {:>14}  {:>14}",
            format_time(p.t),
            fmt_num(p.avg),
            fmt_num(p.min),
            fmt_num(p.max)
        );
    }
    Ok(())
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}
