//! The ensemble process harness itself (tests/common/ensemble.rs): three
//! processes come up and answer `ruok`, each with its own
//! data dir and myid and a zoo.cfg that routes every peer through the right proxies; the
//! process controls (stop, wipe, restart, kill) and the fault bookkeeping (isolate, link
//! faults, heal) do what they say; dropping the ensemble ends the processes, closes the
//! proxies and removes the directories.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use common::ensemble::Ensemble;
use common::fault_proxy::Mode;

fn process_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether every link (from -> to) is in the mode `expected(from, to)` says.
fn assert_link_modes(ens: &Ensemble, expected: impl Fn(usize, usize) -> Mode) {
    for from in ens.sids() {
        for to in ens.sids().filter(|&t| t != from) {
            let link = ens.link(from, to);
            let want = expected(from, to);
            assert_eq!(link.quorum.mode(), want, "quorum link {from} -> {to}");
            assert_eq!(link.election.mode(), want, "election link {from} -> {to}");
        }
    }
}

/// The `server.N` line of a zoo.cfg.
fn server_line(cfg: &str, sid: usize) -> String {
    let key = format!("server.{sid}=");
    cfg.lines()
        .find_map(|l| l.strip_prefix(&key))
        .unwrap_or_else(|| panic!("no server.{sid} line in:\n{cfg}"))
        .to_string()
}

/// Checks one server's files: its myid, and that its zoo.cfg names its own real ports and,
/// for each peer, the proxies of link (sid -> peer), which lead to that peer's real ports.
fn check_files(ens: &Ensemble, sid: usize) {
    let myid = fs::read_to_string(ens.data_dir(sid).join("myid")).expect("myid");
    assert_eq!(myid.trim(), sid.to_string());
    let cfg = fs::read_to_string(ens.cfg_path(sid)).expect("zoo.cfg");
    assert!(cfg.contains(&format!("dataDir={}\n", ens.data_dir(sid).display())));
    for peer in ens.sids() {
        let (q, e) = ens.peer_ports(peer);
        let client = ens.client_addr(peer);
        let (cq, ce) = if peer == sid {
            (q, e)
        } else {
            let link = ens.link(sid, peer);
            let local = |port| SocketAddr::from(([127, 0, 0, 1], port));
            assert_eq!(link.quorum.target(), local(q));
            assert_eq!(link.election.target(), local(e));
            (link.quorum.port(), link.election.port())
        };
        assert_eq!(
            server_line(&cfg, peer),
            format!("127.0.0.1:{cq}:{ce}:participant;{client}"),
            "server.{peer} in the zoo.cfg of server {sid}"
        );
    }
}

#[test]
fn three_processes_start_answer_and_are_gone_after_drop() {
    let mut ens = Ensemble::start_unchecked(3, 0, &[]);
    assert_eq!(ens.size(), 3);
    let mut data_dirs = BTreeSet::new();
    for sid in ens.sids() {
        assert_eq!(ens.four_letter(sid, "ruok").as_deref(), Some("imok"));
        assert!(ens.is_running(sid));
        // Electing or elected (unchecked start): this checks the `srvr` parsing.
        // (None: electing, "not currently serving requests" as ZooKeeper says.)
        let mode = ens.mode(sid);
        assert!(
            matches!(mode.as_deref(), None | Some("leader" | "follower")),
            "server {sid}: {mode:?}"
        );
        check_files(&ens, sid);
        data_dirs.insert(ens.data_dir(sid));
    }
    assert_eq!(data_dirs.len(), 3, "the servers share a data dir");
    let listed: Vec<String> = ens.sids().map(|s| ens.client_addr(s).to_string()).collect();
    assert_eq!(ens.connect_string(), listed.join(","));

    // stop, wipe (keeps only myid), restart on the same dir; kill, restart.
    let old_pid = ens.pid(2).expect("server 2 runs");
    ens.stop(2);
    assert!(!ens.is_running(2) && ens.pid(2).is_none());
    assert!(!process_exists(old_pid), "stop left pid {old_pid}");
    assert_eq!(ens.four_letter(2, "ruok"), None);
    fs::write(ens.data_dir(2).join("leftover"), b"x").unwrap();
    fs::create_dir_all(ens.data_dir(2).join("version-2")).unwrap();
    ens.wipe(2);
    let left: Vec<_> = fs::read_dir(ens.data_dir(2))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["myid"]);
    ens.restart(2);
    assert_eq!(ens.four_letter(2, "ruok").as_deref(), Some("imok"));
    let killed = ens.pid(3).expect("server 3 runs");
    ens.kill(3);
    assert!(!process_exists(killed), "kill left pid {killed}");
    ens.restart(3);
    assert_eq!(ens.four_letter(3, "ruok").as_deref(), Some("imok"));

    // Fault bookkeeping: isolation silences every link touching the server; a link fault
    // outlives healing the isolation; heal_all lifts everything.
    ens.isolate(1);
    assert_link_modes(&ens, |a, b| {
        if a == 1 || b == 1 {
            Mode::Silence
        } else {
            Mode::Pass
        }
    });
    ens.cut_link(2, 1);
    ens.heal(1);
    let pair_12 = |a: usize, b: usize| a.min(b) == 1 && a.max(b) == 2;
    assert_link_modes(
        &ens,
        |a, b| if pair_12(a, b) { Mode::Cut } else { Mode::Pass },
    );
    ens.partition(&[&[1, 2], &[3]]);
    assert_link_modes(&ens, |a, b| match (a.min(b), a.max(b)) {
        (1, 2) => Mode::Cut,
        _ => Mode::Silence,
    });
    ens.heal_all();
    assert_link_modes(&ens, |_, _| Mode::Pass);

    let pids: Vec<u32> = ens.sids().map(|s| ens.pid(s).expect("running")).collect();
    let dirs: Vec<PathBuf> = ens.sids().map(|s| ens.dir(s).to_path_buf()).collect();
    let proxy = ens.link(1, 2).quorum.addr();
    drop(ens);
    for pid in pids {
        assert!(!process_exists(pid), "pid {pid} outlived the ensemble");
    }
    for dir in dirs {
        assert!(!dir.exists(), "{} outlived the ensemble", dir.display());
    }
    assert!(
        TcpStream::connect_timeout(&proxy, Duration::from_secs(1)).is_err(),
        "a proxy outlived the ensemble"
    );
}
