//! ZooKeeper's Prometheus endpoint (`metricsProvider.className=...PrometheusMetricsProvider`),
//! against the built binary: ZooKeeper's metric names and `# TYPE` lines, values that move
//! with the tree, output that `promtool check metrics` accepts (promtool missing is a
//! failure: `tests/run-all.sh` installs it), the connection bound, and bad config lines.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::raw::Conn;
use common::{expect_startup_failure, free_port, http, Server};

const PROMETHEUS_CLASS: &str = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider";
/// Bound on one HTTP exchange and on waiting for a value to move.
const WAIT: Duration = Duration::from_secs(10);

/// ZooKeeper 3.9's gauges (ZooKeeperServer.registerMetrics) that Ferrokeeper exports.
const ZK_GAUGES: &[&str] = &[
    "avg_latency",
    "max_latency",
    "min_latency",
    "packets_received",
    "packets_sent",
    "num_alive_connections",
    "outstanding_requests",
    "uptime",
    "znode_count",
    "watch_count",
    "ephemerals_count",
    "approximate_data_size",
    "global_sessions",
    "local_sessions",
    "open_file_descriptor_count",
    "max_file_descriptor_count",
    "connection_drop_probability",
    "outstanding_tls_handshake",
];

/// ZooKeeper's own names that promtool's lint dislikes ("should not have _count suffix"):
/// the names are ZooKeeper's, so this one lint is expected for exactly these.
const ZK_NAMES_ENDING_IN_COUNT: &[&str] = &[
    "znode_count",
    "watch_count",
    "ephemerals_count",
    "open_file_descriptor_count",
    "max_file_descriptor_count",
];

/// A server with the endpoint on a free loopback port; returns it and the endpoint.
fn start_with_metrics() -> (Server, SocketAddr) {
    let port = free_port();
    let port_text = port.to_string();
    let server = Server::start(&[
        ("metricsProvider.className", PROMETHEUS_CLASS),
        ("metricsProvider.httpHost", "127.0.0.1"),
        ("metricsProvider.httpPort", &port_text),
        ("metricsProvider.exportJvmInfo", "true"),
    ]);
    (server, SocketAddr::from(([127, 0, 0, 1], port)))
}

fn scrape(addr: SocketAddr) -> String {
    let (status, body) = http(addr, "GET", "/metrics");
    assert_eq!(status, 200, "{body}");
    body
}

/// Sample name (with labels) -> value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            let value = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {l:?}"));
            (name.to_string(), value)
        })
        .collect()
}

fn value(text: &str, name: &str) -> f64 {
    *samples(text)
        .get(name)
        .unwrap_or_else(|| panic!("{name} missing from:\n{text}"))
}

/// Scrapes until `done` holds for the value of `name` (bounded by WAIT).
fn wait_for(addr: SocketAddr, name: &str, done: impl Fn(f64) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = scrape(addr);
        if done(value(&text, name)) {
            return text;
        }
        assert!(Instant::now() < deadline, "{name} did not move:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `promtool check metrics` on `text`: must parse, and lint only ZooKeeper's `_count` names.
fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is required (Debian package `prometheus`; tests/run-all.sh installs it)");
    child
        .stdin
        .take()
        .expect("promtool stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool finished");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // 0: clean; 3: lint problems only (1 would be a parse error).
    let code = out.status.code();
    assert!(
        matches!(code, Some(0) | Some(3)),
        "promtool {code:?}:\n{report}\n{text}"
    );
    for problem in report.lines().filter(|l| !l.trim().is_empty()) {
        let allowed = ZK_NAMES_ENDING_IN_COUNT.iter().any(|name| {
            problem == format!("{name} non-histogram and non-summary metrics should not have \"_count\" suffix")
        });
        assert!(allowed, "unexpected promtool finding: {problem}\n{text}");
    }
}

/// One request; returns (status code, body).
fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let reply = http::request(addr, method, path, WAIT);
    (reply.status, reply.body)
}

