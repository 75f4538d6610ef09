//! Quota scenarios, each a rule of ZooKeeper 3.9's quota handling (see
//! `quota.rs`). Quotas are set the way zkCli's setquota does it: ordinary
//! creates of `/zookeeper/quota/<path>`, its `zookeeper_limits` node (the
//! limits) and its `zookeeper_stats` node (sent as "count=0,bytes=0").

use bytes::Bytes;

use super::*;
use crate::proto::{ErrorCode, EventType};

const SESSION: i64 = 0x0100_0000_0000_0001;
const T0_MS: i64 = 1_700_000_000_000;
const PERSISTENT: i32 = 0;
const EPHEMERAL: i32 = 1;

/// zkCli's `setquota -N 2`: count hard limit 2, everything else unset.
const COUNT_HARD_2: &[u8] = b"count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=2";

/// Prep + apply with increasing zxids, recording the txns for replays.
struct Tree {
    tree: DataTree,
    next_zxid: i64,
    opts: PrepOptions,
    events: Vec<TreeEvent>,
    log: Vec<(TxnHeader, TxnOp)>,
    /// Limits the last write went over (prep's report).
    exceeded: Vec<QuotaExceeded>,
}

impl Tree {
    fn new(enforce_quota: bool) -> Tree {
        Tree {
            tree: DataTree::new(),
            next_zxid: 1,
            opts: PrepOptions {
                enforce_quota,
                ..PrepOptions::default()
            },
            events: Vec::new(),
            log: Vec::new(),
            exceeded: Vec::new(),
        }
    }

    fn header(&self) -> TxnHeader {
        TxnHeader {
            session_id: SESSION,
            cxid: 1,
            zxid: self.next_zxid,
            time_ms: T0_MS + self.next_zxid,
        }
    }

    fn write(&mut self, req: WriteReq<'_>) -> Result<TxnResult, ErrorCode> {
        let hdr = self.header();
        self.exceeded.clear();
        let auth = AuthInfo::for_ip_str("127.0.0.1");
        let op = self
            .tree
            .prep_noting_quotas(&hdr, req, &auth, &self.opts, &mut self.exceeded)?;
        self.events.clear();
        let result = self.tree.apply(&hdr, &op, &mut self.events);
        self.log.push((hdr, op));
        self.next_zxid += 1;
        self.tree.assert_invariants();
        Ok(result)
    }

    fn create(&mut self, path: &str, data: Option<&'static [u8]>) -> Result<(), ErrorCode> {
        self.write(create(path, data, PERSISTENT)).map(|_| ())
    }

    fn set(&mut self, path: &str, data: &'static [u8], version: i32) -> Result<(), ErrorCode> {
        self.write(set_data(path, data, version)).map(|_| ())
    }

    fn delete(&mut self, path: &str) -> Result<(), ErrorCode> {
        self.write(WriteReq::Delete { path, version: -1 })
            .map(|_| ())
    }

    /// zkCli's setquota for a path without a quota.
    fn set_quota(&mut self, quota_path: &str, limits: &'static [u8]) {
        let mut at = QUOTA_PATH.to_string();
        for component in quota_path.split('/').skip(1) {
            at.push('/');
            at.push_str(component);
            if !self.tree.contains(&at) {
                self.create(&at, None).unwrap();
            }
        }
        self.create(&format!("{at}/zookeeper_limits"), Some(limits))
            .unwrap();
        self.create(&format!("{at}/zookeeper_stats"), Some(b"count=0,bytes=0"))
            .unwrap();
    }

    /// The stats node's data as getData returns it.
    fn stats(&self, quota_path: &str) -> String {
        let node = self
            .tree
            .get(&format!("{QUOTA_PATH}{quota_path}/zookeeper_stats"))
            .expect("stats node");
        String::from_utf8(node.data.as_deref().unwrap().to_vec()).unwrap()
    }
}

fn create<'a>(path: &'a str, data: Option<&'static [u8]>, flags: i32) -> WriteReq<'a> {
    WriteReq::Create(CreateReq {
        path,
        data: data.map(Bytes::from_static),
        acl: open_acl(),
        flags,
        ttl_ms: None,
        kind: CreateKind::Create2,
    })
}

fn open_acl() -> &'static [Acl] {
    static OPEN: std::sync::OnceLock<Vec<Acl>> = std::sync::OnceLock::new();
    OPEN.get_or_init(Acl::open_unsafe)
}

fn set_data<'a>(path: &'a str, data: &'static [u8], version: i32) -> WriteReq<'a> {
    WriteReq::SetData {
        path,
        data: Some(Bytes::from_static(data)),
        version,
    }
}

#[test]
fn a_fresh_tree_has_no_quotas_and_no_prefix_to_look_up() {
    let tree = DataTree::new();
    assert!(!tree.has_quotas());
    assert_eq!(tree.quota_prefix("/a/b"), None);
}

