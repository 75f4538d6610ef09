//! ZooKeeper 3.5+'s HTTP AdminServer (`admin.*` in zoo.cfg): `GET
//! {commandURL}` lists the commands, `GET {commandURL}/<name>` runs one and
//! answers JSON with the keys and value types of ZooKeeper 3.9's
//! `Commands.java` (through its `JsonOutputter`: `command`, `error`, then the
//! command's own keys).
//!
//! Like `/metrics` it runs on threads of its own (`crate::http`) and reads
//! only what the server publishes for other threads: [`ServerStats`]'
//! atomics, the tree's [`TreeGauges`] and the configuration, and, for what
//! only shards hold (watches, ephemerals), the bounded cross-shard gather
//! ([`ShardGather`]). `snapshot` and `restore` ([`snapshot`]), the two
//! that need auth, are jobs for the pipeline, which owns the tree and the log.

mod auth;
mod peer;
mod rate;
mod snapshot;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicI64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tracing::info;

use crate::config::Config;
use crate::http::{self, percent_decode, status_only, Bounds, HttpServer, Reply, Request};
use crate::limits::admin as bounds;
use crate::metrics::TreeGauges;
use crate::ops;
use crate::server::gather::{self, ShardGather};
use crate::server::registry::ConnRegistry;
use crate::server::session_dump;
use crate::server::snapshot_info::LastSnapshot;
use crate::server::stats::ServerStats;
use snapshot::{Limiters, RESTORE, SNAPSHOT};

/// What the commands read; cheap to clone into the HTTP threads.
#[derive(Clone)]
pub struct AdminSources {
    pub cfg: Arc<Config>,
    pub stats: Arc<ServerStats>,
    pub tree: Arc<TreeGauges>,
    /// The server-wide client buffer bound in force (all shards together).
    pub client_buffer_limit_bytes: u64,
    /// Every shard's connections (`cons`, `stat`, `crst`).
    pub registry: Arc<ConnRegistry>,
    pub last_snapshot: Arc<LastSnapshot>,
    /// Every shard's watches and the tree's ephemerals (`watches`,
    /// `watches_by_path`, `dump`).
    pub gather: Arc<ShardGather>,
    /// `get_trace_mask`/`set_trace_mask`'s mask (Ferrokeeper traces by
    /// `RUST_LOG`, so the mask is kept and reported, as ZooTrace's is, and
    /// changes no output).
    pub trace_mask: Arc<AtomicI64>,
}

/// ZooTrace's initial mask: client requests, server packets, sessions and
/// warnings (`CLIENT_REQUEST | SERVER_PACKET | SESSION | WARNING`).
pub const DEFAULT_TRACE_MASK: i64 = (1 << 1) | (1 << 4) | (1 << 5) | (1 << 8);

/// The commands served: ZooKeeper's primary name first, then its aliases.
pub const COMMANDS: &[&[&str]] = &[
    &["configuration", "conf", "config"],
    &["connection_stat_reset", "crst"],
    &["connections", "cons"],
    &["dirs"],
    &["dump"],
    &["environment", "env", "envi"],
    &["get_trace_mask", "gtmk"],
    &["hash"],
    &["initial_configuration", "icfg"],
    &["is_read_only", "isro"],
    &["last_snapshot", "lsnp"],
    &["leader", "lead"],
    &["monitor", "mntr"],
    &["observer_connection_stat_reset", "orst"],
    &["observers", "obsr"],
    &["ruok"],
    &["server_stats", "srvr"],
    &["set_trace_mask", "stmk"],
    &["stat_reset", "srst"],
    &["stats", "stat"],
    &["system_properties", "sysp"],
    &["voting_view"],
    &["watch_summary", "wchs"],
    &["watches", "wchc"],
    &["watches_by_path", "wchp"],
    &["zabstate"],
];

/// The commands ZooKeeper runs without a serving server
/// (`Command.isServerRequired` false); the rest answer
/// `ZK_NOT_SERVING` while an ensemble member has no leader.
const SERVER_NOT_REQUIRED: &[&str] = &[
    "environment",
    "get_trace_mask",
    "monitor",
    "set_trace_mask",
    "system_properties",
    "zabstate",
];

