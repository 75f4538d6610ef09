//! Operator commands (four letters and AdminServer) an ensemble member
//! answers differently from a standalone server, against Ferrokeeper
//! ensembles.

mod common;

use std::time::Duration;

use common::ensemble::Ensemble;
use serde_json::Value;

/// `dump` as ZooKeeper's session trackers print it: the leader (which
/// expires sessions) by expiry time, a follower its global sessions with
/// their timeouts (`LearnerSessionTracker`).
#[test]
fn dump_lists_sessions_as_leader_and_learner_trackers() {
    let ens = Ensemble::start(3, 0, &[]);
    let leader = ens.wait_for_leader(Duration::from_secs(30));
    let follower = ens.sids().find(|s| *s != leader).unwrap();
    let conn = common::raw::Conn::connect(ens.client_addr(follower), 12_000);
    let id = conn.session_id();
    ens.wait_until(Duration::from_secs(20), "the session on every dump", |e| {
        e.sids().all(|s| {
            e.four_letter(s, "dump")
                .is_some_and(|d| d.contains(&format!("0x{id:x}")))
        })
    });
    let on_leader = ens.four_letter(leader, "dump").unwrap();
    assert!(
        on_leader.starts_with("SessionTracker dump:\nSession Sets ("),
        "{on_leader}"
    );
    assert!(on_leader.contains(&format!("\t0x{id:x}\n")), "{on_leader}");
    let on_follower = ens.four_letter(follower, "dump").unwrap();
    assert!(
        on_follower.starts_with("SessionTracker dump:\nGlobal Sessions("),
        "{on_follower}"
    );
    assert!(
        on_follower.contains(&format!("\n0x{id:x}\t12000ms\n")),
        "{on_follower}"
    );
    drop(conn);
}

fn admin_json(ens: &Ensemble, sid: usize, command: &str) -> Value {
    let path = format!("/commands/{command}");
    let reply = common::http::request(ens.admin_addr(sid), "GET", &path, Duration::from_secs(10));
    assert_eq!(reply.status, 200, "{}", reply.body);
    serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{e}: {}", reply.body))
}

/// `observers` on the leader lists its synced observer with
/// `LearnerHandler.getLearnerHandlerInfo`'s keys and counters (a write
/// through the observer is one forwarded request, and its INFORM the last
/// zxid sent); elsewhere it is 0 and an empty list, as ZooKeeper's.
#[test]
fn observers_lists_the_leaders_synced_observers() {
    let ens = Ensemble::start(3, 1, &[("admin.enableServer", "true")]);
    let leader = ens.wait_for_leader(Duration::from_secs(30));
    let observer = 4;
    assert!(ens.is_observer(observer));
    let mut conn = common::raw::Conn::connect(ens.client_addr(observer), 10_000);
    let body =
        common::raw::create_body("/through-observer", b"x", &common::raw::Acl::world_all(), 0);
    let (_, reply) = conn.call(common::raw::op::CREATE, &body);
    assert_eq!(reply.err, 0);
    let written_zxid = reply.zxid;
    ens.wait_until(
        Duration::from_secs(20),
        "the observer's request and INFORM counted",
        |e| {
            let answer = admin_json(e, leader, "observers");
            answer["observers"][0]["requests"].as_u64() >= Some(1)
                && answer["observers"][0]["last_zxid"].as_i64() >= Some(written_zxid)
        },
    );
    let answer = admin_json(&ens, leader, "observers");
    assert_eq!(answer["command"], "observers", "{answer}");
    assert_eq!(answer["synced_observers"], 1, "{answer}");
    let info = answer["observers"][0].as_object().expect("one observer");
    let keys: Vec<&str> = info.keys().map(String::as_str).collect();
    let mut expected = vec![
        "remote_socket_address",
        "sid",
        "established",
        "queued_packets",
        "queued_packets_size",
        "packets_received",
        "packets_sent",
        "requests",
        "last_zxid",
    ];
    expected.sort_unstable();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, expected, "{answer}");
    assert_eq!(info["sid"], 4, "{answer}");
    let address = info["remote_socket_address"].as_str().unwrap();
    assert!(address.starts_with("/127.0.0.1:"), "{answer}");
    assert!(
        info["established"].as_i64().unwrap() > 1_700_000_000_000,
        "{answer}"
    );
    assert!(info["packets_received"].as_u64().unwrap() >= 2, "{answer}");
    assert!(info["packets_sent"].as_u64().unwrap() >= 2, "{answer}");
    for sid in ens.sids().filter(|s| *s != leader) {
        let answer = admin_json(&ens, sid, "obsr");
        assert_eq!(answer["synced_observers"], 0, "server {sid}: {answer}");
        assert_eq!(
            answer["observers"],
            serde_json::json!([]),
            "server {sid}: {answer}"
        );
    }
    drop(conn);
}

/// `snapshot` works on every member (of its own state, as ZooKeeper's
/// does); `restore` is refused on a member: the database is the quorum's.
#[test]
fn snapshot_on_members_and_restore_refused() {
    let ens = Ensemble::start(3, 0, &[("admin.enableServer", "true")]);
    let leader = ens.wait_for_leader(Duration::from_secs(30));
    let auth = [("Authorization", "ip")];
    let wait = Duration::from_secs(20);
    let mut taken = Vec::new();
    for sid in ens.sids() {
        let reply = common::http::exchange(
            ens.admin_addr(sid),
            "GET",
            "/commands/snapshot",
            &auth,
            None,
            wait,
        );
        assert_eq!(reply.status, 200, "server {sid}: {}", reply.text());
        assert_eq!(&reply.body[..4], b"ZKSN", "server {sid}");
        taken.push(reply.body);
    }
    for sid in [leader, ens.sids().find(|s| *s != leader).unwrap()] {
        let reply = common::http::exchange(
            ens.admin_addr(sid),
            "POST",
            "/commands/restore",
            &auth,
            Some(&taken[0]),
            wait,
        );
        assert_eq!(reply.status, 500, "server {sid}: {}", reply.text());
        assert!(
            ens.log_tail(sid, 50).contains("standalone server only"),
            "server {sid}: {}",
            ens.log_tail(sid, 50)
        );
    }
}
