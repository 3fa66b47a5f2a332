//! Command-line interface: argument parsing (clap) and the admin subcommands.

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

use crate::config::{Overrides, ServerConfig};
use crate::error::{Error, Result};
use crate::store::Store;
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
    match command {
        Command::Serve => run_server(config),
        Command::RegisterHost { name } => register_host(&config, &name),
        Command::Hosts => list_hosts(&config),
        Command::RemoveHost { name } => {
            open_store(&config)?.remove_host(&name)?;
            println!("Host '{name}' removed.");
            Ok(())
        }
        Command::RotateToken { name } => rotate_token(&config, &name),
    }
}

fn init_logging(level: log::LevelFilter) {
    let config = simplelog::ConfigBuilder::new()
        .set_target_level(log::LevelFilter::Off)
        .set_thread_level(log::LevelFilter::Off)
        .build();
    let _ = simplelog::WriteLogger::init(level, config, std::io::stderr());
}

fn open_store(config: &ServerConfig) -> Result<Store> {
    Store::open(&config.database, config.synchronous)
}

fn run_server(config: ServerConfig) -> Result<()> {
    let listener = TcpListener::bind(&config.listen).map_err(|source| Error::Listen {
        addr: config.listen.clone(),
        source,
    })?;
    let shutdown = Arc::new(AtomicBool::new(false));
    let flag = shutdown.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            // A second Ctrl+C: the admin does not want to wait.
            std::process::exit(130);
        }
        log::info!("signal received; stopping");
    })
    .map_err(|e| Error::Usage(format!("cannot install the signal handler: {e}")))?;
    serve(config, listener, shutdown)
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
