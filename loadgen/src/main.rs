//! `proxmox-monitor-loadgen`: parse the command line, run one measurement, print its report.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use loadgen::agents::{Mode, RunOptions};
use loadgen::ceiling::CeilingOptions;
use loadgen::storm::StormOptions;
use loadgen::{Error, Result};

#[derive(Debug, Parser)]
#[command(
    name = "proxmox-monitor-loadgen",
    version,
    about = "Load generator for the Proxmox Monitor server (see bench/run.sh)"
)]
struct Cli {
    /// off, error, warn, info, debug or trace
    #[arg(long, global = true, default_value = "info")]
    log_level: log::LevelFilter,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ModeArg {
    Flood,
    Interval,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SyncArg {
    Full,
    Normal,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Register hosts PREFIX0001.. straight into the database; write NAME<TAB>TOKEN lines
    Register {
        #[arg(long)]
        database: PathBuf,
        #[arg(long)]
        count: usize,
        /// bcrypt cost of the token hashes
        #[arg(long, default_value_t = 12)]
        cost: u32,
        #[arg(long)]
        tokens: PathBuf,
        #[arg(long, default_value = "bench-")]
        prefix: String,
        /// One token (and one bcrypt hash) for all hosts: registering is then instant at any cost
        #[arg(long)]
        shared_token: bool,
    },
    /// Simulated agents push fast samples for a bounded time; prints throughput and latency
    Run {
        /// ws://127.0.0.1:PORT/socket/websocket
        #[arg(long)]
        url: String,
        #[arg(long)]
        tokens: PathBuf,
        #[arg(long, default_value_t = 100)]
        agents: usize,
        /// Seconds of pushing (after every agent has joined)
        #[arg(long, default_value_t = 20)]
        duration: u64,
        #[arg(long, value_enum, default_value = "flood")]
        mode: ModeArg,
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
        #[arg(long, default_value_t = 30)]
        guests: u32,
        /// The server's pid, for its RSS and CPU seconds
        #[arg(long)]
        server_pid: Option<u32>,
        /// The server's database, to count stored points and bytes per point
        #[arg(long)]
        database: Option<PathBuf>,
        #[arg(long, default_value_t = 128)]
        stack_kib: usize,
        /// Seconds at the start whose push→reply times are reported apart (a new host's
        /// first sample creates its series)
        #[arg(long, default_value_t = 0)]
        warmup: u64,
        /// A name for the summary line
        #[arg(long, default_value = "run")]
        label: String,
    },
    /// The storage write path alone (no sockets) into a fresh database: points/s
    Ceiling {
        #[arg(long)]
        database: PathBuf,
        #[arg(long, default_value_t = 20_000)]
        samples: usize,
        #[arg(long, default_value_t = 30)]
        guests: u32,
        #[arg(long, default_value_t = 1000)]
        hosts: usize,
        /// Samples per transaction (group commit under load forms batches like this)
        #[arg(long, default_value_t = 50)]
        batch: usize,
        /// The server's default is full
        #[arg(long, value_enum, default_value = "full")]
        synchronous: SyncArg,
        /// Stop after this many seconds even if not all samples are written
        #[arg(long, default_value_t = 60)]
        max_seconds: u64,
        /// Instead of batches: N threads writing one sample at a time through group commit
        #[arg(long, default_value_t = 0)]
        writers: usize,
        /// PRAGMA to set first, NAME=VALUE (repeatable), e.g. cache_size=-65536
        #[arg(long, value_name = "NAME=VALUE")]
        pragma: Vec<String>,
        #[arg(long, default_value = "ceiling")]
        label: String,
    },
    /// Bytes per raw point at rest: realistic samples of N hosts written through the store and
    /// moved into the history file every minute of data; optionally as OpenMetrics text too
    Storage {
        /// A directory for the fresh database
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 50)]
        hosts: usize,
        /// Seconds of data per host
        #[arg(long, default_value_t = 8 * 3600)]
        seconds: i64,
        /// Seconds between samples
        #[arg(long, default_value_t = 30)]
        interval: i64,
        #[arg(long, default_value_t = 30)]
        guests: u32,
        /// Write every stored point to this file as OpenMetrics text (for promtool)
        #[arg(long)]
        openmetrics: Option<PathBuf>,
        #[arg(long, default_value = "storage")]
        label: String,
    },
    /// Range reads of one series (1 h, 24 h, 7 days of raw points): the store's chunks next to
    /// the previous release's layout holding the same points; two fresh databases in DIR
    Reads {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 7)]
        days: i64,
        /// Seconds between points
        #[arg(long, default_value_t = 30)]
        interval: i64,
        /// How many series to store and read
        #[arg(long, default_value_t = 8)]
        series: usize,
        /// Seconds of data per move into chunks (the chunks come out the same)
        #[arg(long, default_value_t = 600)]
        move_every: i64,
        #[arg(long, default_value = "reads")]
        label: String,
    },
    /// N agents push one fast, medium and slow sample each and stay online; then `/`, the
    /// API and `/metrics` are fetched as a logged-in browser does: bytes, time, server CPU
    Pages {
        /// ws://127.0.0.1:PORT/socket/websocket (HTTP goes to the same port)
        #[arg(long)]
        url: String,
        #[arg(long)]
        tokens: PathBuf,
        #[arg(long, default_value_t = 1000)]
        agents: usize,
        #[arg(long, default_value_t = 30)]
        guests: u32,
        /// The dashboard password of admin (set with set-password first)
        #[arg(long)]
        password: String,
        /// The server's pid, for its CPU time per request
        #[arg(long)]
        server_pid: Option<u32>,
        /// At least this many requests per path (and at least one second of them)
        #[arg(long, default_value_t = 20)]
        requests: usize,
        /// LABEL=PATH to fetch (repeatable) [default: index=/ api_hosts=/api/hosts metrics=/metrics]
        #[arg(long = "path", value_name = "LABEL=PATH")]
        paths: Vec<String>,
        #[arg(long, default_value_t = 8)]
        threads: usize,
        #[arg(long, default_value = "pages")]
        label: String,
    },
    /// What evaluating the default alert rules costs per fast sample (no sockets, no database)
    Alerts {
        #[arg(long, default_value_t = 1000)]
        hosts: usize,
        /// Fast samples per host (one a second of simulated time; alerts fire after 5 min)
        #[arg(long, default_value_t = 400)]
        rounds: usize,
        #[arg(long, default_value_t = 30)]
        guests: u32,
        /// In the busy fleet, one host in this many has CPU at 95 %, a stopped onboot guest
        /// and a full storage
        #[arg(long, default_value_t = 10)]
        busy_every: usize,
        #[arg(long, default_value = "alerts")]
        label: String,
    },
    /// Time for N agents to be online again after a server restart (spawns the server itself)
    Storm {
        #[arg(long)]
        server_bin: PathBuf,
        /// A database where the hosts of --tokens are registered
        #[arg(long)]
        database: PathBuf,
        /// 127.0.0.1:PORT, a free port
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long)]
        tokens: PathBuf,
        #[arg(long, default_value_t = 1000)]
        agents: usize,
        /// Give up on a phase after this many seconds
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        #[arg(long, default_value_t = 128)]
        stack_kib: usize,
        #[arg(long, default_value = "storm")]
        label: String,
        /// Rejoin without the resumption ticket (every rejoin runs bcrypt: the former behaviour)
        #[arg(long)]
        no_tickets: bool,
    },
    /// Notification latency: agents join and leave a server whose webhook (host_offline,
    /// for = "0s") points at --receiver, served here; disconnect → message received
    Notify {
        #[arg(long)]
        url: String,
        #[arg(long)]
        tokens: PathBuf,
        #[arg(long, default_value_t = 20)]
        agents: usize,
        /// 127.0.0.1:PORT, the webhook's address in the server's config
        #[arg(long)]
        receiver: SocketAddr,
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        #[arg(long, default_value = "notify")]
        label: String,
    },
}