/// ZooKeeper's `JsonOutputter` content type.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// The running AdminServer; `stop` ends its accept thread and waits for it.
pub struct AdminServer {
    server: HttpServer,
}

impl AdminServer {
    /// Binds `admin.serverAddress:admin.serverPort` (failing if it cannot)
    /// and starts serving.
    pub fn start(sources: AdminSources) -> io::Result<AdminServer> {
        let admin = &sources.cfg.admin;
        let addr = SocketAddr::new(admin.address, admin.port);
        let limits = Bounds {
            connections_max: bounds::CONNECTIONS_MAX,
            head_bytes_max: bounds::REQUEST_HEAD_BYTES_MAX,
            deadline: Duration::from_millis(admin.idle_timeout_ms),
            accept_poll: bounds::ACCEPT_POLL_INTERVAL,
        };
        let url = admin.command_url.clone();
        let limiters = Limiters::new(admin.rate_limiter_interval_ms);
        let handler = Arc::new(move |req: &mut Request<'_>| respond(req, &sources, &limiters));
        let server = HttpServer::start("admin", addr, limits, handler)?;
        info!("AdminServer on http://{}{url}", server.addr());
        Ok(AdminServer { server })
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    pub fn stop(self) {
        self.server.stop();
    }
}

fn respond(req: &mut Request, src: &AdminSources, limiters: &Limiters) -> Reply {
    let url = src.cfg.admin.command_url.as_str();
    let rest = match req.path.strip_prefix(url) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
        _ => return status_only(404, "Not Found").into(),
    };
    let name = percent_decode(rest.trim_start_matches('/'));
    // ZooKeeper 3.9 runs restore for POST only, the rest for GET (3.8,
    // without restore, answers POST 405 as well).
    match (req.method, name.as_str()) {
        ("POST", n) if RESTORE.contains(&n) => return snapshot::restore(req, n, src, limiters),
        ("GET" | "HEAD", n) if SNAPSHOT.contains(&n) => {
            return snapshot::snapshot(req, n, src, limiters)
        }
        ("GET" | "HEAD", n) if !RESTORE.contains(&n) => {}
        _ => return status_only(405, "Method Not Allowed").into(),
    }
    let with_body = req.method == "GET";
    if name.is_empty() {
        // CommandListServlet: one link per command, each followed by <br/>;
        // it sets no content type (Apache 3.8's Jetty sends none).
        let mut body = String::new();
        let mut names: Vec<&str> = COMMANDS.iter().map(|names| names[0]).collect();
        names.extend([SNAPSHOT[0], RESTORE[0]]);
        names.sort_unstable();
        for name in names {
            body.push_str(&format!("<a href=\"{url}/{name}\">{name}</a>\n<br/>\n"));
        }
        return http::reply(200, "OK", "", body.as_bytes(), with_body).into();
    }
    let body = run_command(&name, req.query, src);
    let mut text = serde_json::to_string_pretty(&body).unwrap_or_default();
    text.push('\n');
    // ZooKeeper answers an unknown command with 200 and its `error` set.
    http::reply(200, "OK", JSON_CONTENT_TYPE, text.as_bytes(), with_body).into()
}

/// One command's response map (`CommandResponse.toMap`): `command` (its
/// primary name, whatever alias was asked; the name as asked when unknown),
/// `error` (null unless it failed), then its own keys.
pub fn run_command(name: &str, query: &str, src: &AdminSources) -> Value {
    let primary = COMMANDS
        .iter()
        .find(|names| names.contains(&name))
        .map(|names| names[0]);
    let mut out = Map::new();
    let Some(primary) = primary else {
        out.insert("command".into(), json!(name));
        out.insert("error".into(), json!(format!("Unknown command: {name}")));
        return Value::Object(out);
    };
    out.insert("command".into(), json!(primary));
    out.insert("error".into(), Value::Null);
    let serving = src.stats.replica.mode() != crate::replica::status::Mode::Looking;
    if !serving && !SERVER_NOT_REQUIRED.contains(&primary) {
        let not_serving = "This ZooKeeper instance is not currently serving requests";
        out.insert("error".into(), json!(not_serving));
        return Value::Object(out);
    }
    let data = command_data(primary, query, src);
    out.extend(data);
    Value::Object(out)
}

fn command_data(primary: &str, query: &str, src: &AdminSources) -> Map<String, Value> {
    let cfg = &src.cfg;
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    match primary {
        "ruok" => {}
        "configuration" => {
            put("client_port", json!(cfg.client_port));
            put("data_dir", json!(cfg.data_dir.display().to_string()));
            put(
                "data_log_dir",
                json!(cfg.data_log_dir.display().to_string()),
            );
            put("tick_time", json!(cfg.tick_time_ms));
            put("max_client_cnxns", json!(cfg.max_client_cnxns));
            put("min_session_timeout", json!(cfg.min_session_timeout_ms));
            put("max_session_timeout", json!(cfg.max_session_timeout_ms));
            put("server_id", json!(cfg.my_id.unwrap_or(0)));
            put("client_port_listen_backlog", json!(-1));
        }
        "connection_stat_reset" => src.registry.reset_stats(),
        "stat_reset" => src.stats.reset(),
        "connections" => {
            put("connections", json!(src.registry.json(false, false)));
            put("secure_connections", json!(src.registry.json(true, false)));
        }
        // As the `dirs` four-letter word reports them.
        "dirs" => {
            let (data, log) = ops::dir_sizes(cfg);
            put("datadir_size", json!(data));
            put("logdir_size", json!(log));
        }
        "environment" => {
            for (key, value) in ops::envi_pairs(cfg) {
                put(key, json!(value));
            }
        }
        "is_read_only" => put("read_only", json!(read_only(src))),
        // `LastSnapshotCommand`: the zxid in hex without a prefix (Java's
        // `Long.toHexString`, so -1 is sixteen f's), the time in seconds.
        "last_snapshot" => {
            let (zxid, unix_s) = src.last_snapshot.get();
            put("zxid", json!(format!("{:x}", zxid as u64)));
            put("timestamp", json!(unix_s));
        }
        "monitor" => {
            for (key, value) in mntr_rows(src) {
                put(key.trim_start_matches("zk_"), typed(&value));
            }
        }
        "server_stats" | "stats" => {
            let t = src.stats.totals();
            let tree = tree_counts(&src.tree);
            let (data_bytes, log_bytes) = ops::dir_sizes(cfg);
            let buffer = json!({
                "last_buffer_size": -1,
                "min_buffer_size": -1,
                "max_buffer_size": -1,
            });
            put("version", json!(ops::version_line()));
            put("read_only", json!(read_only(src)));
            put(
                "server_stats",
                json!({
                    "packets_sent": t.packets_sent,
                    "packets_received": t.packets_received,
                    "max_latency": t.latency_max_ms,
                    "min_latency": t.latency_min_ms,
                    "avg_latency": t.latency_avg_ms as f64,
                    "outstanding_requests": t.outstanding,
                    "last_processed_zxid": tree.last_zxid,
                    "data_dir_size": data_bytes,
                    "log_dir_size": log_bytes,
                    "server_state": ops::mode(&src.stats),
                    "num_alive_client_connections": t.connections,
                    "uptime": src.stats.started.elapsed().as_millis() as u64,
                    "provider_null": false,
                    "fsync_threshold_exceed_count": 0,
                    "non_mtlslocal_conn_count": 0,
                    "non_mtlsremote_conn_count": 0,
                    "auth_failed_count": 0,
                    "client_response_stats": buffer.clone(),
                }),
            );
            put("client_response", buffer);
            put("node_count", json!(tree.znode_count));
            // `StatCommand` is `SrvrCommand` plus the brief connection lists.
            if primary == "stats" {
                put("connections", json!(src.registry.json(false, true)));
                put("secure_connections", json!(src.registry.json(true, true)));
            }
        }
        "dump" => dump(src, &mut put),
        "watches" => {
            let g = src.gather.gather_blocking(false);
            put(
                "session_id_to_watched_paths",
                keyed(gather::by_session(&g.watches)),
            );
        }
        "watches_by_path" => {
            let g = src.gather.gather_blocking(false);
            put("path_to_session_ids", json!(gather::by_path(&g.watches)));
        }
        "get_trace_mask" => put("tracemask", json!(src.trace_mask.load(Relaxed))),
        "set_trace_mask" => set_trace_mask(src, query, &mut put),
        "initial_configuration" => put("initial_configuration", json!(cfg.initial_config)),
        "system_properties" => {
            for (key, value) in system_properties(cfg) {
                put(&key, json!(value));
            }
        }
        // Ferrokeeper keeps no per-observer connection counters to reset.
        "observer_connection_stat_reset" => {}
        "leader" => peer::leader(src, &mut put),
        "voting_view" => peer::voting_view(src, &mut put),
        "observers" => peer::observers(src, &mut put),
        "hash" => {
            let g = src.gather.gather_blocking(false);
            gather::warn_if_partial("hash", &g);
            let digests: Vec<Value> = g
                .digests
                .iter()
                .map(|d| {
                    json!({
                        "zxid": d.zxid,
                        "digest_version": crate::tree::digest::DIGEST_VERSION,
                        "digest": d.digest,
                    })
                })
                .collect();
            put("digests", Value::Array(digests));
        }
        "zabstate" => peer::zabstate(src, tree_counts(&src.tree).last_zxid, &mut put),
        "watch_summary" => {
            let t = src.stats.totals();
            put("num_connections", json!(t.watching_connections));
            put("num_paths", json!(t.watched_paths));
            put("num_total_watches", json!(t.data_watches));
        }
        _ => {}
    }
    m
}

/// `DumpCommand`: the sessions by expiry time (the pipeline's table; empty
/// on a learner, as ZooKeeper's), and every session's ephemerals (from the
/// gather: the admin threads hold no tree).
fn dump(src: &AdminSources, put: &mut impl FnMut(&str, Value)) {
    let g = src.gather.gather_blocking(true);
    let expiry: Map<String, Value> = match &g.sessions {
        Some(list) => session_dump::expiry_map(list)
            .into_iter()
            .map(|(ms, ids)| (ms.to_string(), json!(ids)))
            .collect(),
        None => Map::new(),
    };
    gather::warn_if_partial("dump", &g);
    put("expiry_time_to_session_ids", Value::Object(expiry));
    put(
        "session_id_to_ephemeral_paths",
        keyed(gather::ephemerals_by_session(&g.ephemerals)),
    );
}

/// A map keyed by session id as Jackson writes a `Map<Long, _>`: decimal keys.
fn keyed<V: Into<Value>>(m: std::collections::BTreeMap<i64, V>) -> Value {
    let obj: Map<String, Value> = m
        .into_iter()
        .map(|(id, v)| (id.to_string(), v.into()))
        .collect();
    Value::Object(obj)
}

/// `SetTraceMaskCommand`: `?traceMask=<long>`, with ZooKeeper's errors.
fn set_trace_mask(src: &AdminSources, query: &str, put: &mut impl FnMut(&str, Value)) {
    let arg = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "traceMask")
        .map(|(_, v)| percent_decode(v));
    let Some(arg) = arg else {
        put(
            "error",
            json!("setTraceMask requires long traceMask argument"),
        );
        return;
    };
    match arg.parse::<i64>() {
        Ok(mask) => {
            src.trace_mask.store(mask, Relaxed);
            put("tracemask", json!(mask));
        }
        Err(_) => put(
            "error",
            json!(format!(
                "setTraceMask requires long traceMask argument, got {arg}"
            )),
        ),
    }
}

