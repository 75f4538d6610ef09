//! The glommio runtime: one shard executor per core serving clients, plus one
//! pipeline executor that owns all writes. See docs/architecture.md.

pub mod admin_jobs;
pub mod batch;
pub mod bell;
pub mod conn;
pub mod gather;
pub mod inbox;
pub mod log;
pub mod messages;
pub mod pipeline;
pub mod quota_log;
pub mod reads;
pub mod registry;
pub mod replies;
pub mod send_queue;
pub mod session_dump;
pub mod shard;
pub mod snapshot_info;
pub mod stats;
pub mod stream;

use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use glommio::channels::shared_channel::{self, SharedReceiver, SharedSender};
use glommio::net::TcpListener;
use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement};
use hashbrown::HashMap;
use socket2::{Domain, Socket, Type};
use std::os::fd::{FromRawFd, IntoRawFd};
use tracing::{info, warn};

use crate::admin::{AdminServer, AdminSources};
use crate::config::Config;
use crate::limits;
use crate::metrics::window::SummaryWindows;
use crate::metrics::{MetricsServer, MetricsSources, TreeGauges};
use crate::tls::ReloadingConfig;
use log::{run_log, LogDone, LogRequest, LogStage};
use messages::{ToPipeline, ToShard};
use pipeline::{Pipeline, PipelineChannels, PipelineStart};
use registry::ConnRegistry;
use shard::Shard;
use snapshot_info::LastSnapshot;
use stats::ServerStats;

