//! `proxmox-monitor-server`: parse the command line, run, map errors to a message and exit code.

use clap::Parser;

fn main() {
    let cli = server::cli::Cli::parse();
    if let Err(e) = server::cli::run(cli) {
        eprintln!("proxmox-monitor-server: {e}");
        std::process::exit(1);
    }
}
