//! ferrokeeper-loadgen: a load generator for ZooKeeper-compatible servers.
//! See loadgen/README.md.

mod connstr;
mod driver;
mod null_server;
mod probe;
mod report;
mod rng;
mod stats;
mod sync_client;
mod workload;

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};

use clap::{Args, Parser, Subcommand, ValueEnum};
use ferrokeeper::proto::{op, CreateMode, CreateRequest, Request};
use hdrhistogram::Histogram;
use serde_json::json;

use connstr::ConnectString;
use driver::{RunConfig, Shared};
use report::{CpuUse, KindSummary, Report, TimePoint};
use stats::{new_histogram, Interval};
use workload::{ChurnMode, OpKind, Workload, WorkloadKind};

#[derive(Parser)]
#[command(
    name = "ferrokeeper-loadgen",
    version,
    about = "Load generator for ZooKeeper-compatible servers",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a workload (the default when no subcommand is given).
    Run(Box<RunArgs>),
    /// One session writing back to back, reporting (JSON lines) every
    /// acknowledgement and every lost and resumed connection: how a client
    /// sees a failover (loadgen/failover.py drives it).
    Probe(ProbeArgs),
    /// Answer every request with an empty OK reply (measures the generator).
    NullServer {
        #[arg(long, default_value_t = 2181)]
        port: u16,
        #[arg(long, default_value = "127.0.0.1")]
        bind: String,
    },
}

#[derive(Args, Clone)]
struct ProbeArgs {
    /// Servers: host:port[,host:port...]. The probe starts on the first and
    /// moves to the next when its connection is lost.
    #[arg(long, short = 'c', default_value = "127.0.0.1:2181")]
    connect: String,
    /// How long to write, in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Session timeout asked for, in ms (the Java client's default is 30000).
    #[arg(long, default_value_t = 30_000)]
    session_timeout_ms: i32,
    /// The znode written (created if missing).
    #[arg(long, default_value = "/ferrokeeper-probe")]
    path: String,
    #[arg(long, default_value_t = 100)]
    value_size: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Progress {
    Auto,
    Always,
    Never,
}

#[derive(Args, Clone)]
struct RunArgs {
    /// Servers: host:port[,host:port...][/chroot]. Sessions are spread over them.
    #[arg(long, short = 'c', default_value = "127.0.0.1:2181")]
    connect: String,
    #[arg(long, short = 'w', value_enum, default_value_t = WorkloadKind::Getset)]
    workload: WorkloadKind,
    /// Concurrent sessions (watch: watching sessions; sessions: connect slots).
    #[arg(long, default_value_t = 16)]
    sessions: usize,
    /// Requests in flight per session (closed loop; the cap in open loop).
    #[arg(long, default_value_t = 8)]
    outstanding: usize,
    /// Open loop: total target rate per second (requests; connects for
    /// `sessions`; writes for `watch`, default 10). Latency is measured from
    /// each request's intended send time.
    #[arg(long)]
    rate: Option<f64>,
    /// Client threads (default: cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Measured seconds (after the warmup).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring starts (excluded from results).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// getset: percentage of getData (the rest is setData).
    #[arg(long, default_value_t = 90)]
    reads: u32,
    /// Key-space size (getset/multi keys; coord lock/election nodes).
    #[arg(long, default_value_t = 1000)]
    keys: usize,
    /// Bytes of data written by setData/create.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// multi: ops per transaction.
    #[arg(long, default_value_t = 4)]
    multi_ops: usize,
    /// churn: create modes to pick from at random.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "persistent")]
    create_modes: Vec<ChurnMode>,
    /// watch: one-shot getData watches re-armed after each event (default:
    /// persistent addWatch).
    #[arg(long)]
    watch_oneshot: bool,
    /// Node under which the run's nodes live (below the chroot).
    #[arg(long, default_value = "/ferrokeeper-loadgen")]
    base: String,
    #[arg(long, default_value_t = 30_000)]
    session_timeout_ms: i32,
    /// Skip creating the base node and keys (they exist already).
    #[arg(long)]
    no_setup: bool,
    /// Write the report as JSON.
    #[arg(long)]
    json: Option<String>,
    /// Write per-second, per-op-kind interval histograms (HdrHistogram log, µs).
    #[arg(long)]
    hdr_log: Option<String>,
    /// Write an SVG report (latency spectrum, throughput and latency over time).
    #[arg(long)]
    report: Option<String>,
    /// Report this server process's CPU time per op (repeatable).
    #[arg(long = "server-pid")]
    server_pids: Vec<u32>,
    /// One progress line per second on stderr (auto: when it is a terminal).
    #[arg(long, value_enum, default_value_t = Progress::Auto)]
    progress: Progress,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Some(Cmd::NullServer { port, bind }) => null_server_main(&bind, port),
        Some(Cmd::Run(args)) => run_main(*args),
        Some(Cmd::Probe(args)) => probe_main(&args),
        None => run_main(cli.run),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("ferrokeeper-loadgen: {e}");
            std::process::exit(2);
        }
    }
}