/// State every shard shares (atomics, or locks taken at connect/close only).
pub struct SharedState {
    pub stats: Arc<ServerStats>,
    pub registry: Arc<ConnRegistry>,
    pub ip_counts: Arc<Mutex<HashMap<IpAddr, u32>>>,
    pub shutdown: Arc<AtomicBool>,
    pub exited: Arc<AtomicUsize>,
    /// Newest zxid published by the pipeline; a shard behind it delays reads
    /// until it catches up, so a write answered on one shard is visible to
    /// any read that arrives later on another (as on Apache standalone).
    pub published_zxid: Arc<AtomicI64>,
    /// The tree's counts for the metrics endpoint; shard 0 stores them.
    pub tree_gauges: Arc<TreeGauges>,
    /// The newest snapshot on disk (`last_snapshot`).
    pub last_snapshot: Arc<LastSnapshot>,
    /// The cross-shard gather of watches and ephemerals (wchc, wchp, dump).
    pub gather: Arc<gather::ShardGather>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start executor: {0}")]
    Executor(String),
    #[error("cannot recover the database: {0}")]
    Storage(#[from] crate::storage::StorageError),
    #[error("cannot start the /metrics endpoint on {addr}: {source}")]
    Metrics {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the AdminServer on {addr}: {source}")]
    Admin {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// A key or trust store that cannot be used; the text names the
    /// zoo.cfg key and the file.
    #[error("cannot set up TLS for secureClientPort: {0}")]
    Tls(String),
    #[error("cannot join the ensemble: {0}")]
    Ensemble(crate::replica::PrepareError),
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
}

/// A started server; `shutdown` stops it and waits for its threads.
pub struct RunningServer {
    pub addr: SocketAddr,
    /// The TLS listener's address, with `secureClientPort`.
    pub secure_addr: Option<SocketAddr>,
    shutdown: Arc<AtomicBool>,
    exited: Arc<AtomicUsize>,
    handles: Vec<ExecutorJoinHandle<()>>,
    metrics: Option<MetricsServer>,
    admin: Option<AdminServer>,
}

/// Counts an executor as exited when its main future ends (or unwinds).
struct ExitGuard(Arc<AtomicUsize>);

impl Drop for ExitGuard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl RunningServer {
    /// True once any executor has stopped (normally only after `shutdown`).
    pub fn is_finished(&self) -> bool {
        self.exited.load(Ordering::SeqCst) > 0
    }

    pub fn shutdown(self) {
        self.shutdown.store(true, Ordering::SeqCst);
        for handle in self.handles {
            let _ = handle.join();
        }
        if let Some(metrics) = self.metrics {
            metrics.stop();
        }
        if let Some(admin) = self.admin {
            admin.stop();
        }
        info!("server stopped");
    }
}

pub fn start(cfg: Config) -> Result<RunningServer, StartError> {
    std::fs::create_dir_all(&cfg.data_dir).map_err(|source| StartError::DataDir {
        path: cfg.data_dir.display().to_string(),
        source,
    })?;
    let addr = SocketAddr::new(cfg.client_address, cfg.client_port);
    check_port_free(addr)?;
    // Stores are opened before anything else starts: a wrong password or
    // file stops startup with the key and file named.
    let secure = match cfg.tls.secure_client_port {
        Some(port) => {
            let secure_addr = SocketAddr::new(cfg.secure_client_address(), port);
            let tls = ReloadingConfig::load(&cfg.tls).map_err(StartError::Tls)?;
            check_port_free(secure_addr)?;
            Some(SecureListener {
                addr: secure_addr,
                tls: Arc::new(tls),
            })
        }
        None => None,
    };
    let secure_addr = secure.as_ref().map(|s| s.addr);
    let recovery_started = Instant::now();
    let opened = crate::storage::open(&crate::storage::StorageOptions::from_config(&cfg))?;
    let recovery_us = recovery_started.elapsed().as_micros() as u64;
    info!(
        "recovered zxid 0x{:x}: {} znodes, {} open sessions ({} txns replayed)",
        opened.recovered.last_zxid,
        opened.recovered.tree.node_count(),
        opened.recovered.sessions.len(),
        opened.recovered.replayed_txns
    );
    let shards = cfg.shards();
    let cfg = Arc::new(cfg);
    let shared = Arc::new(SharedState {
        stats: Arc::new(ServerStats::new(shards)),
        registry: Arc::new(ConnRegistry::default()),
        ip_counts: Arc::new(Mutex::new(HashMap::new())),
        shutdown: Arc::new(AtomicBool::new(false)),
        exited: Arc::new(AtomicUsize::new(0)),
        published_zxid: Arc::new(AtomicI64::new(0)),
        tree_gauges: Arc::new(TreeGauges::default()),
        last_snapshot: Arc::new(LastSnapshot::default()),
        gather: Arc::new(gather::ShardGather::new(shards)),
    });
    shared.stats.log.db_init_us.record_shared(recovery_us);
    // The recovered tree's counts until the first commit replaces them.
    shared.tree_gauges.publish(&opened.recovered.tree);
    let metrics = start_metrics(&cfg, &shared)?;
    let admin = start_admin(&cfg, &shared)?;
    let (mut inbox, mut outbox, mut shard_ends) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..shards {
        let (to_pipe_tx, to_pipe_rx) = shared_channel::new_bounded(limits::TO_PIPELINE_CHANNEL_CAP);
        let (to_shard_tx, to_shard_rx) = shared_channel::new_bounded(limits::TO_SHARD_CHANNEL_CAP);
        inbox.push(to_pipe_rx);
        outbox.push(to_shard_tx);
        shard_ends.push((to_pipe_tx, to_shard_rx));
    }
    let (log_tx, log_rx) = shared_channel::new_bounded(limits::LOG_CHANNEL_CAP);
    let (done_tx, done_rx) = shared_channel::new_bounded(limits::LOG_CHANNEL_CAP);
    // An ensemble when zoo.cfg lists more than one server (ZooKeeper runs a
    // single `server.N` standalone, its `standaloneEnabled` default).
    let zab = if cfg.servers.len() > 1 {
        let last_zxid = opened.recovered.last_zxid;
        Some(crate::replica::prepare(&cfg, last_zxid).map_err(StartError::Ensemble)?)
    } else {
        None
    };
    let start = PipelineStart {
        tree: opened.recovered.tree.clone(),
        sessions: opened.recovered.sessions.clone(),
        secret: opened.secret,
        zab,
    };
    if let Some(zxid) = opened.recovered.snapshot_zxid {
        let name = crate::storage::format::snapshot_name(zxid);
        shared.last_snapshot.record(&cfg.data_dir.join(name));
    }
    let stage = LogStage::new(
        &cfg,
        opened.wal,
        opened.db_id,
        opened.recovered.tree,
        opened.recovered.sessions,
        shared.last_snapshot.clone(),
        shared.stats.clone(),
    );
    let mut handles = vec![
        spawn_log(shared.clone(), stage, log_rx, done_tx)?,
        spawn_pipeline(
            cfg.clone(),
            shared.clone(),
            start,
            inbox,
            outbox,
            (log_tx, done_rx),
        )?,
    ];
    let (ready_tx, ready_rx) = mpsc::channel();
    for (index, (to_pipe, from_pipe)) in shard_ends.into_iter().enumerate() {
        let ends = ShardEnds {
            to_pipe,
            from_pipe,
            ready: ready_tx.clone(),
        };
        let listeners = Listeners {
            plain: addr,
            secure: secure.clone(),
        };
        handles.push(spawn_shard(
            index,
            cfg.clone(),
            shared.clone(),
            listeners,
            ends,
        )?);
    }
    let running = RunningServer {
        addr,
        secure_addr,
        shutdown: shared.shutdown.clone(),
        exited: shared.exited.clone(),
        handles,
        metrics,
        admin,
    };
    for _ in 0..shards {
        match ready_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(())) => {}
            Ok(Err((addr, source))) => {
                running.shutdown();
                return Err(StartError::Bind { addr, source });
            }
            Err(_) => {
                running.shutdown();
                return Err(StartError::Executor("a shard did not start in 30 s".into()));
            }
        }
    }
    info!("serving ZooKeeper clients on {addr} with {shards} shard(s)");
    if let Some(secure_addr) = secure_addr {
        info!("serving ZooKeeper clients over TLS on {secure_addr}");
    }
    Ok(running)
}

/// The Prometheus endpoint, when zoo.cfg names ZooKeeper's provider. Like
/// ZooKeeper, a port it cannot bind stops startup.
fn start_metrics(cfg: &Config, shared: &SharedState) -> Result<Option<MetricsServer>, StartError> {
    if !cfg.metrics.enabled {
        return Ok(None);
    }
    let addr = SocketAddr::new(cfg.metrics.http_address, cfg.metrics.http_port);
    let sources = MetricsSources {
        stats: shared.stats.clone(),
        tree: shared.tree_gauges.clone(),
        // As mntr reports it: the per-shard share the shards enforce, times shards.
        client_buffer_limit_bytes: (cfg.client_buffer_bytes() / cfg.shards() * cfg.shards()) as u64,
        windows: Arc::new(Mutex::new(SummaryWindows::new(shared.stats.started))),
    };
    MetricsServer::start(addr, sources)
        .map(Some)
        .map_err(|source| StartError::Metrics { addr, source })
}

/// The HTTP AdminServer unless `admin.enableServer=false`. Like standalone
/// ZooKeeper (ZooKeeperServerMain exits with "Unable to start AdminServer"),
/// a port it cannot bind stops startup.
fn start_admin(cfg: &Arc<Config>, shared: &SharedState) -> Result<Option<AdminServer>, StartError> {
    if !cfg.admin.enabled {
        return Ok(None);
    }
    let addr = SocketAddr::new(cfg.admin.address, cfg.admin.port);
    let sources = AdminSources {
        cfg: cfg.clone(),
        stats: shared.stats.clone(),
        tree: shared.tree_gauges.clone(),
        client_buffer_limit_bytes: (cfg.client_buffer_bytes() / cfg.shards() * cfg.shards()) as u64,
        registry: shared.registry.clone(),
        last_snapshot: shared.last_snapshot.clone(),
        gather: shared.gather.clone(),
        trace_mask: Arc::new(std::sync::atomic::AtomicI64::new(
            crate::admin::DEFAULT_TRACE_MASK,
        )),
    };
    AdminServer::start(sources)
        .map(Some)
        .map_err(|source| StartError::Admin { addr, source })
}

/// Our shards bind with SO_REUSEPORT; a bind without it first makes sure no
/// other process holds the port (it would otherwise silently share it with us).
///
/// A listener of a process that just died may outlive it briefly (its
/// io_uring ring is torn down asynchronously and holds the socket), so a
/// restart right after a crash retries for a bounded time before giving up.
fn check_port_free(addr: SocketAddr) -> Result<(), StartError> {
    let bind = || -> std::io::Result<()> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())
    };
    let deadline = std::time::Instant::now() + limits::BIND_RETRY_WINDOW;
    loop {
        match bind() {
            Ok(()) => return Ok(()),
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && std::time::Instant::now() < deadline =>
            {
                warn!("{addr} is still in use; retrying");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(source) => return Err(StartError::Bind { addr, source }),
        }
    }
}

