//! The AdminServer commands about the ensemble (`leader`, `voting_view`,
//! `zabstate`, `observers`), from the configuration and the replica status the role
//! threads publish. Keys, value types and the standalone answers are those of
//! ZooKeeper 3.9's `Commands.java`; addresses are written as its Jackson
//! writes an `InetSocketAddress` from a config line (`host:port`, the host as
//! configured).

use serde_json::{json, Map, Value};

use super::AdminSources;
use crate::quorum::ensemble::{Ensemble, Member};
use crate::replica::status::Mode;

/// The ensemble of an ensemble member; None for a standalone server (where
/// ZooKeeper's server is no `QuorumZooKeeperServer`).
fn ensemble(src: &AdminSources) -> Option<Ensemble> {
    if src.stats.replica.mode() == Mode::Standalone || src.cfg.servers.len() < 2 {
        return None;
    }
    Ensemble::from_config(&src.cfg).ok()
}

fn quorum_address(m: &Member) -> String {
    host_port(&m.host, m.quorum_port)
}

fn election_address(m: &Member) -> String {
    host_port(&m.host, m.election_port)
}

/// `host:port`, an IPv6 literal in brackets (Jackson's form).
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `LeaderCommand`: who leads, or the error a standalone server answers.
pub fn leader(src: &AdminSources, put: &mut impl FnMut(&str, Value)) {
    let Some(ensemble) = ensemble(src) else {
        put("error", json!("server is not initialized"));
        return;
    };
    let status = &src.stats.replica;
    let leader = status.leader();
    // `QuorumPeer.setLeaderAddressAndId`: the leader's quorum host strings.
    let leader_ip = leader
        .and_then(|sid| ensemble.members.get(&(sid as i64)))
        .map_or(String::new(), |m| m.host.clone());
    put("is_leader", json!(status.mode() == Mode::Leader));
    put("leader_id", json!(leader.map_or(-1, |sid| sid as i64)));
    put("leader_ip", json!(leader_ip));
}

/// `VotingViewCommand`: the voting members by id (a standalone server: `{}`).
pub fn voting_view(src: &AdminSources, put: &mut impl FnMut(&str, Value)) {
    let mut view = Map::new();
    if let Some(ensemble) = ensemble(src) {
        for m in ensemble.members.values().filter(|m| !m.observer) {
            let client = m
                .client
                .as_ref()
                .map_or(String::new(), |(host, port)| host_port(host, *port));
            // `QuorumServerView`'s fields, named as its @JsonProperty fields are.
            view.insert(
                m.sid.to_string(),
                json!({
                    "serverAddresses": [quorum_address(m)],
                    "electionAddresses": [election_address(m)],
                    "clientAddress": client,
                    "learnerType": "participant",
                }),
            );
        }
    }
    put("current_config", Value::Object(view));
}

/// `ZabStateCommand`: the member's Zab phase; a standalone server answers
/// `voting: false` and an empty state. A serving member is in broadcast; one
/// without a leader (electing, or read-only, which ZooKeeper runs while
/// looking) in election.
pub fn zabstate(src: &AdminSources, last_zxid: i64, put: &mut impl FnMut(&str, Value)) {
    let Some(ensemble) = ensemble(src) else {
        put("voting", json!(false));
        put("zabstate", json!(""));
        return;
    };
    let me = ensemble.me();
    let mode = src.stats.replica.mode();
    let phase = match mode {
        Mode::Leader | Mode::Follower | Mode::Observer => "broadcast",
        _ => "election",
    };
    let client = host_port(&src.cfg.client_address.to_string(), src.cfg.client_port);
    put("myid", json!(ensemble.my_sid));
    put("is_leader", json!(mode == Mode::Leader));
    put("quorum_address", json!(quorum_address(me)));
    put("election_address", json!(election_address(me)));
    put("client_address", json!(client));
    put("voting", json!(!me.observer));
    put("last_zxid", json!(format!("0x{:x}", last_zxid)));
    put("zab_epoch", json!(last_zxid >> 32));
    put("zab_counter", json!(last_zxid & 0xffff_ffff));
    put("zabstate", json!(phase));
}

/// `SyncedObserverConsCommand`: a leader's synced observers with their
/// link counters, in `LearnerHandler.getLearnerHandlerInfo`'s key order;
/// 0 and an empty list elsewhere (Ferrokeeper has no observer masters).
pub fn observers(src: &AdminSources, put: &mut impl FnMut(&str, Value)) {
    let replica = &src.stats.replica;
    if replica.mode() != Mode::Leader {
        put("synced_observers", json!(0));
        put("observers", json!([]));
        return;
    }
    let observers: Vec<Value> = replica
        .observers()
        .into_iter()
        .map(|o| {
            json!({
                "remote_socket_address": o.remote_socket_address,
                "sid": o.sid,
                "established": o.established_unix_ms,
                "queued_packets": o.queued_packets,
                "queued_packets_size": o.queued_bytes,
                "packets_received": o.packets_received,
                "packets_sent": o.packets_sent,
                "requests": o.requests,
                "last_zxid": o.last_zxid,
            })
        })
        .collect();
    put("synced_observers", json!(replica.synced_observers()));
    put("observers", Value::Array(observers));
}