#[test]
fn the_stats_node_counts_the_subtree_and_is_rewritten_in_place() {
    let mut t = Tree::new(false);
    t.create("/q", Some(b"ab")).unwrap();
    t.create("/q/a", Some(b"xyz")).unwrap();
    t.create("/other", Some(b"data")).unwrap();
    t.set_quota("/q", COUNT_HARD_2);
    assert!(t.tree.has_quotas());
    // The client sent "count=0,bytes=0"; the server counts /q itself too.
    assert_eq!(t.stats("/q"), "count=2,bytes=5");
    let stats_path = "/zookeeper/quota/q/zookeeper_stats";
    let created = t.tree.get(stats_path).unwrap().stat;

    t.create("/q/b", Some(b"data")).unwrap();
    assert_eq!(t.stats("/q"), "count=3,bytes=9");
    assert_eq!(
        t.events
            .iter()
            .map(|e| (e.event, e.path.to_string()))
            .collect::<Vec<_>>(),
        [
            (EventType::NodeCreated, "/q/b".to_string()),
            (EventType::NodeChildrenChanged, "/q".to_string()),
        ],
        "no event for the stats node"
    );
    t.set("/q/a", b"x", -1).unwrap();
    assert_eq!(t.stats("/q"), "count=3,bytes=7");
    t.create("/q/b/deep", None).unwrap();
    assert_eq!(t.stats("/q"), "count=4,bytes=7", "null data is 0 bytes");
    t.delete("/q/b/deep").unwrap();
    t.delete("/q/b").unwrap();
    assert_eq!(t.stats("/q"), "count=2,bytes=3");
    t.create("/other/x", Some(b"zz")).unwrap();
    t.set("/other", b"", -1).unwrap();
    assert_eq!(t.stats("/q"), "count=2,bytes=3", "outside the quota");

    let now = t.tree.get(stats_path).unwrap().stat;
    assert_eq!(
        Stat {
            data_length: created.data_length,
            ..now
        },
        created,
        "version, mzxid and mtime stay; only the data changes"
    );
    assert_eq!(now.data_length, "count=2,bytes=3".len() as i32);
}

#[test]
fn an_ephemeral_closed_with_its_session_leaves_the_count() {
    let mut t = Tree::new(false);
    t.create("/q", None).unwrap();
    t.set_quota("/q", COUNT_HARD_2);
    t.write(create("/q/e", Some(b"eph"), EPHEMERAL)).unwrap();
    assert_eq!(t.stats("/q"), "count=2,bytes=3");
    let hdr = t.header();
    t.tree.apply(&hdr, &TxnOp::CloseSession, &mut Vec::new());
    assert_eq!(t.stats("/q"), "count=1,bytes=0");
}

#[test]
fn without_enforce_quota_hard_limits_refuse_nothing() {
    let mut t = Tree::new(false);
    t.create("/q", None).unwrap();
    t.set_quota("/q", COUNT_HARD_2);
    for child in ["/q/a", "/q/b", "/q/c"] {
        t.create(child, None).unwrap();
        assert!(t.exceeded.is_empty(), "ZooKeeper checks nothing");
    }
    assert_eq!(t.stats("/q"), "count=4,bytes=0");
}

#[test]
fn a_hard_count_limit_refuses_the_create_beyond_it() {
    let mut t = Tree::new(true);
    t.create("/q", None).unwrap();
    t.set_quota("/q", COUNT_HARD_2);
    t.create("/q/a", None).unwrap();
    assert!(t.exceeded.is_empty());
    assert_eq!(t.create("/q/b", None), Err(ErrorCode::QuotaExceeded));
    assert_eq!(
        t.exceeded.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        ["Quota exceeded: /q [current count=3, hardCountLimit=2]"]
    );
    assert!(!t.tree.contains("/q/b"));
    assert_eq!(t.stats("/q"), "count=2,bytes=0");
    // Checked last, as in ZooKeeper: an existing node is NodeExists.
    assert_eq!(t.create("/q/a", None), Err(ErrorCode::NodeExists));
    // setData changes no count; other subtrees are not limited.
    t.set("/q/a", b"more", -1).unwrap();
    t.create("/free", None).unwrap();
    // A delete makes room again.
    t.delete("/q/a").unwrap();
    t.create("/q/b", None).unwrap();
}