/// A shard's listening socket: SO_REUSEPORT so every shard accepts on the
/// port (the kernel spreads connections), SO_REUSEADDR so a restart right
/// after a crash binds despite connections in TIME_WAIT (as ZooKeeper does).
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(limits::LISTEN_BACKLOG as i32)?;
    // SAFETY: the fd is a bound, listening TCP socket that we hand over whole.
    Ok(unsafe { TcpListener::from_raw_fd(socket.into_raw_fd()) })
}

fn spawn_log(
    shared: Arc<SharedState>,
    stage: LogStage,
    requests: SharedReceiver<LogRequest>,
    done: SharedSender<LogDone>,
) -> Result<ExecutorJoinHandle<()>, StartError> {
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(limits::EXECUTOR_IO_MEMORY_BYTES)
        .name("fk-log")
        .spawn(move || async move {
            let _guard = ExitGuard(shared.exited.clone());
            let requests = requests.connect().await;
            let done = done.connect().await;
            run_log(stage, requests, done).await;
        })
        .map_err(|e| StartError::Executor(e.to_string()))
}

fn spawn_pipeline(
    cfg: Arc<Config>,
    shared: Arc<SharedState>,
    start: PipelineStart,
    inbox: Vec<SharedReceiver<ToPipeline>>,
    outbox: Vec<SharedSender<ToShard>>,
    log: (SharedSender<LogRequest>, SharedReceiver<LogDone>),
) -> Result<ExecutorJoinHandle<()>, StartError> {
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(limits::EXECUTOR_IO_MEMORY_BYTES)
        .name("fk-pipeline")
        .spawn(move || async move {
            let _guard = ExitGuard(shared.exited.clone());
            let mut receivers = Vec::new();
            for rx in inbox {
                receivers.push(rx.connect().await);
            }
            let mut senders = Vec::new();
            for tx in outbox {
                senders.push(tx.connect().await);
            }
            let channels = PipelineChannels {
                inbox: receivers,
                outbox: senders,
                log_tx: log.0.connect().await,
                log_rx: log.1.connect().await,
            };
            Pipeline::new(
                cfg,
                shared.published_zxid.clone(),
                shared.stats.clone(),
                shared.gather.clone(),
                start,
            )
            .run(channels)
            .await;
        })
        .map_err(|e| StartError::Executor(e.to_string()))
}

