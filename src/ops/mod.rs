//! Four-letter words on the client port, in ZooKeeper's output formats (tools
//! grep `Mode:` in srvr, kazoo parses `zookeeper.version=` in envi, monitoring
//! parses mntr's `zk_<key>\t<value>` lines).

use std::fmt::Write as _;
use std::time::Duration;

use crate::server::session_dump;
use crate::server::shard::Shard;
use crate::server::stats::Totals;

/// The ZooKeeper version we report and follow (clients key features off it).
pub const ZK_COMPAT_VERSION: &str = "3.9.2";

pub fn version_line() -> String {
    format!(
        "{}-ferrokeeper-{}, built on unknown",
        ZK_COMPAT_VERSION,
        env!("CARGO_PKG_VERSION")
    )
}

/// The reply to `word`, or the whitelist refusal. The connection closes after it.
pub async fn four_letter_reply(word: &str, shard: &Shard) -> String {
    if !shard.cfg.four_letter_whitelist.allows(word) {
        return format!("{word} is not executed because it is not in the whitelist.\n");
    }
    if NEEDS_A_RUNNING_SERVER.contains(&word) && !is_serving(shard) {
        return format!("{ZK_NOT_SERVING}\n");
    }
    let totals = shard.stats.totals();
    match word {
        "ruok" => "imok".to_string(),
        "srvr" => srvr(shard, &totals, false),
        "stat" => srvr(shard, &totals, true),
        "conf" => conf(shard),
        "cons" => cons(shard),
        "crst" => {
            // ZooKeeper's crst resets the connections' counters only.
            shard.registry.reset_stats();
            "Connection stats reset.\n".to_string()
        }
        "srst" => {
            shard.stats.reset();
            "Server stats reset.\n".to_string()
        }
        "envi" => envi(shard),
        "mntr" => mntr(shard, &totals),
        "wchs" => wchs(&totals),
        "wchc" | "wchp" => wch_paths(shard, word == "wchc").await,
        "dump" => dump(shard).await,
        "dirs" => {
            let (data, log) = dir_sizes(&shard.cfg);
            format!("datadir_size: {data}\nlogdir_size: {log}\n")
        }
        "isro" => isro(shard).to_string(),
        // DigestCommand: each logged digest as "<zxid hex>: <digest>".
        "hash" => shard
            .version
            .borrow()
            .digest_log()
            .map(|d| format!("{:x}: {}\n", d.zxid, d.digest))
            .collect(),
        other => format!("{other} is not executed because it is not supported by this server.\n"),
    }
}

/// `AbstractFourLetterCommand.ZK_NOT_SERVING`: what these words answer while an
/// ensemble member has no leader (electing or syncing), as ZooKeeper's do.
const ZK_NOT_SERVING: &str = "This ZooKeeper instance is not currently serving requests";
const NEEDS_A_RUNNING_SERVER: &[&str] = &[
    "srvr", "stat", "conf", "cons", "crst", "srst", "mntr", "dump", "dirs", "wchs", "wchc", "wchp",
    "hash",
];

/// `IsroCommand`: "ro" from a read-only server, "null" while nothing is
/// served (electing), "rw" otherwise.
fn isro(shard: &Shard) -> &'static str {
    match shard.stats.replica.mode() {
        crate::replica::status::Mode::ReadOnly => "ro",
        crate::replica::status::Mode::Looking => "null",
        _ => "rw",
    }
}

fn is_serving(shard: &Shard) -> bool {
    shard.stats.replica.mode() != crate::replica::status::Mode::Looking
}

/// The server's role, as srvr's `Mode:` and mntr's `zk_server_state` say it.
pub(crate) fn mode(stats: &crate::server::stats::ServerStats) -> &'static str {
    stats.replica.mode().name()
}

