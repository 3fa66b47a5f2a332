//! `proxmox-monitor-simnode`: write a simulated Proxmox VE node's tree and keep its counters
//! moving until Ctrl+C / SIGTERM. `make demo` runs one per simulated node, each read by an agent
//! with `root = <tree>`.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Parser;
use simnode::{scenario, Tree};

#[derive(Debug, Parser)]
#[command(
    name = "proxmox-monitor-simnode",
    version,
    about = "Simulated Proxmox VE node for the demo: a fixture tree whose counters move",
    after_help = "Nodes: pve-sim1 (healthy: 4 running and 3 stopped guests, mirrored rpool, 3 storages),\n\
                  pve-sim2 (2 running guests, 1 stopped, rpool ONLINE and tank DEGRADED).\n\
                  Read the tree with: proxmox-monitor-agent collect --root DIR"
)]
struct Cli {
    /// Directory to write the node's files into (made if missing)
    #[arg(long, value_name = "DIR")]
    root: PathBuf,
    /// Which node to simulate
    #[arg(long, value_name = "NAME", value_parser = scenario::NODE_NAMES)]
    node: String,
    /// Seconds between updates of the counters
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
    interval: f64,
    /// Write the tree once and exit
    #[arg(long)]
    once: bool,
}

fn main() {
    let cli = Cli::parse();
    if let Err(message) = run(&cli) {
        eprintln!("proxmox-monitor-simnode: {message}");
        std::process::exit(1);
    }
}

fn run(cli: &Cli) -> Result<(), String> {
    if !(cli.interval.is_finite() && (0.05..=3600.0).contains(&cli.interval)) {
        return Err(format!(
            "--interval {} is not between 0.05 and 3600 seconds",
            cli.interval
        ));
    }
    let node = scenario::node(&cli.node).ok_or_else(|| format!("no node {}", cli.node))?;
    let mut tree = Tree::create(&cli.root, node).map_err(|e| e.to_string())?;
    if cli.once {
        return Ok(());
    }
    let (stop_tx, stop) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = stop_tx.send(());
    })
    .map_err(|e| format!("cannot handle signals: {e}"))?;
    eprintln!(
        "proxmox-monitor-simnode: {} in {}, counters move every {} s",
        cli.node,
        cli.root.display(),
        cli.interval
    );
    let interval = Duration::from_secs_f64(cli.interval);
    let mut last = Instant::now();
    let mut next = last + interval;
    loop {
        match stop.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        let now = Instant::now();
        tree.advance(now.duration_since(last).as_secs_f64())
            .map_err(|e| e.to_string())?;
        last = now;
        next += interval;
        if next <= now {
            // Suspended or starved for more than an interval: resume the rhythm from now.
            next = now + interval;
        }
    }
    eprintln!("proxmox-monitor-simnode: {} stopped", cli.node);
    Ok(())
}