struct ShardEnds {
    to_pipe: SharedSender<ToPipeline>,
    from_pipe: SharedReceiver<ToShard>,
    /// Ok once the shard listens; else the address it could not bind.
    ready: mpsc::Sender<Result<(), (SocketAddr, std::io::Error)>>,
}

/// The TLS port and the configuration its handshakes use.
#[derive(Clone)]
struct SecureListener {
    addr: SocketAddr,
    tls: Arc<ReloadingConfig>,
}

/// What a shard listens on: the plain client port, and the TLS one if set.
struct Listeners {
    plain: SocketAddr,
    secure: Option<SecureListener>,
}

fn spawn_shard(
    index: usize,
    cfg: Arc<Config>,
    shared: Arc<SharedState>,
    listeners: Listeners,
    ends: ShardEnds,
) -> Result<ExecutorJoinHandle<()>, StartError> {
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(limits::EXECUTOR_IO_MEMORY_BYTES)
        .name(&format!("fk-shard-{index}"))
        .spawn(move || async move {
            let _guard = ExitGuard(shared.exited.clone());
            run_shard(index, cfg, shared, listeners, ends).await
        })
        .map_err(|e| StartError::Executor(e.to_string()))
}

async fn run_shard(
    index: usize,
    cfg: Arc<Config>,
    shared: Arc<SharedState>,
    listeners: Listeners,
    ends: ShardEnds,
) {
    let tick = Duration::from_millis(cfg.tick_time_ms as u64);
    let shard = Rc::new(Shard::new(index, cfg, &shared));
    let to_pipe = ends.to_pipe.connect().await;
    let from_pipe = ends.from_pipe.connect().await;
    let listener = match listen(listeners.plain) {
        Ok(listener) => listener,
        Err(e) => {
            let _ = ends.ready.send(Err((listeners.plain, e)));
            return;
        }
    };
    let secure = match &listeners.secure {
        None => None,
        Some(secure) => match listen(secure.addr) {
            Ok(listener) => Some((listener, secure.tls.clone())),
            Err(e) => {
                let _ = ends.ready.send(Err((secure.addr, e)));
                return;
            }
        },
    };
    let outbound = glommio::spawn_local(shard.clone().run_outbound(to_pipe)).detach();
    let commits = shard.clone();
    // One writer for the tree gauges: shard 0 (every shard sees every commit).
    let tree_gauges = (index == 0).then(|| shared.tree_gauges.clone());
    glommio::spawn_local(async move {
        while let Some(ToShard::Commit(notice)) = from_pipe.recv().await {
            commits.on_commit(*notice);
            if let Some(gauges) = &tree_gauges {
                gauges.publish(&commits.version.borrow());
            }
        }
    })
    .detach();
    let toucher = shard.clone();
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(tick / 2).await;
            toucher.flush_touches();
            toucher.release_freed_memory();
        }
    })
    .detach();
    let answerer = shard.clone();
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(limits::admin::GATHER_POLL_INTERVAL).await;
            answerer.gather.answer_if_asked(&answerer);
        }
    })
    .detach();
    let _ = ends.ready.send(Ok(()));
    let plain = accept_loop(&shard, &listener, None, &shared.shutdown);
    match &secure {
        None => plain.await,
        Some((secure_listener, tls)) => {
            let secure = accept_loop(&shard, secure_listener, Some(tls), &shared.shutdown);
            futures_lite::future::zip(plain, secure).await;
        }
    }
    for conn in shard.conns.borrow().values() {
        conn.close_now();
    }
    shard.shutting_down.set(true);
    shard.send_to_pipeline(ToPipeline::Touch(Vec::new()));
    outbound.await;
}

/// Accepts until shutdown; `tls` makes every connection start with a TLS handshake.
async fn accept_loop(
    shard: &Rc<Shard>,
    listener: &TcpListener,
    tls: Option<&Arc<ReloadingConfig>>,
    shutdown: &AtomicBool,
) {
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            while !shutdown.load(Ordering::Relaxed) {
                glommio::timer::sleep(Duration::from_millis(50)).await;
            }
            None
        })
        .await;
        match accepted {
            Some(Ok(stream)) => {
                let Ok(peer) = stream.peer_addr() else {
                    continue;
                };
                let tls = tls.cloned();
                glommio::spawn_local(conn::serve(shard.clone(), stream, peer, tls)).detach();
            }
            Some(Err(e)) => {
                // Usually EMFILE: back off briefly instead of spinning on accept.
                warn!("accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
            None => return,
        }
    }
}