/// `SystemPropertiesCommand`, sorted: the JVM properties that have a
/// meaning here, and the `-Dkey=value` flags of `JVMFLAGS`/`SERVER_JVMFLAGS`
/// (which zkServer.sh passes as system properties).
fn system_properties(cfg: &Config) -> std::collections::BTreeMap<String, String> {
    let mut props = std::collections::BTreeMap::new();
    // The os.* and user.* properties, as `environment` reports them.
    for (key, value) in ops::envi_pairs(cfg) {
        if key.starts_with("os.") || key.starts_with("user.") {
            props.insert(key.to_string(), value);
        }
    }
    props.insert("file.separator".into(), "/".into());
    props.insert("path.separator".into(), ":".into());
    props.insert("line.separator".into(), "\n".into());
    for var in crate::config::JVM_FLAGS_VARS {
        let flags = std::env::var(var).unwrap_or_default();
        for flag in flags.split_whitespace() {
            if let Some((k, v)) = flag.strip_prefix("-D").and_then(|kv| kv.split_once('=')) {
                props.insert(k.to_string(), v.to_string());
            }
        }
    }
    props
}

fn tree_counts(g: &TreeGauges) -> ops::TreeCounts {
    use std::sync::atomic::Ordering::Relaxed;
    ops::TreeCounts {
        znode_count: g.znode_count.load(Relaxed),
        ephemerals_count: g.ephemerals_count.load(Relaxed),
        approximate_data_bytes: g.approximate_data_bytes.load(Relaxed),
        last_zxid: g.last_zxid.load(Relaxed),
    }
}