#[test]
fn a_hard_byte_limit_refuses_creates_and_set_data_beyond_it() {
    let mut t = Tree::new(true);
    t.create("/q", Some(b"data")).unwrap();
    t.set_quota(
        "/q",
        b"count=-1,bytes=-1=;byteHardLimit=10;countHardLimit=-1",
    );
    t.create("/q/a", Some(b"data")).unwrap();
    assert_eq!(t.stats("/q"), "count=2,bytes=8");
    assert_eq!(
        t.create("/q/b", Some(b"abc")),
        Err(ErrorCode::QuotaExceeded)
    );
    // Empty data adds no bytes: not checked at all.
    t.create("/q/b", None).unwrap();
    assert_eq!(t.set("/q/a", b"1234567", -1), Err(ErrorCode::QuotaExceeded));
    assert_eq!(
        t.exceeded[0].to_string(),
        "Quota exceeded: /q [current bytes=11, hardByteLimit=10]"
    );
    // Before the version check, as in ZooKeeper's PrepRequestProcessor.
    assert_eq!(t.set("/q/a", b"1234567", 7), Err(ErrorCode::QuotaExceeded));
    assert_eq!(t.set("/q/a", b"1", 7), Err(ErrorCode::BadVersion));
    t.set("/q", b"", -1).unwrap();
    t.set("/q/a", b"1234567", -1).unwrap();
    assert_eq!(t.stats("/q"), "count=3,bytes=7");
}

#[test]
fn soft_limits_let_writes_through_and_are_reported() {
    let mut t = Tree::new(true);
    t.create("/q", None).unwrap();
    // zkCli's `setquota -n 1 -b 2`.
    t.set_quota("/q", b"count=1,bytes=2=;byteHardLimit=-1;countHardLimit=-1");
    t.create("/q/a", Some(b"abc")).unwrap();
    assert_eq!(
        t.exceeded.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        [
            "Quota exceeded: /q [current count=2, softCountLimit=1]",
            "Quota exceeded: /q [current bytes=3, softByteLimit=2]",
        ]
    );
    assert!(t.exceeded.iter().all(|e| !e.hard));
    assert_eq!(t.stats("/q"), "count=2,bytes=3");
}

#[test]
fn a_multi_is_checked_against_the_tree_before_it_as_in_zookeeper() {
    let mut t = Tree::new(true);
    t.create("/q", None).unwrap();
    t.set_quota("/q", COUNT_HARD_2);
    // Each create alone stays within the limit (1 + 1 <= 2) against the
    // tree before the multi, so ZooKeeper lets both through.
    let both = vec![create("/q/a", None, 0), create("/q/b", None, 0)];
    assert!(matches!(
        t.write(WriteReq::Multi(both)),
        Ok(TxnResult::Multi(_))
    ));
    assert_eq!(t.stats("/q"), "count=3,bytes=0");
    let more = vec![
        WriteReq::Check {
            path: "/q",
            version: -1,
        },
        create("/q/c", None, 0),
        create("/elsewhere", None, 0),
    ];
    assert_eq!(
        t.write(WriteReq::Multi(more)),
        Ok(TxnResult::MultiError(vec![
            ErrorCode::Ok,
            ErrorCode::QuotaExceeded,
            ErrorCode::RuntimeInconsistency,
        ]))
    );
    assert!(!t.tree.contains("/elsewhere"));
    assert_eq!(t.stats("/q"), "count=3,bytes=0");
}

#[test]
fn nested_quotas_count_each_write_in_the_deepest_one_only() {
    let mut t = Tree::new(false);
    t.create("/a", None).unwrap();
    t.create("/a/b", None).unwrap();
    t.set_quota("/a", COUNT_HARD_2);
    t.set_quota("/a/b", COUNT_HARD_2);
    assert_eq!(t.stats("/a"), "count=2,bytes=0");
    assert_eq!(t.stats("/a/b"), "count=1,bytes=0");
    t.create("/a/b/c", Some(b"cc")).unwrap();
    t.create("/a/x", Some(b"x")).unwrap();
    assert_eq!(t.stats("/a/b"), "count=2,bytes=2");
    assert_eq!(
        t.stats("/a"),
        "count=3,bytes=1",
        "/a/b/c is not counted in /a"
    );
    assert_eq!(t.tree.quota_prefix("/a/b/c/d").as_deref(), Some("/a/b"));
    assert_eq!(t.tree.quota_prefix("/a/bb").as_deref(), Some("/a"));
    assert_eq!(t.tree.quota_prefix("/ab"), None);
}

#[test]
fn delquota_ends_the_quota_and_its_counting() {
    let mut t = Tree::new(true);
    t.create("/q", None).unwrap();
    t.set_quota("/q", COUNT_HARD_2);
    // zkCli's delquota without options: the children, then the empty parents.
    t.delete("/zookeeper/quota/q/zookeeper_limits").unwrap();
    t.delete("/zookeeper/quota/q/zookeeper_stats").unwrap();
    t.delete("/zookeeper/quota/q").unwrap();
    assert!(!t.tree.has_quotas());
    for child in ["/q/a", "/q/b", "/q/c"] {
        t.create(child, None).unwrap();
    }
}