fn srvr(shard: &Shard, t: &Totals, with_clients: bool) -> String {
    let version = shard.version.borrow();
    let mut s = format!("Zookeeper version: {}\n", version_line());
    if with_clients {
        s.push_str("Clients:\n");
        for line in shard.registry.lines() {
            let _ = writeln!(s, " {line}");
        }
        s.push('\n');
    }
    let _ = write!(
        s,
        "Latency min/avg/max: {}/{:.1}/{}\nReceived: {}\nSent: {}\nConnections: {}\nOutstanding: {}\nZxid: 0x{:x}\nMode: {}\nNode count: {}\n",
        t.latency_min_ms,
        t.latency_avg_ms as f64,
        t.latency_max_ms,
        t.packets_received,
        t.packets_sent,
        t.connections,
        t.outstanding,
        version.last_zxid(),
        mode(&shard.stats),
        version.zk_node_count(),
    );
    s
}

fn conf(shard: &Shard) -> String {
    let mut s = standalone_conf(shard);
    s.push_str(&ensemble_conf(&shard.cfg));
    s
}

/// `QuorumZooKeeperServer.dumpConf`'s lines, for an ensemble member.
fn ensemble_conf(c: &crate::config::Config) -> String {
    if c.servers.len() < 2 {
        return String::new();
    }
    let Ok(ensemble) = crate::quorum::ensemble::Ensemble::from_config(c) else {
        return String::new();
    };
    let me = ensemble.me();
    format!(
        "initLimit={}\nsyncLimit={}\nelectionAlg=3\nelectionPort={}\nquorumPort={}\npeerType={}\nmembership: \n{}",
        c.init_limit_ticks,
        c.sync_limit_ticks,
        me.election_port,
        me.quorum_port,
        u8::from(me.observer),
        ensemble.config_text(),
    )
}

/// (data dir, log dir) sizes in bytes, as ZooKeeper's `dirs` reports them.
pub(crate) fn dir_sizes(c: &crate::config::Config) -> (u64, u64) {
    use crate::storage::usage::dir_size_bytes;
    (dir_size_bytes(&c.data_dir), dir_size_bytes(&c.data_log_dir))
}

fn standalone_conf(shard: &Shard) -> String {
    let c = &shard.cfg;
    let (data_bytes, log_bytes) = dir_sizes(c);
    format!(
        "clientPort={}\nsecureClientPort={}\ndataDir={}\ndataDirSize={}\ndataLogDir={}\ndataLogSize={}\ntickTime={}\nmaxClientCnxns={}\nminSessionTimeout={}\nmaxSessionTimeout={}\nclientPortListenBacklog=-1\nserverId={}\n",
        c.client_port,
        c.tls.secure_client_port.map_or(-1, i32::from),
        c.data_dir.display(),
        data_bytes,
        c.data_log_dir.display(),
        log_bytes,
        c.tick_time_ms,
        c.max_client_cnxns,
        c.min_session_timeout_ms,
        c.max_session_timeout_ms,
        c.my_id.unwrap_or(0),
    )
}

fn cons(shard: &Shard) -> String {
    let mut s = String::new();
    for line in shard.registry.lines() {
        let _ = writeln!(s, " {line}");
    }
    s.push('\n');
    s
}

fn envi(shard: &Shard) -> String {
    let mut s = "Environment:\n".to_string();
    for (key, value) in envi_pairs(&shard.cfg) {
        let _ = writeln!(s, "{key}={value}");
    }
    s
}

/// envi's `key=value` pairs (also the AdminServer's `environment`).
pub(crate) fn envi_pairs(cfg: &crate::config::Config) -> Vec<(&'static str, String)> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let os_version = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let (user_name, user_home) = passwd_entry();
    vec![
        ("zookeeper.version", version_line()),
        ("host.name", host.trim().to_string()),
        ("os.name", java_os_name().to_string()),
        ("os.arch", java_os_arch().to_string()),
        ("os.version", os_version.trim().to_string()),
        ("user.name", user_name),
        ("user.home", user_home),
        ("user.dir", cwd),
        ("ferrokeeper.shards", cfg.shards().to_string()),
    ]
}

