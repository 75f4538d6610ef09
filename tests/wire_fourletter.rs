//! Four-letter words on the client port (4lw.commands.whitelist=* on the shared server).

mod common;

use common::raw::op;
use common::Server;

static SERVER: common::Shared = common::Shared::new();

fn server() -> &'static Server {
    common::shared(&SERVER, &[])
}

/// Value of a `Key: value` line.
fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no `{key}` line in:\n{text}"))
        .trim()
}

fn parse_hex(v: &str) -> i64 {
    i64::from_str_radix(v.trim_start_matches("0x"), 16).unwrap_or_else(|e| panic!("hex {v:?}: {e}"))
}

/// `zk_<key>\t<value>` lines of mntr.
fn mntr_map(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l
                .split_once('\t')
                .unwrap_or_else(|| panic!("mntr line without a tab: {l:?}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn mntr_get(m: &[(String, String)], key: &str) -> String {
    m.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("mntr has no {key}: {m:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ruok_answers_imok() {
    common::bounded(45, async {
        assert_eq!(server().four_letter("ruok"), "imok");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srvr_reports_mode_and_zxid() {
    common::bounded(45, async {
        let s = server();
        let out = s.four_letter("srvr");
        assert!(out.starts_with("Zookeeper version: "), "{out}");
        assert!(out.contains("\nMode: standalone\n"), "{out}");
        for key in [
            "Latency min/avg/max: ",
            "Received: ",
            "Sent: ",
            "Connections: ",
            "Outstanding: ",
            "Node count: ",
        ] {
            field(&out, key);
        }
        let zxid = field(&out, "Zxid: ");
        assert!(zxid.starts_with("0x"), "{out}");
        let before = parse_hex(zxid);
        let nodes: i64 = field(&out, "Node count: ").parse().unwrap();
        assert!(
            nodes >= 4,
            "/, /zookeeper, /zookeeper/quota, /zookeeper/config: {out}"
        );
        let lat = field(&out, "Latency min/avg/max: ");
        assert_eq!(lat.split('/').count(), 3, "{lat}");

        let mut c = s.raw();
        assert_eq!(c.create("/flw_srvr", b"", 0).err, 0);
        let after = parse_hex(field(&s.four_letter("srvr"), "Zxid: "));
        assert!(
            after > before,
            "zxid did not advance: {before:#x} -> {after:#x}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stat_lists_clients() {
    common::bounded(45, async {
        let s = server();
        let c = s.raw();
        let local = c.stream.local_addr().unwrap();
        let out = s.four_letter("stat");
        assert!(out.starts_with("Zookeeper version: "), "{out}");
        assert!(out.contains("Clients:\n"), "{out}");
        assert!(
            out.contains(&format!("/127.0.0.1:{}[", local.port())),
            "our connection is listed:\n{out}"
        );
        assert!(out.contains("\nMode: standalone\n"), "{out}");
        field(&out, "Zxid: 0x");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conf_shows_the_configuration() {
    common::bounded(45, async {
        let s = server();
        let out = s.four_letter("conf");
        assert!(out.contains(&format!("clientPort={}\n", s.port())), "{out}");
        assert!(out.contains("tickTime=2000\n"), "{out}");
        assert!(out.contains("minSessionTimeout=4000\n"), "{out}");
        assert!(out.contains("maxSessionTimeout=40000\n"), "{out}");
        assert!(out.contains("dataDir="), "{out}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cons_lists_sessions() {
    common::bounded(45, async {
        let s = server();
        let c = s.raw();
        let local = c.stream.local_addr().unwrap();
        let out = s.four_letter("cons");
        let line = out
            .lines()
            .find(|l| l.contains(&format!("/127.0.0.1:{}[", local.port())))
            .unwrap_or_else(|| panic!("our connection is not listed:\n{out}"));
        assert!(
            line.contains(&format!("sid=0x{:x}", c.session_id())),
            "{line}"
        );
        assert!(line.contains("queued="), "{line}");
        // ServerCnxn.dumpConnectionInfo's latency fields close the line.
        for field in [",lresp=", ",llat=", ",minlat=", ",avglat=", ",maxlat="] {
            assert!(line.contains(field), "{field} missing: {line}");
        }
        assert!(line.ends_with(')'), "{line}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envi_has_version() {
    common::bounded(45, async {
        let out = server().four_letter("envi");
        assert!(out.starts_with("Environment:\n"), "{out}");
        let v = out
            .lines()
            .find_map(|l| l.strip_prefix("zookeeper.version="))
            .unwrap_or_else(|| panic!("no zookeeper.version= line:\n{out}"));
        // kazoo parses `3.x.y` from the start of the value
        let nums: Vec<&str> = v.split(|ch: char| !ch.is_ascii_digit()).take(3).collect();
        assert!(
            nums.iter().all(|n| n.parse::<u32>().is_ok()) && nums[0] == "3",
            "zookeeper.version={v}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mntr_key_values() {
    common::bounded(45, async {
        let s = server();
        let m = mntr_map(&s.four_letter("mntr"));
        assert!(m.iter().all(|(k, _)| k.starts_with("zk_")), "{m:?}");
        assert!(mntr_get(&m, "zk_version").starts_with("3."), "{m:?}");
        assert_eq!(mntr_get(&m, "zk_server_state"), "standalone");
        let count: i64 = mntr_get(&m, "zk_znode_count").parse().unwrap();
        assert!(count >= 4);
        for key in [
            "zk_avg_latency",
            "zk_watch_count",
            "zk_ephemerals_count",
            "zk_outstanding_requests",
            "zk_num_alive_connections",
        ] {
            mntr_get(&m, key);
        }
        // znode count follows the tree
        let mut c = s.raw();
        assert_eq!(c.create("/flw_mntr", b"", 0).err, 0);
        assert_eq!(c.create("/flw_mntr/a", b"", 0).err, 0);
        let m2 = mntr_map(&s.four_letter("mntr"));
        let count2: i64 = mntr_get(&m2, "zk_znode_count").parse().unwrap();
        assert!(count2 >= count + 2, "{count} -> {count2}");
        let eph: i64 = mntr_get(&m2, "zk_ephemerals_count").parse().unwrap();
        assert_eq!(c.create("/flw_mntr/e", b"", 1).err, 0);
        // A new connection may land on another shard, which adopts the commit a moment
        // after the writer's shard answered it: wait (bounded) for the count to follow.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let m3 = mntr_map(&s.four_letter("mntr"));
            let eph3: i64 = mntr_get(&m3, "zk_ephemerals_count").parse().unwrap();
            if eph3 > eph {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "ephemerals {eph} -> {eph3}"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wchs_counts_watches() {
    common::bounded(45, async {
        let s = server();
        let mut c = s.raw();
        assert_eq!(c.create("/flw_wchs", b"", 0).err, 0);
        assert_eq!(c.get_data("/flw_wchs", true).1.err, 0);
        assert_eq!(
            c.call(
                op::GET_CHILDREN,
                &common::raw::path_watch("/flw_wchs", true)
            )
            .1
            .err,
            0
        );
        let out = s.four_letter("wchs");
        // "<n> connections watching <m> paths\nTotal watches:<k>"
        let first = out.lines().next().unwrap_or_default();
        let words: Vec<&str> = first.split_whitespace().collect();
        assert!(
            words.len() == 5
                && words[1] == "connections"
                && words[2] == "watching"
                && words[4] == "paths",
            "{out}"
        );
        let conns: i64 = words[0].parse().unwrap();
        let paths: i64 = words[3].parse().unwrap();
        assert!(conns >= 1 && paths >= 1, "{out}");
        let total: i64 = field(&out, "Total watches:").parse().unwrap();
        // (ZooKeeper's summary counts data watches only, so the child watch may not be included)
        assert!(total >= 1, "{out}");
    })
    .await;
}

/// ZooKeeper keeps data watches (and both addWatch modes) in one manager and
/// child watches in another: wchs, wchc and wchp show only the first, mntr's
/// watch_count adds both. A child watch alone is therefore invisible to wchs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wchs_and_wchc_show_data_watches_mntr_counts_all() {
    common::bounded(45, async {
        let s = Server::start(&[]);
        let mut c = s.raw();
        assert_eq!(c.create("/dw", b"", 0).err, 0);
        assert_eq!(c.get_data("/dw", true).1.err, 0);
        for path in ["/dw", "/"] {
            let reply = c.call(op::GET_CHILDREN, &common::raw::path_watch(path, true));
            assert_eq!(reply.1.err, 0);
        }
        assert_eq!(
            s.four_letter("wchs"),
            "1 connections watching 1 paths\nTotal watches:1\n"
        );
        let mntr = s.four_letter("mntr");
        assert_eq!(field(&mntr, "zk_watch_count\t"), "3", "{mntr}");
        let wchp = s.four_letter("wchp");
        assert!(wchp.starts_with("/dw\n"), "{wchp}");
        assert!(
            !wchp.contains("\n/\n") && !wchp.starts_with("/\n"),
            "{wchp}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isro_is_rw() {
    common::bounded(45, async {
        assert_eq!(server().four_letter("isro"), "rw");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn words_outside_the_whitelist_are_refused() {
    common::bounded(45, async {
        let s = Server::start(&[("4lw.commands.whitelist", "ruok, srvr,mntr")]);
        assert_eq!(s.four_letter("ruok"), "imok");
        assert!(s.four_letter("srvr").contains("Mode: standalone"));
        assert!(s
            .four_letter("mntr")
            .contains("zk_server_state\tstandalone"));
        for w in ["stat", "conf", "envi", "cons", "wchs", "isro", "dump"] {
            assert_eq!(
                s.four_letter(w),
                format!("{w} is not executed because it is not in the whitelist.\n"),
                "{w}"
            );
        }
        // a client session still works on that server
        let mut c = s.raw();
        assert_eq!(c.exists("/", false).1.err, 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_count_of_a_fresh_server_matches_zookeeper() {
    common::bounded(45, async {
        // ZooKeeper counts "/", "/zookeeper", "/zookeeper/quota",
        // "/zookeeper/config" and "" (its alias of the root): 5.
        let s = Server::start(&[]);
        let m = mntr_map(&s.four_letter("mntr"));
        assert_eq!(mntr_get(&m, "zk_znode_count"), "5", "{m:?}");
        assert_eq!(field(&s.four_letter("srvr"), "Node count: "), "5");
    })
    .await;
}