#[test]
fn delquota_of_one_limit_rewrites_the_limits_node() {
    let mut t = Tree::new(true);
    t.create("/q", None).unwrap();
    t.set_quota("/q", COUNT_HARD_2);
    t.create("/q/a", None).unwrap();
    // `delquota -N /q` sets countHardLimit back to -1.
    t.set(
        "/zookeeper/quota/q/zookeeper_limits",
        b"count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=-1",
        -1,
    )
    .unwrap();
    t.create("/q/b", None).unwrap();
    assert_eq!(t.stats("/q"), "count=3,bytes=0");
}

#[test]
fn a_quota_on_a_path_created_later_counts_from_zero() {
    let mut t = Tree::new(true);
    t.set_quota("/later", COUNT_HARD_2);
    assert_eq!(t.stats("/later"), "count=0,bytes=0");
    t.create("/later", None).unwrap();
    t.create("/later/a", None).unwrap();
    assert_eq!(t.create("/later/b", None), Err(ErrorCode::QuotaExceeded));
}

/// A snapshot's node list (sorted: parents first) loaded into a new tree.
fn reloaded(tree: &DataTree) -> DataTree {
    let mut nodes: Vec<(String, Node)> = tree
        .iter()
        .map(|(path, node)| (path.to_string(), node.clone()))
        .collect();
    nodes.sort_by(|a, b| a.0.cmp(&b.0));
    let mut restored = DataTree::new();
    for (path, node) in &nodes {
        restored
            .restore_node(path, node.data.as_deref(), &node.acl, node.stat)
            .unwrap();
    }
    restored.setup_quotas();
    restored.set_last_zxid(tree.last_zxid());
    restored
}

#[test]
fn a_restart_recounts_every_quota_and_enforces_it_again() {
    let mut t = Tree::new(true);
    t.create("/q", Some(b"q")).unwrap();
    t.create("/a", None).unwrap();
    t.create("/a/b", None).unwrap();
    t.set_quota("/q", COUNT_HARD_2);
    t.set_quota("/a", b"count=10,bytes=-1");
    t.set_quota("/a/b", b"count=10,bytes=-1");
    t.create("/a/b/c", Some(b"ccc")).unwrap();
    // A client may write anything into a stats node; a restart recounts.
    t.set(
        "/zookeeper/quota/q/zookeeper_stats",
        b"count=99,bytes=99",
        -1,
    )
    .unwrap();
    let stats_stat = t
        .tree
        .get("/zookeeper/quota/q/zookeeper_stats")
        .unwrap()
        .stat;

    t.tree = reloaded(&t.tree);
    t.tree.assert_invariants();
    assert_eq!(t.stats("/q"), "count=1,bytes=1");
    // ZooKeeper's setupQuota counts each quota's whole subtree, nested ones
    // included, where live updates counted /a/b/c in /a/b only.
    assert_eq!(t.stats("/a"), "count=3,bytes=3");
    assert_eq!(t.stats("/a/b"), "count=2,bytes=3");
    let reloaded_stat = t
        .tree
        .get("/zookeeper/quota/q/zookeeper_stats")
        .unwrap()
        .stat;
    assert_eq!(reloaded_stat.version, stats_stat.version);
    assert_eq!(reloaded_stat.mzxid, stats_stat.mzxid);
    t.create("/q/a", None).unwrap();
    assert_eq!(t.create("/q/b", None), Err(ErrorCode::QuotaExceeded));
}

#[test]
fn replaying_the_log_gives_the_same_stats() {
    let mut t = Tree::new(true);
    t.create("/q", None).unwrap();
    t.set_quota("/q", COUNT_HARD_2);
    t.create("/q/a", Some(b"abc")).unwrap();
    let _ = t.create("/q/b", None);
    t.set("/q/a", b"z", -1).unwrap();
    let mut replayed = DataTree::new();
    for (hdr, op) in &t.log {
        replayed.apply(hdr, op, &mut Vec::new());
    }
    let stats_path = "/zookeeper/quota/q/zookeeper_stats";
    assert_eq!(replayed.get(stats_path), t.tree.get(stats_path));
    assert_eq!(replayed.quota_prefix("/q/x"), t.tree.quota_prefix("/q/x"));
}

#[test]
fn a_limits_node_with_children_counts_only_while_live_not_after_a_restart() {
    // ZooKeeper adds the quota when the limits node is created, but its
    // load only looks at limits nodes without children.
    let mut t = Tree::new(true);
    t.create("/q", None).unwrap();
    t.set_quota("/q", COUNT_HARD_2);
    t.create("/zookeeper/quota/q/zookeeper_limits/x", None)
        .unwrap();
    assert!(t.tree.quota_prefix("/q/a").is_some());
    t.tree = reloaded(&t.tree);
    assert_eq!(t.tree.quota_prefix("/q/a"), None);
}