/// The effective user's name and home directory from the password
/// database, as Java's `user.name`/`user.home` come (its "?" when unknown).
fn passwd_entry() -> (String, String) {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: a zeroed passwd is a valid out-parameter for getpwuid_r.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call, buf's length is passed,
    // and the strings read below point into buf, which outlives them.
    let rc = unsafe {
        libc::getpwuid_r(
            libc::geteuid(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() {
        return ("?".to_string(), "?".to_string());
    }
    let text = |p: *const libc::c_char| {
        if p.is_null() {
            "?".to_string()
        } else {
            // SAFETY: getpwuid_r filled p with a NUL-terminated string in buf.
            unsafe { std::ffi::CStr::from_ptr(p) }
                .to_string_lossy()
                .into_owned()
        }
    };
    (text(pwd.pw_name), text(pwd.pw_dir))
}

/// `os.name` as Java reports it ("Linux"), so tools that match on it agree.
fn java_os_name() -> &'static str {
    match std::env::consts::OS {
        "linux" => "Linux",
        "macos" => "Mac OS X",
        other => other,
    }
}

/// `os.arch` as Java reports it (x86_64 is "amd64" there).
fn java_os_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "i386",
        other => other,
    }
}

/// The tree's counts mntr reports (from a shard's tree version, or from the
/// `TreeGauges` shard 0 publishes for other threads).
pub(crate) struct TreeCounts {
    pub znode_count: u64,
    pub ephemerals_count: u64,
    pub approximate_data_bytes: i64,
    pub last_zxid: i64,
}

fn mntr(shard: &Shard, t: &Totals) -> String {
    let version = shard.version.borrow();
    let tree = TreeCounts {
        znode_count: version.zk_node_count() as u64,
        ephemerals_count: version.ephemeral_count() as u64,
        approximate_data_bytes: version.approximate_data_bytes(),
        last_zxid: version.last_zxid(),
    };
    let client_buffer_limit = (shard.client_bytes_max * shard.cfg.shards()) as u64;
    let mut s = String::new();
    for (key, value) in mntr_rows(&shard.stats, t, &tree, client_buffer_limit) {
        let _ = writeln!(s, "{key}\t{value}");
    }
    s
}

/// mntr's rows, in order (also the AdminServer's `monitor`).
pub(crate) fn mntr_rows(
    stats: &crate::server::stats::ServerStats,
    t: &Totals,
    tree: &TreeCounts,
    client_buffer_limit: u64,
) -> Vec<(&'static str, String)> {
    let uptime: Duration = stats.started.elapsed();
    let mut rows = vec![
        ("zk_version", version_line()),
        ("zk_server_state", mode(stats).to_string()),
        ("zk_avg_latency", format!("{:.1}", t.latency_avg_ms as f64)),
        ("zk_max_latency", t.latency_max_ms.to_string()),
        ("zk_min_latency", t.latency_min_ms.to_string()),
        ("zk_packets_received", t.packets_received.to_string()),
        ("zk_packets_sent", t.packets_sent.to_string()),
        ("zk_num_alive_connections", t.connections.to_string()),
        ("zk_outstanding_requests", t.outstanding.to_string()),
        ("zk_znode_count", tree.znode_count.to_string()),
        ("zk_watch_count", t.watch_count.to_string()),
        ("zk_ephemerals_count", tree.ephemerals_count.to_string()),
        (
            "zk_approximate_data_size",
            tree.approximate_data_bytes.to_string(),
        ),
        ("zk_global_sessions", stats.session_count().to_string()),
        ("zk_uptime", uptime.as_millis().to_string()),
        ("zk_last_zxid", format!("0x{:x}", tree.last_zxid)),
        ("zk_rejected_frames", t.frames_rejected.to_string()),
        // Ferrokeeper's own: what it holds for clients, against its bound.
        ("zk_client_buffer_bytes", t.client_buffer_bytes.to_string()),
        (
            "zk_client_buffer_limit_bytes",
            client_buffer_limit.to_string(),
        ),
        ("zk_slow_clients_closed", t.slow_clients_closed.to_string()),
    ];
    rows.extend(ensemble_rows(&stats.replica));
    rows
}