fn mntr_rows(src: &AdminSources) -> Vec<(&'static str, String)> {
    let t = src.stats.totals();
    let tree = tree_counts(&src.tree);
    ops::mntr_rows(&src.stats, &t, &tree, src.client_buffer_limit_bytes)
}

/// mntr's text values as JSON: whole numbers and decimals as numbers (as
/// ZooKeeper's `dumpMonitorValues` puts longs and doubles), the rest as strings.
fn typed(value: &str) -> Value {
    if let Ok(n) = value.parse::<i64>() {
        return json!(n);
    }
    match value.parse::<f64>() {
        Ok(x) if x.is_finite() => json!(x),
        _ => json!(value),
    }
}

fn read_only(src: &AdminSources) -> bool {
    src.stats.replica.mode() == crate::replica::status::Mode::ReadOnly
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources() -> AdminSources {
        AdminSources {
            cfg: Arc::new(Config::default()),
            stats: Arc::new(ServerStats::new(1)),
            tree: Arc::new(TreeGauges::default()),
            client_buffer_limit_bytes: 1 << 20,
            registry: Arc::new(ConnRegistry::default()),
            last_snapshot: Arc::new(LastSnapshot::default()),
            gather: Arc::new(ShardGather::new(1)),
            trace_mask: Arc::new(AtomicI64::new(DEFAULT_TRACE_MASK)),
        }
    }

    #[test]
    fn every_response_has_command_and_error() {
        let src = sources();
        // Left out: those that answer an error here (a standalone `leader`,
        // `set_trace_mask` without its argument) and those that gather from
        // shards, which this test has none of (tests/admin_server.rs runs them).
        let skipped = [
            "leader",
            "set_trace_mask",
            "watches",
            "watches_by_path",
            "dump",
        ];
        for names in COMMANDS.iter().filter(|n| !skipped.contains(&n[0])) {
            for name in names.iter() {
                let v = run_command(name, "", &src);
                assert_eq!(v["command"], json!(names[0]), "{v}");
                assert!(v["error"].is_null(), "{v}");
            }
        }
        let v = run_command("nope", "", &src);
        assert_eq!(v["error"], json!("Unknown command: nope"));
    }

    #[test]
    fn mntr_values_keep_their_types() {
        let v = run_command("mntr", "", &sources());
        assert!(v["version"].is_string(), "{v}");
        assert!(v["znode_count"].is_u64(), "{v}");
        assert!(v["avg_latency"].is_number(), "{v}");
        assert!(v.get("zk_version").is_none(), "{v}");
        assert_eq!(typed("0x1f"), json!("0x1f"));
    }
}
