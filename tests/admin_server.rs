//! ZooKeeper's HTTP AdminServer (`admin.*`), against the built binary: the
//! command list, commands' JSON keys and value types as ZooKeeper 3.9's
//! `Commands.java` has them, an unknown command, `admin.enableServer=false`,
//! a taken admin port, and a bad `admin.serverPort` line.
//!
//! tests/compat/test_admin.py compares every command key by key with Apache
//! 3.8.0's AdminServer, live; the facts checked here were read off it too:
//! `command` is the primary name (`/commands/srvr` answers `"command":
//! "server_stats"`); an unknown command is 200 with `"error": "Unknown
//! command: <name>"`; the command list is sent without a Content-Type.

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use common::{expect_startup_failure, free_port, http, Server};
use serde_json::Value;

/// Bound on one HTTP exchange and on waiting for a process.
const WAIT: Duration = Duration::from_secs(10);

/// A server with the AdminServer on a free loopback port, and that address.
fn start_with_admin() -> (Server, SocketAddr) {
    let port = free_port();
    let port_text = port.to_string();
    let server = Server::start(&[
        ("admin.enableServer", "true"),
        ("admin.serverAddress", "127.0.0.1"),
        ("admin.serverPort", &port_text),
    ]);
    (server, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// GETs a command, checks 200 + JSON + `command` (its primary name) and
/// `error` (null), returns the object.
fn command(addr: SocketAddr, name: &str, primary: &str) -> serde_json::Map<String, Value> {
    let (status, content_type, body) = get(addr, &format!("/commands/{name}"));
    assert_eq!(status, 200, "{name}: {body}");
    assert!(
        content_type.starts_with("application/json"),
        "{name}: {content_type}"
    );
    let value: Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{name}: {e}: {body}"));
    let object = value
        .as_object()
        .unwrap_or_else(|| panic!("{name}: not an object: {body}"));
    assert_eq!(object["command"], Value::from(primary), "{body}");
    assert!(object["error"].is_null(), "{name}: {body}");
    object.clone()
}

/// Every key in `keys` is present with the JSON type ZooKeeper 3.9 gives it
/// ('n' number, 's' string, 'b' bool, 'o' object).
fn expect_keys(what: &str, object: &serde_json::Map<String, Value>, keys: &[(&str, char)]) {
    for (key, kind) in keys {
        let value = object
            .get(*key)
            .unwrap_or_else(|| panic!("{what}: no '{key}' in {object:?}"));
        let ok = match kind {
            'n' => value.is_number(),
            's' => value.is_string(),
            'b' => value.is_boolean(),
            'o' => value.is_object(),
            _ => unreachable!(),
        };
        assert!(ok, "{what}: '{key}' is {value}, expected kind {kind}");
    }
}

/// Keys and types from ZooKeeper 3.9's Commands.java (SrvrCommand, ConfCommand,
/// ZooKeeperServerConf.toMap, ServerStats' getters through Jackson's snake case).
const SRVR_KEYS: &[(&str, char)] = &[
    ("version", 's'),
    ("read_only", 'b'),
    ("server_stats", 'o'),
    ("client_response", 'o'),
    ("node_count", 'n'),
];
const SERVER_STATS_KEYS: &[(&str, char)] = &[
    ("packets_sent", 'n'),
    ("packets_received", 'n'),
    ("max_latency", 'n'),
    ("min_latency", 'n'),
    ("avg_latency", 'n'),
    ("outstanding_requests", 'n'),
    ("last_processed_zxid", 'n'),
    ("data_dir_size", 'n'),
    ("log_dir_size", 'n'),
    ("server_state", 's'),
    ("num_alive_client_connections", 'n'),
    ("uptime", 'n'),
    ("provider_null", 'b'),
    ("fsync_threshold_exceed_count", 'n'),
    ("auth_failed_count", 'n'),
    ("non_mtlslocal_conn_count", 'n'),
    ("non_mtlsremote_conn_count", 'n'),
    ("client_response_stats", 'o'),
];
const CONF_KEYS: &[(&str, char)] = &[
    ("client_port", 'n'),
    ("data_dir", 's'),
    ("data_log_dir", 's'),
    ("tick_time", 'n'),
    ("max_client_cnxns", 'n'),
    ("min_session_timeout", 'n'),
    ("max_session_timeout", 'n'),
    ("server_id", 'n'),
    ("client_port_listen_backlog", 'n'),
];
const MNTR_KEYS: &[(&str, char)] = &[
    ("version", 's'),
    ("server_state", 's'),
    ("avg_latency", 'n'),
    ("max_latency", 'n'),
    ("min_latency", 'n'),
    ("packets_received", 'n'),
    ("packets_sent", 'n'),
    ("num_alive_connections", 'n'),
    ("outstanding_requests", 'n'),
    ("znode_count", 'n'),
    ("watch_count", 'n'),
    ("ephemerals_count", 'n'),
    ("approximate_data_size", 'n'),
    ("uptime", 'n'),
];

/// One GET; returns (status, content type, body).
fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let reply = http::request(addr, "GET", path, WAIT);
    (reply.status, reply.content_type, reply.body)
}

#[test]
fn commands_answer_json_with_zookeeper_keys() {
    if common::is_apache() {
        return;
    }
    let (server, admin) = start_with_admin();
    let (status, content_type, body) = get(admin, "/commands");
    assert_eq!(status, 200, "{body}");
    assert!(content_type.is_empty(), "{content_type}");
    for name in [
        "ruok",
        "server_stats",
        "monitor",
        "configuration",
        "environment",
    ] {
        let link = format!("<a href=\"/commands/{name}\">{name}</a>");
        assert!(body.contains(&link), "{link} not in {body}");
    }
    assert_eq!(
        command(admin, "ruok", "ruok").len(),
        2,
        "ruok has only command and error"
    );
    let srvr = command(admin, "srvr", "server_stats");
    expect_keys("srvr", &srvr, SRVR_KEYS);
    expect_keys(
        "srvr.server_stats",
        srvr["server_stats"].as_object().unwrap(),
        SERVER_STATS_KEYS,
    );
    assert_eq!(srvr["server_stats"]["server_state"], "standalone");
    expect_keys(
        "server_stats",
        &command(admin, "server_stats", "server_stats"),
        SRVR_KEYS,
    );
    let mntr = command(admin, "mntr", "monitor");
    expect_keys("mntr", &mntr, MNTR_KEYS);
    assert!(mntr.keys().all(|k| !k.starts_with("zk_")), "{mntr:?}");
    let conf = command(admin, "conf", "configuration");
    expect_keys("conf", &conf, CONF_KEYS);
    assert_eq!(conf["client_port"], Value::from(server.port()));
    expect_keys(
        "envi",
        &command(admin, "envi", "environment"),
        &[("zookeeper.version", 's'), ("os.name", 's')],
    );
    expect_keys(
        "isro",
        &command(admin, "isro", "is_read_only"),
        &[("read_only", 'b')],
    );
    let dirs = command(admin, "dirs", "dirs");
    expect_keys(
        "dirs",
        &dirs,
        &[("datadir_size", 'n'), ("logdir_size", 'n')],
    );
    // dataDir and dataLogDir are one directory here, holding at least the
    // log's first (preallocated) segment; ZooKeeper sums every file's length.
    let on_disk = dir_bytes(&server.dir().join("data"));
    assert!(on_disk > 0);
    assert_eq!(dirs["datadir_size"], Value::from(on_disk), "{dirs:?}");
    assert_eq!(dirs["logdir_size"], Value::from(on_disk), "{dirs:?}");
    assert_eq!(srvr["server_stats"]["data_dir_size"], Value::from(on_disk));
    expect_keys(
        "wchs",
        &command(admin, "wchs", "watch_summary"),
        &[
            ("num_connections", 'n'),
            ("num_paths", 'n'),
            ("num_total_watches", 'n'),
        ],
    );
    command(admin, "srst", "stat_reset");
    command(admin, "crst", "connection_stat_reset");
    // ZooKeeper: 200, with the reason in `error`.
    let (status, content_type, body) = get(admin, "/commands/nosuchcommand");
    assert_eq!(status, 200, "{body}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let value: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(value["command"], "nosuchcommand");
    assert_eq!(value["error"], "Unknown command: nosuchcommand");
    let (status, _, _) = get(admin, "/elsewhere");
    assert_eq!(status, 404);
    // The client port still answers.
    assert_eq!(server.four_letter("ruok"), "imok");
}

/// `ServerCnxn.getConnectionInfo(false)`'s keys (JSON objects are unordered;
/// like every command here, ours come sorted).
const CONNECTION_KEYS: &[(&str, char)] = &[
    ("remote_socket_address", 's'),
    ("interest_ops", 'n'),
    ("outstanding_requests", 'n'),
    ("packets_received", 'n'),
    ("packets_sent", 'n'),
    ("session_id", 'n'),
    ("last_operation", 's'),
    ("established", 'n'),
    ("session_timeout", 'n'),
    ("last_cxid", 'n'),
    ("last_zxid", 'n'),
    ("last_response_time", 'n'),
    ("last_latency", 'n'),
    ("min_latency", 'n'),
    ("avg_latency", 'n'),
    ("max_latency", 'n'),
];
/// `getConnectionInfo(true)`: what `stat` lists.
const BRIEF_CONNECTION_KEYS: usize = 5;

#[test]
fn connections_and_stats_list_each_client_with_zookeepers_keys() {
    let (server, admin) = start_with_admin();
    let mut client = server.raw_with_timeout(10_000);
    client.call(
        common::raw::op::GET_DATA,
        &common::raw::path_watch("/", false),
    );
    let session = client.session_id();
    let local = client.stream.local_addr().expect("local addr").to_string();

    let cons = command(admin, "cons", "connections");
    let secure = cons["secure_connections"].as_array().expect("secure list");
    assert!(secure.is_empty(), "{cons:?}");
    let conns = cons["connections"].as_array().expect("list");
    let ours = conns
        .iter()
        .find(|c| c["remote_socket_address"] == local.as_str())
        .unwrap_or_else(|| panic!("{local} not in {conns:?}"))
        .as_object()
        .expect("object");
    expect_keys("cons", ours, CONNECTION_KEYS);
    assert_eq!(ours.len(), CONNECTION_KEYS.len(), "{ours:?}");
    assert_eq!(ours["session_id"], Value::from(session));
    assert_eq!(ours["last_operation"], "GETD");
    assert_eq!(ours["session_timeout"], Value::from(10_000));
    assert!(ours["packets_received"].as_u64() >= Some(1), "{ours:?}");
    assert!(ours["last_response_time"].as_i64() > Some(0), "{ours:?}");

    let stat = command(admin, "stat", "stats");
    expect_keys("stat", &stat, SRVR_KEYS);
    let brief = stat["connections"].as_array().expect("list");
    let ours = brief
        .iter()
        .find(|c| c["remote_socket_address"] == local.as_str())
        .unwrap_or_else(|| panic!("{local} not in {brief:?}"));
    assert_eq!(
        ours.as_object().expect("object").len(),
        BRIEF_CONNECTION_KEYS,
        "{ours}"
    );
    assert!(stat["secure_connections"].is_array(), "{stat:?}");

    // crst resets the connections' counters (only), as ZooKeeper's does.
    command(admin, "crst", "connection_stat_reset");
    let cons = command(admin, "cons", "connections");
    let ours = cons["connections"]
        .as_array()
        .expect("list")
        .iter()
        .find(|c| c["remote_socket_address"] == local.as_str())
        .cloned()
        .expect("still listed");
    assert_eq!(ours["packets_received"], Value::from(0), "{ours}");
    assert_eq!(ours["last_response_time"], Value::from(0), "{ours}");
    drop(client);
}

#[test]
fn last_snapshot_names_the_newest_snapshot_file() {
    let port = free_port().to_string();
    let server = Server::start(&[
        ("admin.enableServer", "true"),
        ("admin.serverAddress", "127.0.0.1"),
        ("admin.serverPort", &port),
        ("snapCount", "4"),
    ]);
    let admin: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let mut client = server.raw();
    for i in 0..12 {
        let body =
            common::raw::create_body(&format!("/n{i}"), b"x", &common::raw::Acl::world_all(), 0);
        client.call(common::raw::op::CREATE, &body);
    }
    let deadline = std::time::Instant::now() + WAIT;
    let (zxid, timestamp) = loop {
        let info = command(admin, "lsnp", "last_snapshot");
        let zxid = info["zxid"].as_str().expect("hex string").to_string();
        if zxid != "ffffffffffffffff" {
            break (zxid, info["timestamp"].as_i64().expect("seconds"));
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no snapshot: {info:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // Java's Long.toHexString has no padding; our file names have 16 digits.
    let zxid = u64::from_str_radix(&zxid, 16).expect("hex zxid");
    let file = server
        .dir()
        .join("data")
        .join(format!("snapshot.{zxid:016x}"));
    let modified = std::fs::metadata(&file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .modified()
        .expect("mtime")
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    assert_eq!(timestamp, modified, "ZooKeeper's lastModified() / 1000");
}

#[test]
fn disabled_admin_server_listens_nowhere() {
    if common::is_apache() {
        return;
    }
    let port = free_port();
    let port_text = port.to_string();
    let server = Server::start(&[
        ("admin.enableServer", "false"),
        ("admin.serverAddress", "127.0.0.1"),
        ("admin.serverPort", &port_text),
    ]);
    assert_eq!(server.four_letter("ruok"), "imok");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    assert!(
        TcpStream::connect_timeout(&addr, WAIT).is_err(),
        "something listens on {addr}"
    );
}

#[test]
fn bad_admin_port_names_file_and_line() {
    let port = free_port();
    let (cfg, stderr) = expect_startup_failure(
        &format!(
            "dataDir=DATA\nclientPort={port}\nclientPortAddress=127.0.0.1\nadmin.serverPort=80a\n"
        ),
        WAIT,
    );
    assert!(stderr.contains(&format!("{cfg}:4: ")), "{stderr}");
    assert!(stderr.contains("'80a' is not a whole number"), "{stderr}");
}

/// Standalone ZooKeeper (ZooKeeperServerMain) exits with "Unable to start
/// AdminServer" when the admin port cannot be bound; so does Ferrokeeper.
#[test]
fn admin_port_in_use_stops_startup() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let admin_port = taken.local_addr().expect("addr").port();
    let port = free_port();
    let (_, stderr) = expect_startup_failure(
        &format!(
            "dataDir=DATA\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
         admin.serverAddress=127.0.0.1\nadmin.serverPort={admin_port}\n"
        ),
        WAIT,
    );
    assert!(stderr.contains("cannot start the AdminServer"), "{stderr}");
    drop(taken);
}

/// Clients enough that, spread by the kernel over the test server's two
/// shards, some land on each (all on one: 1 in 2^7).
const WATCHING_CLIENTS: usize = 8;

/// `watches`, `watches_by_path` and `dump` (and the `wchc`/`wchp` four-letter
/// words) list the watches and ephemerals of sessions on every shard, with
/// ZooKeeper's keys: session ids as decimal keys, paths and ids in arrays.
#[test]
fn watches_and_dump_cover_every_shard() {
    if common::is_apache() {
        return;
    }
    use common::raw::{self, op};
    let (server, admin) = start_with_admin();
    let mut clients: Vec<raw::Conn> = (0..WATCHING_CLIENTS).map(|_| server.raw()).collect();
    let mut expected = Vec::new();
    for (i, client) in clients.iter_mut().enumerate() {
        let path = format!("/watched-{i}");
        // exists on a missing node leaves a data watch.
        let (_, reply) = client.call(op::EXISTS, &raw::path_watch(&path, true));
        assert_eq!(reply.err, raw::err::NO_NODE);
        expected.push((client.session_id(), path));
    }
    let eph = "/eph-0";
    let body = raw::create_body(eph, b"", &raw::Acl::world_all(), 1);
    assert_eq!(clients[0].call(op::CREATE, &body).1.err, raw::err::OK);

    let watches = command(admin, "wchc", "watches");
    let by_session = watches["session_id_to_watched_paths"]
        .as_object()
        .expect("object");
    let by_path = command(admin, "wchp", "watches_by_path");
    let by_path = by_path["path_to_session_ids"].as_object().expect("object");
    for (session, path) in &expected {
        let paths = &by_session[&session.to_string()];
        assert_eq!(paths, &serde_json::json!([path]), "{by_session:?}");
        assert_eq!(by_path[path], serde_json::json!([session]), "{by_path:?}");
    }
    let dump = command(admin, "dump", "dump");
    // Every session in some expiry bucket, the buckets on tick boundaries
    // (ExpiryQueue.roundToNextInterval; tickTime is 2000 here).
    let expiry = dump["expiry_time_to_session_ids"]
        .as_object()
        .expect("object");
    let mut bucketed = Vec::new();
    for (time_ms, ids) in expiry {
        assert_eq!(time_ms.parse::<u64>().unwrap() % 2000, 0, "{dump:?}");
        bucketed.extend(ids.as_array().unwrap().iter().map(|v| v.as_i64().unwrap()));
    }
    for (session, _) in &expected {
        assert!(bucketed.contains(session), "{session} not in {dump:?}");
    }
    let ephemerals = dump["session_id_to_ephemeral_paths"]
        .as_object()
        .expect("object");
    let first = expected[0].0.to_string();
    assert_eq!(ephemerals[&first], serde_json::json!([eph]), "{dump:?}");

    // Each four-letter connection lands on some shard; every answer must
    // list every session's watch, whichever shard answered.
    for _ in 0..WATCHING_CLIENTS {
        let dump = server.four_letter("dump");
        // "Session Sets (<buckets>)/(<sessions>):", as SessionTrackerImpl.
        let head = dump.lines().nth(1).unwrap_or_default();
        assert!(
            head.starts_with("Session Sets (")
                && head.ends_with(&format!(")/({WATCHING_CLIENTS}):")),
            "{dump}"
        );
        for (session, _) in &expected {
            assert!(dump.contains(&format!("\t0x{session:x}\n")), "{dump}");
        }
        let wchc = server.four_letter("wchc");
        let wchp = server.four_letter("wchp");
        for (session, path) in &expected {
            let session = format!("0x{session:x}");
            assert!(wchc.contains(&format!("{session}\n\t{path}\n")), "{wchc}");
            assert!(wchp.contains(&format!("{path}\n\t{session}\n")), "{wchp}");
        }
    }
    drop(clients);
}

/// The commands that need no data: trace mask get/set (with ZooKeeper's
/// errors), system properties, the initial configuration, and what a
/// standalone server answers to the ensemble commands.
#[test]
fn trace_mask_properties_and_standalone_ensemble_answers() {
    if common::is_apache() {
        return;
    }
    let (_server, admin) = start_with_admin();
    let mask = command(admin, "gtmk", "get_trace_mask");
    assert_eq!(mask["tracemask"], Value::from(306), "{mask:?}");
    let set = command(admin, "stmk?traceMask=42", "set_trace_mask");
    assert_eq!(set["tracemask"], Value::from(42), "{set:?}");
    let mask = command(admin, "get_trace_mask", "get_trace_mask");
    assert_eq!(mask["tracemask"], Value::from(42), "{mask:?}");
    let (_, _, body) = get(admin, "/commands/stmk?traceMask=x");
    let bad: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        bad["error"],
        "setTraceMask requires long traceMask argument, got x"
    );

    let sysp = command(admin, "sysp", "system_properties");
    assert_eq!(sysp["os.name"], "Linux", "{sysp:?}");
    assert!(sysp.values().all(|v| v.is_string() || v.is_null()));
    let icfg = command(admin, "icfg", "initial_configuration");
    let text = icfg["initial_configuration"].as_str().expect("string");
    assert!(text.contains("admin.serverPort"), "{text}");

    let lead = get_json(admin, "lead");
    assert_eq!(lead["command"], "leader");
    assert_eq!(lead["error"], "server is not initialized");
    let vv = command(admin, "voting_view", "voting_view");
    assert_eq!(vv["current_config"], serde_json::json!({}));
    let zab = command(admin, "zabstate", "zabstate");
    assert_eq!(zab["voting"], Value::from(false));
    assert_eq!(zab["zabstate"], "");
    command(admin, "orst", "observer_connection_stat_reset");
}

/// The summed length of every file under `dir`.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            dir_bytes(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

fn get_json(addr: SocketAddr, name: &str) -> Value {
    let (status, _, body) = get(addr, &format!("/commands/{name}"));
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("json")
}