#[test]
fn metrics_use_zookeeper_names_and_move_with_the_tree() {
    let (server, metrics) = start_with_metrics();
    let before = scrape(metrics);
    for name in ZK_GAUGES {
        assert!(
            before.contains(&format!("\n# TYPE {name} gauge\n")),
            "no `# TYPE {name} gauge` in:\n{before}"
        );
    }
    for name in [
        "ferrokeeper_shard_client_buffer_bytes",
        "ferrokeeper_shard_outstanding_requests",
    ] {
        assert!(before.contains(&format!("# TYPE {name} gauge\n")), "{name}");
        assert!(
            before.contains(&format!("{name}{{shard=\"1\",}} ")),
            "{name} per shard"
        );
    }
    promtool_check(&before);
    let znodes = value(&before, "znode_count");
    let ephemerals = value(&before, "ephemerals_count");
    let watches = value(&before, "watch_count");

    let mut conn = Conn::connect(server.addr(), 30_000);
    let created = 5;
    for i in 0..created {
        let reply = conn.create(&format!("/prom{i}"), b"data", 0);
        assert_eq!(reply.err, 0, "create /prom{i}");
    }
    assert_eq!(conn.create("/prom-eph", b"", 1).err, 0, "create ephemeral");
    for path in ["/prom0", "/prom1"] {
        let (_, reply) = conn.get_data(path, true);
        assert_eq!(reply.err, 0, "getData {path}");
    }

    // Shard 0 publishes the tree's counts after it applies a commit, which
    // may be a moment after another shard answered the create.
    wait_for(metrics, "znode_count", |n| {
        n == znodes + created as f64 + 1.0
    });
    let after = wait_for(metrics, "ephemerals_count", |n| n == ephemerals + 1.0);
    assert_eq!(value(&after, "znode_count"), znodes + created as f64 + 1.0);
    assert_eq!(value(&after, "watch_count"), watches + 2.0, "{after}");
    assert!(value(&after, "num_alive_connections") >= 1.0, "{after}");
    assert!(value(&after, "global_sessions") >= 1.0, "{after}");
    assert!(value(&after, "packets_received") >= 8.0, "{after}");
    assert!(
        value(&after, "approximate_data_size") > value(&before, "approximate_data_size"),
        "{after}"
    );
    assert!(value(&after, "max_file_descriptor_count") > 0.0, "{after}");
    promtool_check(&after);

    // ZooKeeper's Jetty serves only /metrics and forbids TRACE.
    assert_eq!(http(metrics, "GET", "/").0, 404);
    let (status, only) = http(metrics, "GET", "/metrics?name[]=znode_count&name[]=uptime");
    assert_eq!(status, 200);
    let names: Vec<&str> = only.lines().filter(|l| l.starts_with("# TYPE ")).collect();
    assert_eq!(
        names,
        ["# TYPE uptime gauge", "# TYPE znode_count gauge"],
        "{only}"
    );
    assert_eq!(http(metrics, "TRACE", "/metrics").0, 403);
    assert_eq!(http(metrics, "DELETE", "/metrics").0, 405);
}

/// Idle connections beyond the bound are refused, and never delay client traffic.
#[test]
fn idle_scrapers_are_bounded_and_do_not_stall_clients() {
    let (server, metrics) = start_with_metrics();
    let idle: Vec<TcpStream> = (0..ferrokeeper::limits::metrics::CONNECTIONS_MAX)
        .map(|_| TcpStream::connect_timeout(&metrics, WAIT).expect("idle connection"))
        .collect();
    // Until the accept loop has taken all of them, one more may still be
    // served; once it has, the next is refused (bounded wait, no sleep).
    let deadline = Instant::now() + WAIT;
    while http(metrics, "GET", "/metrics").0 != 503 {
        assert!(
            Instant::now() < deadline,
            "a connection beyond the bound is refused"
        );
    }
    let started = Instant::now();
    assert_eq!(server.four_letter("ruok"), "imok");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "client port stalled"
    );
    drop(idle);
    let deadline = Instant::now() + WAIT;
    while http(metrics, "GET", "/metrics").0 != 200 {
        assert!(Instant::now() < deadline, "endpoint did not recover");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn bad_metrics_port_names_file_and_line() {
    let port = free_port();
    let (cfg, stderr) = expect_startup_failure(
        &format!(
            "dataDir=DATA\nclientPort={port}\nmetricsProvider.className={PROMETHEUS_CLASS}\n\
         metricsProvider.httpPort=70000\n"
        ),
        WAIT,
    );
    assert!(stderr.contains(&format!("{cfg}:4: ")), "{stderr}");
    assert!(stderr.contains("70000 is out of range"), "{stderr}");
}

#[test]
fn unknown_metrics_provider_class_stops_startup() {
    let port = free_port();
    let (cfg, stderr) = expect_startup_failure(
        &format!(
        "dataDir=DATA\nclientPort={port}\nmetricsProvider.className=com.example.NoSuchProvider\n"
        ),
        WAIT,
    );
    assert!(stderr.contains(&format!("{cfg}:3: ")), "{stderr}");
    assert!(stderr.contains("com.example.NoSuchProvider"), "{stderr}");
}

/// Like ZooKeeper, a metrics port that cannot be bound stops startup.
#[test]
fn metrics_port_in_use_stops_startup() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let metrics_port = taken.local_addr().expect("addr").port();
    let port = free_port();
    let (_, stderr) = expect_startup_failure(
        &format!(
        "dataDir=DATA\nclientPort={port}\nadmin.enableServer=false\nclientPortAddress=127.0.0.1\n\
         metricsProvider.className={PROMETHEUS_CLASS}\nmetricsProvider.httpHost=127.0.0.1\n\
         metricsProvider.httpPort={metrics_port}\n"
        ),
        WAIT,
    );
    assert!(
        stderr.contains("cannot start the /metrics endpoint"),
        "{stderr}"
    );
}
