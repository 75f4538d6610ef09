//! ZooKeeper 3.9's AdminServer `snapshot` and `restore` against the built
//! binary: their auth rules (401 without or with a bad `Authorization`, 403
//! without ALL on "/", the super digest), the rate limit, the switches, the
//! snapshot stream (headers, size, ZooKeeper's file magic, our own snapshot
//! written to the data dir), a restore that brings the state back, keeps a
//! session the snapshot holds and survives SIGKILL, and bad bodies that
//! change nothing. Apache 3.8 (the one installed) has neither command;
//! tests/compat/test_admin_snapshot.py loads our snapshots into Apache and
//! restores Apache's into ours.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::http::{exchange, RawReply};
use common::node::Node;
use common::zk;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

/// Ferrokeeper's admin port for a node (`Node` writes the client port).
fn node_with_admin(extra: &str) -> (Node, SocketAddr) {
    let admin_port = common::free_port();
    let node = Node::with_cfg(&format!(
        "admin.enableServer=true\nadmin.serverAddress=127.0.0.1\nadmin.serverPort={admin_port}\n{extra}"
    ));
    (node, SocketAddr::from(([127, 0, 0, 1], admin_port)))
}

fn snapshot(admin: SocketAddr, auth: Option<&str>, query: &str) -> RawReply {
    let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
    let path = format!("/commands/snapshot{query}");
    exchange(admin, "GET", &path, &headers, None, WAIT)
}

fn restore(admin: SocketAddr, auth: &str, body: &[u8]) -> RawReply {
    let headers = [("Authorization", auth)];
    exchange(
        admin,
        "POST",
        "/commands/restore",
        &headers,
        Some(body),
        WAIT,
    )
}

fn json(reply: &RawReply) -> Value {
    serde_json::from_slice(&reply.body).unwrap_or_else(|e| panic!("{e}: {}", reply.text()))
}

/// The `{command, error}` of a JSON reply with `status`.
fn expect_json(reply: &RawReply, status: u16, command: &str, error: Option<&str>) {
    assert_eq!(reply.status, status, "{}", reply.text());
    let body = json(reply);
    assert_eq!(body["command"], Value::from(command), "{body}");
    assert_eq!(
        body["error"],
        error.map_or(Value::Null, Value::from),
        "{body}"
    );
}

/// ZooKeeper's refusals in its order, each named by the URL's command name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_and_restore_follow_zookeepers_auth_rules() {
    if common::is_apache() {
        return;
    }
    let super_digest = common::digest_id("super", "test");
    let (mut node, admin) = node_with_admin(&format!(
        "DigestAuthenticationProvider.superDigest={super_digest}\n\
         admin.rateLimiterIntervalInMS=60000000\n"
    ));
    node.start();
    let missing = snapshot(admin, None, "");
    expect_json(
        &missing,
        401,
        "snapshot",
        Some("Auth info is missing for the command"),
    );
    let alias = exchange(admin, "GET", "/commands/snap", &[], None, WAIT);
    expect_json(
        &alias,
        401,
        "snap",
        Some("Auth info is missing for the command"),
    );
    for bad in ["Basic YTpi", "digest", "x509", "digest a:b c"] {
        let reply = snapshot(admin, Some(bad), "");
        expect_json(&reply, 401, "snapshot", Some("Not authenticated"));
    }
    // "/" open to everyone: any identity may; then only alice has ALL, and
    // ip:127.0.0.1 has every bit but ADMIN.
    assert_eq!(snapshot(admin, Some("ip"), "").status, 200);
    let client = node.client(WAIT).await;
    let all_but_admin = zk::Permission::READ
        | zk::Permission::WRITE
        | zk::Permission::CREATE
        | zk::Permission::DELETE;
    let alice = common::digest_id("alice", "pw");
    let acl = [
        zk::Acl::new(zk::Permission::ALL, zk::AuthId::new("digest", &alice)),
        zk::Acl::new(all_but_admin, zk::AuthId::new("ip", "127.0.0.1")),
    ];
    client.set_acl("/", &acl, None).await.expect("setAcl /");
    for who in ["ip", "digest bob:pw", "digest alice:wrong"] {
        let reply = exchange(
            admin,
            "GET",
            "/commands/snap",
            &[("Authorization", who)],
            None,
            WAIT,
        );
        expect_json(&reply, 403, "snap", Some("Not authorized"));
    }
    // Past auth the limiter's window counts (60 s here: 3.9 reads the
    // snapshot's interval as microseconds): the first request took the
    // permit, so who is authorized is told by a 429, not a 403.
    for who in ["digest alice:pw", "digest super:test"] {
        let again = snapshot(admin, Some(who), "?streaming=false");
        expect_json(&again, 429, "snapshot", None);
    }
    // A GET of restore and a POST of anything else are not served.
    let get_restore = exchange(admin, "GET", "/commands/restore", &[], None, WAIT);
    assert_eq!(get_restore.status, 405);
    let post_ruok = exchange(admin, "POST", "/commands/ruok", &[], Some(b"x"), WAIT);
    assert_eq!(post_ruok.status, 405);
    // A restore without a length cannot be read.
    let headers = [("Authorization", "digest alice:pw")];
    let no_length = exchange(admin, "POST", "/commands/restore", &headers, None, WAIT);
    assert_eq!(no_length.status, 411, "{}", no_length.text());
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_commands_answer_503_after_auth() {
    if common::is_apache() {
        return;
    }
    let (mut node, admin) =
        node_with_admin("admin.snapshot.enabled=false\nzookeeper.admin.restore.enabled=false\n");
    node.start();
    expect_json(
        &snapshot(admin, None, ""),
        401,
        "snapshot",
        Some("Auth info is missing for the command"),
    );
    expect_json(&snapshot(admin, Some("ip"), ""), 503, "snapshot", None);
    expect_json(&restore(admin, "ip", b"whatever"), 503, "restore", None);
    let (mut node2, admin2) = node_with_admin("serializeLastProcessedZxid.enabled=false\n");
    node2.start();
    expect_json(&snapshot(admin2, Some("ip"), ""), 500, "snapshot", None);
    node.stop();
    node2.stop();
}