fn probe_main(args: &ProbeArgs) -> Result<i32, String> {
    let servers = ConnectString::parse(&args.connect)?.resolve()?;
    if !(args.duration.is_finite() && args.duration > 0.0) {
        return Err("--duration must be a positive number of seconds".into());
    }
    probe::run(&probe::ProbeSettings {
        servers,
        duration: Duration::from_secs_f64(args.duration),
        session_timeout_ms: args.session_timeout_ms,
        path: args.path.clone(),
        value_size: args.value_size,
    })
}

fn null_server_main(bind: &str, port: u16) -> Result<i32, String> {
    let addr: SocketAddr = format!("{bind}:{port}")
        .parse()
        .map_err(|e| format!("bad bind address: {e}"))?;
    null_server::serve(addr, |bound| {
        println!("null-server listening on {bound}");
        let _ = std::io::stdout().flush();
    })
    .map_err(|e| e.to_string())?;
    Ok(0)
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some((utime + stime) / if tck > 0 { tck as f64 } else { 100.0 })
}

fn setup(addr: SocketAddr, chroot: &str, wl: &Workload, args: &RunArgs) -> Result<(), String> {
    let started = Instant::now();
    let mut c = sync_client::SyncClient::connect(addr, args.session_timeout_ms)
        .map_err(|e| format!("setup: cannot connect to {addr}: {e}"))?;
    let acl = ferrokeeper::proto::Acl::open_unsafe();
    let create = |path: &str, data: &[u8]| -> Request<'static> {
        // Owned copies: the request must outlive the borrow in the batch.
        let path: &'static str = Box::leak(path.to_string().into_boxed_str());
        let data: &'static [u8] = Box::leak(data.to_vec().into_boxed_slice());
        Request::Create {
            op: op::CREATE,
            req: CreateRequest {
                path,
                data: Some(data),
                acl: acl.clone(),
                flags: CreateMode::Persistent as i32,
                ttl_ms: None,
            },
        }
    };
    let mut parents = Vec::new();
    let mut p = String::new();
    for part in chroot.split('/').filter(|s| !s.is_empty()) {
        p.push('/');
        p.push_str(part);
        parents.push(p.clone());
    }
    parents.extend(wl.setup_paths());
    for path in &parents {
        let (err, _) = c
            .call(&create(path, b""))
            .map_err(|e| format!("setup: {e}"))?;
        if err != 0 && err != -110 {
            return Err(format!(
                "setup: create {path} failed: {}",
                report::error_name(err)
            ));
        }
    }
    // Keys, pipelined in batches.
    let mut created = 0usize;
    for chunk in wl.keys.chunks(1000) {
        for path in chunk {
            let req = Request::Create {
                op: op::CREATE,
                req: CreateRequest {
                    path,
                    data: Some(&wl.value),
                    acl: acl.clone(),
                    flags: 0,
                    ttl_ms: None,
                },
            };
            c.send(&req);
        }
        while c.pending() > 0 {
            let (err, _) = c.recv().map_err(|e| format!("setup: {e}"))?;
            match err {
                0 => created += 1,
                -110 => {}
                e => {
                    return Err(format!(
                        "setup: creating keys failed: {}",
                        report::error_name(e)
                    ))
                }
            }
        }
    }
    c.close();
    eprintln!(
        "setup: {} nodes ensured, {} keys created, {} existed ({:.1} s)",
        parents.len(),
        created,
        wl.keys.len() - created,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[derive(Default)]
struct SecondAgg {
    hists: BTreeMap<OpKind, Histogram<u64>>,
    errors: u64,
    threads: usize,
}

impl SecondAgg {
    fn merged(&self) -> Histogram<u64> {
        let mut h = new_histogram();
        for k in self.hists.values() {
            let _ = h.add(k);
        }
        h
    }
}

fn run_main(args: RunArgs) -> Result<i32, String> {
    let cs = ConnectString::parse(&args.connect)?;
    let addrs = cs.resolve()?;
    if args.duration <= 0.0 || args.warmup < 0.0 {
        return Err("--duration must be > 0 and --warmup >= 0".into());
    }
    if args.sessions == 0 || args.keys == 0 {
        return Err("--sessions and --keys must be > 0".into());
    }
    if let Some(r) = args.rate {
        if r <= 0.0 || !r.is_finite() {
            return Err("--rate must be > 0".into());
        }
    }
    let base = args.base.trim_end_matches('/');
    ferrokeeper::tree::validate_path(base).map_err(|e| format!("bad --base {base:?}: {e}"))?;
    let root = format!("{}{}", cs.chroot, base);
    let wl = Arc::new(Workload::new(
        args.workload,
        root,
        args.keys,
        args.value_size,
        args.reads,
        args.multi_ops,
        args.create_modes.clone(),
    ));
    if !args.no_setup {
        setup(addrs[0], &cs.chroot, &wl, &args)?;
    }

    let roles = driver::roles(args.workload, args.sessions);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = args.threads.unwrap_or(cores).clamp(1, roles.len());
    let shared = Arc::new(Shared::new());
    let warmup_ns = (args.warmup * 1e9) as u64;
    let end_ns = warmup_ns + (args.duration * 1e9) as u64;
    let cfg = Arc::new(RunConfig {
        addrs: addrs.clone(),
        workload: wl.clone(),
        sessions: args.sessions,
        outstanding: args.outstanding,
        rate: args.rate,
        warmup_ns,
        end_ns,
        session_timeout_ms: args.session_timeout_ms,
        watch_oneshot: args.watch_oneshot,
        seed: args.seed,
    });
    let start_wall = SystemTime::now();
    let (tx, rx) = mpsc::channel::<Interval>();
    let mut handles = Vec::new();
    for t in 0..threads {
        let mine: Vec<(usize, driver::Role)> = roles
            .iter()
            .enumerate()
            .filter(|(i, _)| i % threads == t)
            .map(|(i, r)| (i, *r))
            .collect();
        let (cfg, shared, tx) = (cfg.clone(), shared.clone(), tx.clone());
        let watchers = args.sessions;
        handles.push(
            std::thread::Builder::new()
                .name(format!("lg-{t}"))
                .spawn(move || driver::run_thread(t, cfg, shared, mine, watchers, tx))
                .map_err(|e| e.to_string())?,
        );
    }
    drop(tx);

    let show_progress = match args.progress {
        Progress::Always => true,
        Progress::Never => false,
        Progress::Auto => std::io::stderr().is_terminal(),
    };
    let self_pid = std::process::id();
    let mut pids: Vec<(String, u32)> = args
        .server_pids
        .iter()
        .map(|p| ("server".to_string(), *p))
        .collect();
    pids.push(("loadgen".to_string(), self_pid));
    let mut cpu_start: Option<Vec<Option<f64>>> = None;
    let mut cpu_end: Option<Vec<Option<f64>>> = None;
    let snapshot = |pids: &[(String, u32)]| pids.iter().map(|(_, p)| cpu_seconds(*p)).collect();
    if warmup_ns == 0 {
        cpu_start = Some(snapshot(&pids));
    }
    let mut seconds: BTreeMap<u64, SecondAgg> = BTreeMap::new();
    let mut printed = 0u64;
    loop {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(iv) => {
                let agg = seconds.entry(iv.sec).or_default();
                agg.threads += 1;
                agg.errors += iv.errors;
                for (k, h) in iv.hists {
                    match agg.hists.get_mut(&k) {
                        Some(x) => {
                            let _ = x.add(&h);
                        }
                        None => {
                            agg.hists.insert(k, h);
                        }
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let now = shared.now();
        if cpu_start.is_none() && now >= warmup_ns {
            cpu_start = Some(snapshot(&pids));
        }
        if cpu_end.is_none() && now >= end_ns {
            cpu_end = Some(snapshot(&pids));
        }
        // Print every second all threads have reported.
        while let Some(agg) = seconds.get(&printed) {
            if agg.threads < threads {
                break;
            }
            if show_progress {
                let h = agg.merged();
                let phase = if (printed + 1) * 1_000_000_000 <= warmup_ns {
                    " (warmup)"
                } else {
                    ""
                };
                eprintln!(
                    "[{:>4}s] {:>10} ops/s  p99 {:>8.3} ms  errors {}{}",
                    printed + 1,
                    h.len(),
                    h.value_at_quantile(0.99) as f64 / 1000.0,
                    agg.errors,
                    phase
                );
            }
            printed += 1;
        }
    }
    let cpu_end = cpu_end.unwrap_or_else(|| snapshot(&pids));
    let cpu_start = cpu_start.unwrap_or_else(|| pids.iter().map(|_| None).collect());

    let mut totals: Vec<Histogram<u64>> = (0..OpKind::COUNT).map(|_| new_histogram()).collect();
    let mut errors: BTreeMap<i32, u64> = BTreeMap::new();
    for h in handles {
        let st = h
            .join()
            .map_err(|_| "a client thread panicked".to_string())?
            .map_err(|e| format!("client thread: {e}"))?;
        for (i, t) in st.totals.iter().enumerate() {
            let _ = totals[i].add(t);
        }
        for (c, n) in st.errors {
            *errors.entry(c).or_default() += n;
        }
    }
    let measured = (end_ns - warmup_ns) as f64 / 1e9;
    let mut overall_h = new_histogram();
    let mut by_op = Vec::new();
    for k in OpKind::ALL {
        let h = &totals[k.index()];
        if !h.is_empty() {
            let _ = overall_h.add(h);
            by_op.push(KindSummary::from_histogram(k.name(), h, measured));
        }
    }
    let overall = KindSummary::from_histogram("all", &overall_h, measured);
    let first_sec = warmup_ns.div_ceil(1_000_000_000);
    let timeline: Vec<TimePoint> = seconds
        .iter()
        .filter(|(s, _)| **s >= first_sec && (**s + 1) * 1_000_000_000 <= end_ns)
        .map(|(s, agg)| {
            let h = agg.merged();
            TimePoint {
                t: s - first_sec,
                ops: h.len(),
                errors: agg.errors,
                p50_us: h.value_at_quantile(0.5),
                p99_us: h.value_at_quantile(0.99),
                max_us: h.max(),
            }
        })
        .collect();
    let cpu: Vec<CpuUse> = pids
        .iter()
        .zip(cpu_start.iter().zip(cpu_end.iter()))
        .filter_map(|((what, pid), (a, b))| {
            let d = (*b)? - (*a)?;
            Some(CpuUse {
                what: what.clone(),
                pid: *pid,
                cpu_seconds: d,
                us_per_op: if overall.ops > 0 {
                    d * 1e6 / overall.ops as f64
                } else {
                    0.0
                },
                cores: d / measured,
            })
        })
        .collect();
    for (what, pid) in &pids {
        if what == "server" && cpu_seconds(*pid).is_none() {
            eprintln!("warning: cannot read /proc/{pid}/stat");
        }
    }
    let rep = Report {
        workload: args.workload.name().to_string(),
        target: args.connect.clone(),
        config: json!({
            "connect": args.connect,
            "workload": args.workload.name(),
            "mode": if args.rate.is_some() { "open" } else { "closed" },
            "rate": args.rate,
            "sessions": args.sessions,
            "outstanding": args.outstanding,
            "threads": threads,
            "warmup_s": args.warmup,
            "duration_s": args.duration,
            "reads_pct": args.reads,
            "keys": args.keys,
            "value_size": args.value_size,
            "multi_ops": args.multi_ops,
            "create_modes": args.create_modes.iter().map(|m| format!("{m:?}")).collect::<Vec<_>>(),
            "watch_oneshot": args.watch_oneshot,
        }),
        measured_seconds: measured,
        overall,
        by_op,
        errors,
        timeline,
        cpu,
    };
    print!("{}", rep.format_text());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&rep.to_json()).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("writing {path}: {e}"))?;
    }
    if let Some(path) = &args.report {
        std::fs::write(path, rep.render_svg()).map_err(|e| format!("writing {path}: {e}"))?;
    }
    if let Some(path) = &args.hdr_log {
        write_hdr_log(path, start_wall, &seconds, warmup_ns, end_ns)
            .map_err(|e| format!("writing {path}: {e}"))?;
    }
    Ok(if rep.overall.ops == 0 { 1 } else { 0 })
}

fn write_hdr_log(
    path: &str,
    start_wall: SystemTime,
    seconds: &BTreeMap<u64, SecondAgg>,
    warmup_ns: u64,
    end_ns: u64,
) -> std::io::Result<()> {
    use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
    use hdrhistogram::serialization::V2DeflateSerializer;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut ser = V2DeflateSerializer::new();
    let mut w = IntervalLogWriterBuilder::new()
        .add_comment("ferrokeeper-loadgen interval log; values in microseconds; tag = op kind")
        .with_start_time(start_wall)
        .with_base_time(start_wall)
        .begin_log_with(&mut file, &mut ser)?;
    for (sec, agg) in seconds {
        let s_ns = sec * 1_000_000_000;
        if s_ns + 1_000_000_000 <= warmup_ns || s_ns >= end_ns {
            continue;
        }
        for (kind, h) in &agg.hists {
            w.write_histogram(
                h,
                Duration::from_secs(*sec),
                Duration::from_secs(1),
                Tag::new(kind.name()),
            )
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        }
    }
    drop(w);
    file.flush()
}
