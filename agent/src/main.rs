//! `proxmox-monitor-agent`: parse the command line, run, map errors to a message and exit code.

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent::config::{AgentConfig, DEFAULT_CONFIG_PATH};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "proxmox-monitor-agent",
    version,
    about = "Proxmox Monitor agent: reads this node's /proc, /sys and /etc/pve and pushes samples to the server",
    after_help = "The config file is --config FILE, else $AGENT_CONFIG, else /etc/proxmox-monitor/agent.toml.\n\
                  Run without a command to run the agent."
)]
struct Cli {
    /// Agent configuration (TOML)
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// off, error, warn, info, debug or trace (overrides log_level in the config)
    #[arg(long, global = true, value_name = "LEVEL")]
    log_level: Option<log::LevelFilter>,
    /// Keep the spool in DIR (overrides state_dir in the config; e.g. to try an installed
    /// config without root)
    #[arg(long, global = true, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Connect to the server and push samples until stopped (the default)
    Run,
    /// Print one sample of this node as JSON and exit
    Collect {
        /// Read the node's files under DIR instead of / (e.g. a fixture tree)
        #[arg(long, value_name = "DIR", default_value = "/")]
        root: PathBuf,
        /// Instead of the sample, list every problem met (file, line, what was wrong) and exit
        /// 1 if there was any, 0 if every source read cleanly
        #[arg(long)]
        check: bool,
    },
}

/// How long Ctrl+C / SIGTERM may take before we exit regardless.
const STOP_DEADLINE: Duration = Duration::from_millis(1800);

fn main() {
    let cli = Cli::parse();
    let code = match cli.command.unwrap_or(Command::Run) {
        Command::Collect { root, check: false } => collect(&root),
        Command::Collect { root, check: true } => check(&root),
        Command::Run => run(cli.config, cli.log_level, cli.state_dir),
    };
    std::process::exit(code);
}

fn collect(root: &std::path::Path) -> i32 {
    init_logging(log::LevelFilter::Warn);
    let output = agent::collect::collect_once(root);
    match serde_json::to_string_pretty(&output) {
        Ok(text) => {
            println!("{text}");
            0
        }
        Err(e) => {
            eprintln!("proxmox-monitor-agent: {e}");
            1
        }
    }
}

/// `collect --check`: one problem per line, `<file>: line N: <what>`, then a summary line.
fn check(root: &std::path::Path) -> i32 {
    // The problems are the output; the collector's own warnings about them would repeat them.
    init_logging(log::LevelFilter::Error);
    let problems = agent::collect::check_once(root);
    for problem in &problems {
        // A file's parse error names the file's full path; the source already says which.
        let full = root.join(problem.source.trim_start_matches('/'));
        let prefix = format!("{}: ", full.display());
        let message = problem
            .message
            .strip_prefix(&prefix)
            .unwrap_or(&problem.message);
        println!("{}: {message}", problem.source);
    }
    if problems.is_empty() {
        println!(
            "no problems: every source under {} read cleanly",
            root.display()
        );
        0
    } else {
        let s = if problems.len() == 1 { "" } else { "s" };
        println!("{} problem{s} under {}", problems.len(), root.display());
        1
    }
}

fn run(
    config_flag: Option<PathBuf>,
    log_level: Option<log::LevelFilter>,
    state_dir: Option<PathBuf>,
) -> i32 {
    let path = config_flag
        .or_else(|| std::env::var_os("AGENT_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH));
    let mut config = match AgentConfig::load(&path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("proxmox-monitor-agent: {e}");
            return 2;
        }
    };
    if let Some(dir) = state_dir {
        config.state_dir = dir;
    }
    init_logging(log_level.unwrap_or(config.log_level));
    let stop = match agent::wake::Stop::new() {
        Ok(stop) => Arc::new(stop),
        Err(e) => {
            eprintln!("proxmox-monitor-agent: cannot create the stop signal: {e}");
            return 1;
        }
    };
    // Both the signal handler and the end of the loop report here, so this thread sleeps until
    // one of them happens.
    let (tx, rx) = mpsc::channel::<Signal>();
    let (handler_stop, handler_tx) = (stop.clone(), tx.clone());
    let handler = move || {
        log::info!("stop requested; leaving the channel");
        // Wakes the loop at once, wherever it waits (connecting, joining, between samples).
        handler_stop.request();
        let _ = handler_tx.send(Signal::Stop);
    };
    if let Err(e) = ctrlc::set_handler(handler) {
        eprintln!("proxmox-monitor-agent: cannot install the signal handler: {e}");
        return 1;
    }
    // The loop runs on its own thread so that a stop is honoured within the deadline even if
    // the loop is stuck where the stop cannot reach it (resolving the server's name).
    let worker = std::thread::Builder::new()
        .name("agent".into())
        .spawn(move || {
            let result = agent::run::run(&config, &stop);
            let _ = tx.send(Signal::Done);
            result
        });
    let worker = match worker {
        Ok(worker) => worker,
        Err(e) => {
            eprintln!("proxmox-monitor-agent: cannot start: {e}");
            return 1;
        }
    };
    if let Ok(Signal::Stop) = rx.recv() {
        let deadline = Instant::now() + STOP_DEADLINE;
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Signal::Done) => break,
                Ok(Signal::Stop) => {}
                Err(_) => {
                    log::warn!("the connection did not close in time; exiting anyway (unsent samples stay spooled)");
                    return 0;
                }
            }
        }
    }
    match worker.join() {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            log::error!("{e}");
            eprintln!("proxmox-monitor-agent: {e}");
            1
        }
        Err(_) => 1,
    }
}

/// What the main thread waits for.
enum Signal {
    /// Ctrl+C or SIGTERM.
    Stop,
    /// The loop has ended.
    Done,
}

fn init_logging(level: log::LevelFilter) {
    let config = simplelog::ConfigBuilder::new()
        .set_target_level(log::LevelFilter::Off)
        .set_thread_level(log::LevelFilter::Off)
        .build();
    let _ = simplelog::WriteLogger::init(level, config, std::io::stderr());
}