/// The snapshot's headers and stream, a restore of it after changes (a
/// session it holds goes on), and the restored state after SIGKILL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_brings_back_a_snapshot_durably() {
    if common::is_apache() {
        return;
    }
    // A restore every 0 ms (the rate limiter would allow one per 5 minutes).
    let (mut node, admin) = node_with_admin("admin.rateLimiterIntervalInMS=0\n");
    node.start();
    let client = node.client(WAIT).await;
    let open = || zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    client.create("/kept", b"before", &open()).await.unwrap();
    client.create("/kept/child", b"c", &open()).await.unwrap();
    let (_, stat) = client.get_data("/kept").await.unwrap();
    let taken = snapshot(admin, Some("ip"), "");
    assert_eq!(taken.status, 200, "{}", taken.text());
    assert_eq!(
        taken.header("Content-Type"),
        Some("application/octet-stream")
    );
    let zxid = i64::from_str_radix(
        taken.header("last_zxid").unwrap().trim_start_matches("0x"),
        16,
    )
    .unwrap();
    assert!(
        zxid >= stat.czxid,
        "snapshot at 0x{zxid:x}, /kept at 0x{:x}",
        stat.czxid
    );
    let size: usize = taken.header("snapshot_size").unwrap().parse().unwrap();
    assert_eq!(size, taken.body.len());
    assert_eq!(&taken.body[..4], b"ZKSN", "ZooKeeper's snapshot magic");
    assert!(
        node.snapshots().contains(&format!("snapshot.{zxid:016x}")),
        "{:?}",
        node.snapshots()
    );
    let headers_only = snapshot(admin, Some("ip"), "?streaming=false");
    expect_json(&headers_only, 200, "snapshot", None);
    assert!(headers_only.header("snapshot_size").is_some());
    let head = exchange(
        admin,
        "HEAD",
        "/commands/snapshot",
        &[("Authorization", "ip")],
        None,
        WAIT,
    );
    assert_eq!(head.status, 200);
    assert!(head.header("last_zxid").is_some() && head.body.is_empty());

    client.set_data("/kept", b"after", None).await.unwrap();
    client.delete("/kept/child", None).await.unwrap();
    client.create("/new", b"", &open()).await.unwrap();
    let restored = restore(admin, "ip", &taken.body);
    expect_json(&restored, 200, "restore", None);
    let restored_zxid = json(&restored)["last_zxid"].as_i64().unwrap();
    assert!(
        restored_zxid > zxid,
        "zxids never go back: {restored_zxid:x}"
    );

    // The connection was closed; the session (in the snapshot) goes on.
    let (data, _) = tokio::time::timeout(WAIT, async {
        loop {
            match client.get_data("/kept").await {
                Ok(found) => return found,
                Err(e) => {
                    assert!(
                        matches!(e, zk::Error::ConnectionLoss | zk::Error::Timeout),
                        "{e}"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    })
    .await
    .expect("the session reconnects");
    assert_eq!(data, b"before");
    assert_eq!(client.get_data("/kept/child").await.unwrap().0, b"c");
    assert_eq!(client.check_stat("/new").await.unwrap(), None);
    client
        .create("/written-after", b"w", &open())
        .await
        .unwrap();
    drop(client);

    node.kill();
    node.start();
    let client = node.client(WAIT).await;
    assert_eq!(client.get_data("/kept").await.unwrap().0, b"before");
    assert_eq!(client.check_stat("/new").await.unwrap(), None);
    assert_eq!(client.get_data("/written-after").await.unwrap().0, b"w");
    node.stop();
}

/// Truncated, corrupted and foreign bodies: 500, and the tree is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_restore_bodies_change_nothing() {
    if common::is_apache() {
        return;
    }
    let (mut node, admin) = node_with_admin("admin.rateLimiterIntervalInMS=0\n");
    node.start();
    let client = node.client(WAIT).await;
    let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    client.create("/stays", b"1", &open).await.unwrap();
    let good = snapshot(admin, Some("ip"), "").body;
    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    let truncated = &good[..good.len() - 9];
    for (what, body) in [
        ("garbage", &b"not a snapshot at all"[..]),
        ("a flipped byte", &flipped[..]),
        ("a truncated file", truncated),
        ("nothing", &b""[..]),
    ] {
        let reply = restore(admin, "ip", body);
        assert_eq!(reply.status, 500, "{what}: {}", reply.text());
        expect_json(&reply, 500, "restore", None);
    }
    client.set_data("/stays", b"2", None).await.unwrap();
    assert_eq!(client.get_data("/stays").await.unwrap().0, b"2");
    assert!(node.log_tail().contains("unusable"), "{}", node.log_tail());
    node.stop();
}