/// What an ensemble member adds to mntr: the leader's learner gauges
/// (`LeaderZooKeeperServer.registerMetrics`) and every peer's state
/// (`QuorumPeer.getDetailedPeerState`). Nothing for a standalone server.
fn ensemble_rows(r: &crate::replica::status::ReplicaStatus) -> Vec<(&'static str, String)> {
    use crate::replica::status::Mode;
    let mode = r.mode();
    let mut rows = Vec::new();
    if mode == Mode::Standalone {
        return rows;
    }
    if mode == Mode::Leader {
        rows.extend([
            ("zk_learners", r.learners().to_string()),
            // 3.4's name for the same count, which older dashboards read.
            ("zk_followers", r.learners().to_string()),
            ("zk_synced_followers", r.synced_followers().to_string()),
            ("zk_synced_non_voting_followers", "0".to_string()),
            ("zk_synced_observers", r.synced_observers().to_string()),
            ("zk_pending_syncs", r.pending_syncs().to_string()),
        ]);
    }
    let peer_state = match mode {
        Mode::Leader => "leading - broadcast",
        Mode::Follower => "following - broadcast",
        Mode::Observer => "observing - broadcast",
        _ => "looking",
    };
    rows.push(("zk_peer_state", peer_state.to_string()));
    rows.push(("zk_quorum_size", r.voters().to_string()));
    rows
}

fn wchs(t: &Totals) -> String {
    format!(
        "{} connections watching {} paths\nTotal watches:{}\n",
        t.watching_connections, t.watched_paths, t.data_watches
    )
}

/// wchc (by session) and wchp (by path), as ZooKeeper's
/// `WatchManager.dumpWatches` prints them, for every shard's connections
/// (gathered: each shard's watch registry belongs to its executor).
async fn wch_paths(shard: &Shard, by_session: bool) -> String {
    let poll = crate::limits::admin::GATHER_POLL_INTERVAL;
    let gathered = shard.gather.gather_from(shard, poll, false).await;
    if by_session {
        wchc_text(&gathered.watches)
    } else {
        wchp_text(&gathered.watches)
    }
}

fn wchc_text(pairs: &[(std::sync::Arc<str>, i64)]) -> String {
    let mut s = String::new();
    for (session, paths) in crate::server::gather::by_session(pairs) {
        let _ = writeln!(s, "0x{session:x}");
        for path in paths {
            let _ = writeln!(s, "\t{path}");
        }
    }
    s
}

fn wchp_text(pairs: &[(std::sync::Arc<str>, i64)]) -> String {
    let mut s = String::new();
    for (path, sessions) in crate::server::gather::by_path(pairs) {
        let _ = writeln!(s, "{path}");
        for session in sessions {
            let _ = writeln!(s, "\t0x{session:x}");
        }
    }
    s
}

/// `DumpCommand`: the session tracker's dump (the pipeline's table, through
/// the gather), then the ephemerals of the tree this shard serves (every
/// shard serves the same tree, so it has every session's ephemerals).
async fn dump(shard: &Shard) -> String {
    let poll = crate::limits::admin::GATHER_POLL_INTERVAL;
    let gathered = shard.gather.gather_from(shard, poll, true).await;
    crate::server::gather::warn_if_partial("dump", &gathered);
    let mut s = "SessionTracker dump:\n".to_string();
    if let Some(list) = &gathered.sessions {
        s.push_str(&session_dump::dump_text(
            list,
            crate::clock::elapsed_ms(),
            crate::clock::unix_ms(),
        ));
    }
    let version = shard.version.borrow();
    s.push_str("ephemeral nodes dump:\nSessions with Ephemerals (");
    let sessions = version.ephemeral_sessions();
    let _ = writeln!(s, "{}):", sessions.len());
    for session in sessions {
        let _ = writeln!(s, "0x{session:x}:");
        for path in version.ephemerals_of(session, "/") {
            let _ = writeln!(s, "\t{path}");
        }
    }
    s.push_str("Connections dump:\n");
    s
}