fn main() {
    let cli = Cli::parse();
    let config = simplelog::ConfigBuilder::new()
        .set_target_level(log::LevelFilter::Off)
        .set_thread_level(log::LevelFilter::Off)
        .build();
    let _ = simplelog::WriteLogger::init(cli.log_level, config, std::io::stderr());
    if let Err(e) = run(cli.command) {
        eprintln!("proxmox-monitor-loadgen: {e}");
        std::process::exit(1);
    }
}

fn hosts(tokens: &std::path::Path, n: usize) -> Result<Vec<(String, String)>> {
    let all = loadgen::read_tokens(tokens)?;
    if all.len() < n {
        return Err(Error::Setup(format!(
            "{} holds {} hosts; {n} asked for",
            tokens.display(),
            all.len()
        )));
    }
    Ok(all.into_iter().take(n).collect())
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Notify {
            url,
            tokens,
            agents,
            receiver,
            timeout,
            label,
        } => {
            let hosts = hosts(&tokens, agents)?;
            let r = loadgen::notify::run(&url, &hosts, receiver, Duration::from_secs(timeout))?;
            println!(
                "summary label={label} hosts={} received={} notify_p50_ms={:.1} \
                 notify_p99_ms={:.1} notify_max_ms={:.1}",
                r.hosts,
                r.received,
                loadgen::stats::ms(r.latency.p50_us),
                loadgen::stats::ms(r.latency.p99_us),
                loadgen::stats::ms(r.latency.max_us)
            );
        }
        Command::Alerts {
            hosts,
            rounds,
            guests,
            busy_every,
            label,
        } => {
            let options = loadgen::alerts::AlertBenchOptions {
                hosts,
                rounds,
                guests,
                busy_every,
            };
            for (fleet, busy) in [("quiet", false), ("busy", true)] {
                let r = loadgen::alerts::run(&options, busy);
                println!(
                    "summary label={label}-{fleet} samples={} alert_eval_ns_per_sample={:.0} \
                     alert_eval_cpu_ns_per_sample={:.0} open_alerts={} events={} open={}",
                    r.samples,
                    r.wall_ns_per_sample,
                    r.cpu_ns_per_sample,
                    r.open_alerts,
                    r.events,
                    if r.open_by_rule.is_empty() {
                        "-"
                    } else {
                        &r.open_by_rule
                    }
                );
            }
        }
        Command::Register {
            database,
            count,
            cost,
            tokens,
            prefix,
            shared_token,
        } => {
            let started = std::time::Instant::now();
            loadgen::register::register(&database, count, cost, &prefix, &tokens, shared_token)?;
            println!(
                "registered {count} hosts at bcrypt cost {cost}{} in {:.1} s; tokens in {}",
                if shared_token {
                    " (one shared token)"
                } else {
                    ""
                },
                started.elapsed().as_secs_f64(),
                tokens.display()
            );
        }
        Command::Run {
            url,
            tokens,
            agents,
            duration,
            mode,
            interval_ms,
            guests,
            server_pid,
            database,
            stack_kib,
            warmup,
            label,
        } => {
            let options = RunOptions {
                url,
                hosts: hosts(&tokens, agents)?,
                duration: Duration::from_secs(duration),
                mode: match mode {
                    ModeArg::Flood => Mode::Flood,
                    ModeArg::Interval => Mode::Interval(Duration::from_millis(interval_ms.max(1))),
                },
                guests,
                server_pid,
                database,
                stack_kib,
                warmup: Duration::from_secs(warmup),
            };
            loadgen::agents::run(&options)?.print(&label);
        }
        Command::Ceiling {
            database,
            samples,
            guests,
            hosts,
            batch,
            synchronous,
            max_seconds,
            writers,
            pragma,
            label,
        } => {
            let pragmas = pragma
                .iter()
                .map(|p| {
                    p.split_once('=')
                        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
                        .ok_or_else(|| Error::Setup(format!("--pragma {p:?}: expected NAME=VALUE")))
                })
                .collect::<Result<Vec<_>>>()?;
            let options = CeilingOptions {
                writers,
                pragmas,
                samples,
                guests,
                hosts,
                batch,
                synchronous: match synchronous {
                    SyncArg::Full => server::store::Synchronous::Full,
                    SyncArg::Normal => server::store::Synchronous::Normal,
                },
                max_time: Duration::from_secs(max_seconds),
            };
            loadgen::ceiling::ceiling(&database, &options)?.print(&label);
        }
        Command::Storage {
            dir,
            hosts,
            seconds,
            interval,
            guests,
            openmetrics,
            label,
        } => {
            let options = loadgen::storage::StorageOptions {
                dir,
                hosts,
                seconds,
                interval,
                guests,
                openmetrics,
            };
            loadgen::storage::storage(&options)?.print(&label);
        }
        Command::Reads {
            dir,
            days,
            interval,
            series,
            move_every,
            label,
        } => {
            let options = loadgen::storage::ReadOptions {
                dir,
                days,
                interval,
                series,
                move_every,
            };
            loadgen::storage::reads(&options)?.print(&label);
        }
        Command::Pages {
            url,
            tokens,
            agents,
            guests,
            password,
            server_pid,
            requests,
            paths,
            threads,
            label,
        } => {
            let mut paths = paths
                .iter()
                .map(|p| {
                    p.split_once('=')
                        .map(|(l, p)| (l.to_owned(), p.to_owned()))
                        .ok_or_else(|| Error::Setup(format!("--path {p:?}: expected LABEL=PATH")))
                })
                .collect::<Result<Vec<_>>>()?;
            if paths.is_empty() {
                paths = [
                    ("index", "/"),
                    ("api_hosts", "/api/hosts"),
                    ("metrics", "/metrics"),
                ]
                .map(|(l, p)| (l.to_owned(), p.to_owned()))
                .into();
            }
            let options = loadgen::pages::PagesOptions {
                url,
                hosts: hosts(&tokens, agents)?,
                guests,
                password,
                server_pid,
                requests,
                paths,
                threads,
            };
            loadgen::pages::pages(&options)?.print(&label);
        }
        Command::Storm {
            server_bin,
            database,
            listen,
            tokens,
            agents,
            timeout,
            stack_kib,
            label,
            no_tickets,
        } => {
            let options = StormOptions {
                server_bin,
                database,
                listen,
                hosts: hosts(&tokens, agents)?,
                timeout: Duration::from_secs(timeout),
                stack_kib,
                tickets: !no_tickets,
            };
            loadgen::storm::storm(&options)?.print(&label);
        }
    }
    Ok(())
}
