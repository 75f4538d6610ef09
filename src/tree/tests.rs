//! Scenario tests for the data tree: each reads like a rule of ZooKeeper's
//! data model (stats, sequential names, ephemerals, multi, ACLs, TTL).

use bytes::Bytes;

use super::*;
use crate::proto::{perms, ErrorCode, EventType, Id, CONTAINER_EPHEMERAL_OWNER, TTL_MAX_MS};

const SESSION_A: i64 = 0x0100_0000_0000_0001;
const SESSION_B: i64 = 0x0100_0000_0000_0002;
const T0_MS: i64 = 1_700_000_000_000;

/// A working tree driven like the pipeline drives it: prep, then apply
/// with the next zxid. Every applied txn is recorded for replay tests.
struct Pipeline {
    tree: DataTree,
    next_zxid: i64,
    now_ms: i64,
    opts: PrepOptions,
    events: Vec<TreeEvent>,
    log: Vec<(TxnHeader, TxnOp)>,
}

impl Pipeline {
    fn new() -> Pipeline {
        Pipeline {
            tree: DataTree::new(),
            next_zxid: 0x1_0000_0001,
            now_ms: T0_MS,
            opts: PrepOptions {
                extended_types_enabled: true,
                x509_acls: false,
                ..PrepOptions::default()
            },
            events: Vec::new(),
            log: Vec::new(),
        }
    }

    fn header(&self, session_id: i64) -> TxnHeader {
        TxnHeader {
            session_id,
            cxid: 1,
            zxid: self.next_zxid,
            time_ms: self.now_ms,
        }
    }

    fn write_as(
        &mut self,
        session_id: i64,
        auth: &AuthInfo,
        req: WriteReq<'_>,
    ) -> Result<TxnResult, ErrorCode> {
        let hdr = self.header(session_id);
        let op = self.tree.prep(&hdr, req, auth, &self.opts)?;
        Ok(self.apply(hdr, op))
    }

    fn apply(&mut self, hdr: TxnHeader, op: TxnOp) -> TxnResult {
        self.events.clear();
        let result = self.tree.apply(&hdr, &op, &mut self.events);
        self.log.push((hdr, op));
        self.next_zxid += 1;
        self.now_ms += 10;
        self.tree.assert_invariants();
        result
    }

    fn write(&mut self, req: WriteReq<'_>) -> Result<TxnResult, ErrorCode> {
        self.write_as(SESSION_A, &anyone(), req)
    }

    fn create(&mut self, path: &str, flags: i32) -> Result<String, ErrorCode> {
        match self.write(create_req(path, flags))? {
            TxnResult::Created { path, .. } => Ok(path),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn close_session(&mut self, session_id: i64) {
        let hdr = self.header(session_id);
        assert_eq!(self.apply(hdr, TxnOp::CloseSession), TxnResult::Session);
    }

    fn stat(&self, path: &str) -> Stat {
        self.tree
            .get(path)
            .unwrap_or_else(|| panic!("{path} exists"))
            .stat
    }

    fn event_list(&self) -> Vec<(EventType, String)> {
        self.events
            .iter()
            .map(|e| (e.event, e.path.to_string()))
            .collect()
    }
}

fn anyone() -> AuthInfo {
    AuthInfo::for_ip_str("127.0.0.1")
}

fn open_acl() -> &'static [Acl] {
    static OPEN: std::sync::OnceLock<Vec<Acl>> = std::sync::OnceLock::new();
    OPEN.get_or_init(Acl::open_unsafe)
}

fn create_req(path: &str, flags: i32) -> WriteReq<'_> {
    WriteReq::Create(CreateReq {
        path,
        data: Some(Bytes::from_static(b"data")),
        acl: open_acl(),
        flags,
        ttl_ms: None,
        kind: CreateKind::Create2,
    })
}

fn create_with_acl<'a>(path: &'a str, acl: &'a [Acl]) -> WriteReq<'a> {
    WriteReq::Create(CreateReq {
        path,
        data: Some(Bytes::new()),
        acl,
        flags: 0,
        ttl_ms: None,
        kind: CreateKind::Create,
    })
}

fn ttl_req(path: &str, flags: i32, ttl_ms: i64) -> WriteReq<'_> {
    WriteReq::Create(CreateReq {
        path,
        data: Some(Bytes::new()),
        acl: open_acl(),
        flags,
        ttl_ms: Some(ttl_ms),
        kind: CreateKind::Ttl,
    })
}

fn set_data<'a>(path: &'a str, data: &'static [u8], version: i32) -> WriteReq<'a> {
    WriteReq::SetData {
        path,
        data: Some(Bytes::from_static(data)),
        version,
    }
}

fn acl(perms: i32, scheme: &str, id: &str) -> Acl {
    Acl {
        perms,
        id: Id::new(scheme, id),
    }
}

const PERSISTENT: i32 = 0;
const EPHEMERAL: i32 = 1;
const PERSISTENT_SEQUENTIAL: i32 = 2;
const EPHEMERAL_SEQUENTIAL: i32 = 3;
const CONTAINER: i32 = 4;
const PERSISTENT_WITH_TTL: i32 = 5;
const PERSISTENT_SEQUENTIAL_WITH_TTL: i32 = 6;

// ----- the fresh tree -----

#[test]
fn a_fresh_tree_has_zookeepers_system_nodes() {
    let tree = DataTree::new();
    tree.assert_invariants();
    assert_eq!(
        tree.children("/").unwrap().collect::<Vec<_>>(),
        ["zookeeper"]
    );
    assert_eq!(
        tree.children("/zookeeper").unwrap().collect::<Vec<_>>(),
        ["config", "quota"]
    );
    let root = tree.get("/").unwrap();
    assert_eq!(
        root.stat,
        Stat {
            num_children: 1,
            ..Stat::default()
        }
    );
    assert_eq!(&*root.acl, Acl::open_unsafe().as_slice());
    let config = tree.get("/zookeeper/config").unwrap();
    assert_eq!(&*config.acl, Acl::read_unsafe().as_slice());
    assert_eq!(config.stat.aversion, -1);
    assert_eq!(tree.get("/zookeeper/quota").unwrap().stat, Stat::default());
    assert_eq!(tree.node_count(), 4);
    assert_eq!(
        tree.zk_node_count(),
        5,
        "ZooKeeper counts its \"\" root alias"
    );
    assert_eq!(tree.approximate_data_bytes(), 1 + 10 + 16 + 17);
    assert_eq!(tree.all_children_number("/"), Some(3));
    assert_eq!(tree.last_zxid(), 0);
    assert_eq!(
        tree.get("").unwrap().stat,
        root.stat,
        "\"\" is an alias of the root"
    );
}

#[test]
fn init_config_node_sets_data_like_a_quorum_start() {
    let mut tree = DataTree::new();
    tree.init_config_node(
        Some(Bytes::from_static(b"version=100000000")),
        0x1_0000_0000,
        T0_MS,
    );
    let config = tree.get(CONFIG_PATH).unwrap();
    assert_eq!(config.stat.version, -1);
    assert_eq!(config.stat.mzxid, 0x1_0000_0000);
    assert_eq!(config.stat.data_length, 17);
    tree.assert_invariants();
}

// ----- create -----

#[test]
fn create_sets_the_stats_of_the_node_and_its_parent() {
    let mut p = Pipeline::new();
    let zxid = p.next_zxid;
    let time_ms = p.now_ms;
    let result = p.write(create_req("/app", PERSISTENT)).unwrap();
    let expected = Stat {
        czxid: zxid,
        mzxid: zxid,
        ctime: time_ms,
        mtime: time_ms,
        version: 0,
        cversion: 0,
        aversion: 0,
        ephemeral_owner: 0,
        data_length: 4,
        num_children: 0,
        pzxid: zxid,
    };
    assert_eq!(
        result,
        TxnResult::Created {
            path: "/app".into(),
            stat: expected,
            kind: CreateKind::Create2
        }
    );
    assert_eq!(p.stat("/app"), expected);
    let root = p.stat("/");
    assert_eq!((root.cversion, root.pzxid, root.num_children), (1, zxid, 2));
    assert_eq!(
        (root.mzxid, root.version),
        (0, 0),
        "a child does not change the parent's data"
    );
    assert_eq!(
        p.event_list(),
        [
            (EventType::NodeCreated, "/app".into()),
            (EventType::NodeChildrenChanged, "/".into())
        ]
    );
    assert_eq!(p.tree.last_zxid(), zxid);
    assert_eq!(
        p.tree.get("/app").unwrap().data.as_deref(),
        Some(&b"data"[..])
    );
}

#[test]
fn create_modes_set_the_ephemeral_owner() {
    let mut p = Pipeline::new();
    p.create("/persistent", PERSISTENT).unwrap();
    p.create("/ephemeral", EPHEMERAL).unwrap();
    p.create("/container", CONTAINER).unwrap();
    p.write(ttl_req("/ttl", PERSISTENT_WITH_TTL, 5_000))
        .unwrap();
    assert_eq!(p.stat("/persistent").ephemeral_owner, 0);
    assert_eq!(p.stat("/ephemeral").ephemeral_owner, SESSION_A);
    assert_eq!(
        p.stat("/container").ephemeral_owner,
        0,
        "create2 with container flags: ZooKeeper makes it persistent"
    );
    assert_eq!(p.stat("/ttl").ephemeral_owner, (0xFF << 56) | 5_000);
    assert_eq!(
        p.tree.get("/ttl").unwrap().kind(),
        NodeKind::Ttl { ttl_ms: 5_000 }
    );
    let container = WriteReq::Create(CreateReq {
        kind: CreateKind::Container,
        ..match create_req("/real-container", CONTAINER) {
            WriteReq::Create(c) => c,
            _ => unreachable!(),
        }
    });
    p.write(container).unwrap();
    assert_eq!(
        p.stat("/real-container").ephemeral_owner,
        CONTAINER_EPHEMERAL_OWNER
    );
    assert_eq!(
        p.tree.get("/real-container").unwrap().kind(),
        NodeKind::Container
    );
}

#[test]
fn create_refuses_what_zookeeper_refuses() {
    let mut p = Pipeline::new();
    p.create("/a", PERSISTENT).unwrap();
    assert_eq!(p.create("/a", PERSISTENT), Err(ErrorCode::NodeExists));
    assert_eq!(p.create("/", PERSISTENT), Err(ErrorCode::NodeExists));
    assert_eq!(
        p.create("/missing/child", PERSISTENT),
        Err(ErrorCode::NoNode)
    );
    assert_eq!(p.create("/a/", PERSISTENT), Err(ErrorCode::BadArguments));
    assert_eq!(
        p.create("/a/./b", PERSISTENT),
        Err(ErrorCode::NoNode),
        "the parent is looked up first"
    );
    assert_eq!(p.create("/a/.", PERSISTENT), Err(ErrorCode::BadArguments));
    assert_eq!(
        p.create("/a\u{1}", PERSISTENT),
        Err(ErrorCode::BadArguments)
    );
    assert_eq!(
        p.create("relative", PERSISTENT),
        Err(ErrorCode::BadArguments)
    );
    assert_eq!(p.create("/a\0b", PERSISTENT), Err(ErrorCode::BadArguments));
    assert_eq!(p.create("/b", 7), Err(ErrorCode::BadArguments));
    assert_eq!(p.create("/b", -1), Err(ErrorCode::BadArguments));
    let empty_acl = create_with_acl("/b", &[]);
    assert_eq!(p.write(empty_acl), Err(ErrorCode::InvalidAcl));
    let bad_acl = [acl(perms::ALL, "digest", "nocolon")];
    assert_eq!(
        p.write(create_with_acl("/missing/b", &bad_acl)),
        Err(ErrorCode::InvalidAcl),
        "InvalidAcl before NoNode"
    );
    assert!(!p.tree.contains("/b"));
}

#[test]
fn ephemerals_cannot_have_children_but_containers_and_ttls_can() {
    let mut p = Pipeline::new();
    p.create("/eph", EPHEMERAL).unwrap();
    assert_eq!(
        p.create("/eph/child", PERSISTENT),
        Err(ErrorCode::NoChildrenForEphemerals)
    );
    assert_eq!(
        p.create("/eph/child", PERSISTENT_SEQUENTIAL),
        Err(ErrorCode::NoChildrenForEphemerals)
    );
    assert_eq!(
        p.create("/eph", PERSISTENT),
        Err(ErrorCode::NodeExists),
        "NodeExists is checked first"
    );
    p.write(ttl_req("/ttl", PERSISTENT_WITH_TTL, 1)).unwrap();
    p.create("/ttl/child", PERSISTENT).unwrap();
    let container = WriteReq::Create(CreateReq {
        path: "/box",
        data: Some(Bytes::new()),
        acl: open_acl(),
        flags: CONTAINER,
        ttl_ms: None,
        kind: CreateKind::Container,
    });
    p.write(container).unwrap();
    p.create("/box/child", EPHEMERAL).unwrap();
}

// ----- sequential names -----

#[test]
fn sequential_names_use_the_parents_cversion_before_the_create() {
    let mut p = Pipeline::new();
    p.create("/q", PERSISTENT).unwrap();
    assert_eq!(
        p.create("/q/n-", PERSISTENT_SEQUENTIAL).unwrap(),
        "/q/n-0000000000"
    );
    assert_eq!(
        p.create("/q/n-", EPHEMERAL_SEQUENTIAL).unwrap(),
        "/q/n-0000000001"
    );
    p.create("/q/plain", PERSISTENT).unwrap();
    p.write(WriteReq::Delete {
        path: "/q/plain",
        version: -1,
    })
    .unwrap();
    p.write(WriteReq::Delete {
        path: "/q/n-0000000000",
        version: -1,
    })
    .unwrap();
    assert_eq!(p.stat("/q").cversion, 3, "deletes do not bump cversion");
    assert_eq!(
        p.create("/q/n-", PERSISTENT_SEQUENTIAL).unwrap(),
        "/q/n-0000000003"
    );
    assert_eq!(
        p.create("/q/", PERSISTENT_SEQUENTIAL).unwrap(),
        "/q/0000000004",
        "a trailing '/' is allowed"
    );
    let ttl = p
        .write(ttl_req("/q/t-", PERSISTENT_SEQUENTIAL_WITH_TTL, 100))
        .unwrap();
    assert!(matches!(ttl, TxnResult::Created { ref path, .. } if path == "/q/t-0000000005"));
    let root_cversion = p.stat("/").cversion;
    assert_eq!(
        p.create("/", PERSISTENT_SEQUENTIAL).unwrap(),
        format!("/{root_cversion:010}")
    );
}

// ----- setData / setACL / delete / check -----

#[test]
fn set_data_updates_version_mzxid_mtime_and_length() {
    let mut p = Pipeline::new();
    p.create("/n", PERSISTENT).unwrap();
    let created = p.stat("/n");
    let zxid = p.next_zxid;
    let time_ms = p.now_ms;
    let TxnResult::SetData(stat) = p.write(set_data("/n", b"longer data", 0)).unwrap() else {
        panic!("expected SetData");
    };
    assert_eq!(
        stat,
        Stat {
            mzxid: zxid,
            mtime: time_ms,
            version: 1,
            data_length: 11,
            ..created
        }
    );
    assert_eq!(p.stat("/n"), stat);
    assert_eq!(p.event_list(), [(EventType::NodeDataChanged, "/n".into())]);
    assert_eq!(
        p.stat("/").pzxid,
        created.czxid,
        "setData does not touch the parent"
    );
    assert_eq!(p.write(set_data("/n", b"x", 0)), Err(ErrorCode::BadVersion));
    assert_eq!(p.write(set_data("/n", b"x", 1)).map(|_| ()), Ok(()));
    assert_eq!(p.write(set_data("/n", b"x", -1)).map(|_| ()), Ok(()));
    assert_eq!(p.stat("/n").version, 3);
    assert_eq!(
        p.write(set_data("/missing", b"x", -1)),
        Err(ErrorCode::NoNode)
    );
    assert_eq!(
        p.write(set_data("/n/", b"x", -1)),
        Err(ErrorCode::BadArguments)
    );
}

#[test]
fn nodes_with_equal_acls_share_one_list() {
    let mut p = Pipeline::new();
    p.create("/a", PERSISTENT).unwrap();
    p.create("/b", PERSISTENT).unwrap();
    let acl_of = |p: &Pipeline, path: &str| p.tree.get(path).unwrap().acl.clone();
    assert!(Arc::ptr_eq(&acl_of(&p, "/a"), &acl_of(&p, "/b")));
    let read_only = Acl::read_unsafe();
    let req = WriteReq::SetAcl {
        path: "/b",
        acl: &read_only,
        version: -1,
    };
    p.write(req).unwrap();
    assert_eq!(&*acl_of(&p, "/b"), &read_only[..]);
    assert!(
        Arc::ptr_eq(&acl_of(&p, "/b"), &acl_of(&p, "/zookeeper/config")),
        "setACL interns too"
    );
    assert!(!Arc::ptr_eq(&acl_of(&p, "/a"), &acl_of(&p, "/b")));
}

#[test]
fn set_acl_bumps_aversion_and_checks_it() {
    let mut p = Pipeline::new();
    p.create("/n", PERSISTENT).unwrap();
    let before = p.stat("/n");
    let read_only = Acl::read_unsafe();
    let req = WriteReq::SetAcl {
        path: "/n",
        acl: &read_only,
        version: 0,
    };
    let TxnResult::SetAcl(stat) = p.write(req).unwrap() else {
        panic!("expected SetAcl");
    };
    assert_eq!(
        stat,
        Stat {
            aversion: 1,
            ..before
        },
        "only aversion changes"
    );
    assert!(p.events.is_empty(), "setACL fires no watch");
    assert_eq!(&*p.tree.get("/n").unwrap().acl, read_only.as_slice());
    let stale = WriteReq::SetAcl {
        path: "/n",
        acl: &read_only,
        version: 0,
    };
    assert_eq!(
        p.write(stale),
        Err(ErrorCode::NoAuth),
        "world:anyone lost ADMIN"
    );
    let super_user = AuthInfo::superuser();
    let stale = WriteReq::SetAcl {
        path: "/n",
        acl: &read_only,
        version: 0,
    };
    assert_eq!(
        p.write_as(SESSION_A, &super_user, stale),
        Err(ErrorCode::BadVersion)
    );
    let invalid = [acl(perms::ALL, "ip", "999.0.0.1")];
    let req = WriteReq::SetAcl {
        path: "/n",
        acl: &invalid,
        version: -1,
    };
    assert_eq!(
        p.write_as(SESSION_A, &super_user, req),
        Err(ErrorCode::InvalidAcl)
    );
    let req = WriteReq::SetAcl {
        path: "/missing",
        acl: &read_only,
        version: -1,
    };
    assert_eq!(p.write(req), Err(ErrorCode::NoNode));
}

#[test]
fn delete_moves_the_parents_pzxid_but_not_its_cversion() {
    let mut p = Pipeline::new();
    p.create("/p", PERSISTENT).unwrap();
    p.create("/p/c", PERSISTENT).unwrap();
    let parent_before = p.stat("/p");
    let zxid = p.next_zxid;
    assert_eq!(
        p.write(WriteReq::Delete {
            path: "/p/c",
            version: 0
        }),
        Ok(TxnResult::Deleted)
    );
    let parent = p.stat("/p");
    assert_eq!(parent.pzxid, zxid);
    assert_eq!(parent.cversion, parent_before.cversion);
    assert_eq!(parent.num_children, 0);
    assert!(!p.tree.contains("/p/c"));
    assert_eq!(
        p.event_list(),
        [
            (EventType::NodeDeleted, "/p/c".into()),
            (EventType::NodeChildrenChanged, "/p".into())
        ]
    );
}

#[test]
fn delete_refuses_what_zookeeper_refuses() {
    let mut p = Pipeline::new();
    p.create("/p", PERSISTENT).unwrap();
    p.create("/p/c", PERSISTENT).unwrap();
    let delete = |path| WriteReq::Delete { path, version: -1 };
    assert_eq!(p.write(delete("/p")), Err(ErrorCode::NotEmpty));
    assert_eq!(
        p.write(WriteReq::Delete {
            path: "/p/c",
            version: 5
        }),
        Err(ErrorCode::BadVersion)
    );
    assert_eq!(p.write(delete("/p/missing")), Err(ErrorCode::NoNode));
    assert_eq!(p.write(delete("/missing/c")), Err(ErrorCode::NoNode));
    for system in [
        "/",
        "/zookeeper",
        "/zookeeper/quota",
        "/zookeeper/config",
        "",
        "nope",
    ] {
        assert_eq!(
            p.write(delete(system)),
            Err(ErrorCode::BadArguments),
            "{system:?}"
        );
    }
    p.create("/zookeeper/mine", PERSISTENT).unwrap();
    assert_eq!(p.write(delete("/zookeeper/mine")), Ok(TxnResult::Deleted));
}

#[test]
fn check_compares_the_data_version() {
    let mut p = Pipeline::new();
    p.create("/n", PERSISTENT).unwrap();
    assert_eq!(
        p.write(WriteReq::Check {
            path: "/n",
            version: 0
        }),
        Ok(TxnResult::Checked)
    );
    assert_eq!(
        p.write(WriteReq::Check {
            path: "/n",
            version: -1
        }),
        Ok(TxnResult::Checked)
    );
    assert_eq!(
        p.write(WriteReq::Check {
            path: "/n",
            version: 1
        }),
        Err(ErrorCode::BadVersion)
    );
    assert_eq!(
        p.write(WriteReq::Check {
            path: "/x",
            version: 1
        }),
        Err(ErrorCode::NoNode)
    );
    assert_eq!(
        p.write(WriteReq::Check {
            path: "x",
            version: 1
        }),
        Err(ErrorCode::BadArguments)
    );
}

// ----- sessions -----

#[test]
fn closing_a_session_deletes_its_ephemerals_and_fires_events() {
    let mut p = Pipeline::new();
    p.create("/locks", PERSISTENT).unwrap();
    p.create("/locks/a", EPHEMERAL).unwrap();
    p.create("/locks/b-", EPHEMERAL_SEQUENTIAL).unwrap();
    p.create("/other", EPHEMERAL).unwrap();
    p.write_as(SESSION_B, &anyone(), create_req("/locks/mine", EPHEMERAL))
        .unwrap();
    assert_eq!(p.tree.ephemeral_count(), 4);
    assert_eq!(p.tree.ephemeral_sessions(), [SESSION_A, SESSION_B]);
    assert_eq!(
        p.tree.ephemerals_of(SESSION_A, "/"),
        ["/locks/a", "/locks/b-0000000001", "/other"]
    );
    assert_eq!(
        p.tree.ephemerals_of(SESSION_A, " "),
        p.tree.ephemerals_of(SESSION_A, "")
    );
    assert_eq!(
        p.tree.ephemerals_of(SESSION_A, "/locks"),
        ["/locks/a", "/locks/b-0000000001"]
    );
    assert_eq!(
        p.tree.ephemerals_of(SESSION_A, "/lo"),
        ["/locks/a", "/locks/b-0000000001"],
        "plain prefix match"
    );
    let zxid = p.next_zxid;
    p.close_session(SESSION_A);
    assert_eq!(
        p.event_list(),
        [
            (EventType::NodeDeleted, "/locks/a".into()),
            (EventType::NodeChildrenChanged, "/locks".into()),
            (EventType::NodeDeleted, "/locks/b-0000000001".into()),
            (EventType::NodeChildrenChanged, "/locks".into()),
            (EventType::NodeDeleted, "/other".into()),
            (EventType::NodeChildrenChanged, "/".into()),
        ]
    );
    assert_eq!(p.tree.ephemerals_of(SESSION_A, "/"), Vec::<String>::new());
    assert_eq!(p.tree.ephemeral_sessions(), [SESSION_B]);
    assert_eq!(p.tree.ephemeral_count(), 1);
    assert!(p.tree.contains("/locks/mine"));
    assert_eq!(p.stat("/locks").pzxid, zxid);
    assert_eq!(p.tree.last_zxid(), zxid);
    p.close_session(SESSION_A);
    assert!(p.events.is_empty(), "closing again is a no-op");
}

#[test]
fn deleting_an_ephemeral_by_hand_unindexes_it() {
    let mut p = Pipeline::new();
    p.create("/e", EPHEMERAL).unwrap();
    p.write(WriteReq::Delete {
        path: "/e",
        version: -1,
    })
    .unwrap();
    assert_eq!(p.tree.ephemeral_count(), 0);
    assert!(p.tree.ephemeral_sessions().is_empty());
}

// ----- multi -----

#[test]
fn multi_ops_see_the_earlier_ops_of_the_same_multi() {
    let mut p = Pipeline::new();
    let zxid = p.next_zxid;
    let ops = vec![
        create_req("/m", PERSISTENT),
        create_req("/m/a", PERSISTENT),
        create_req("/m/s-", PERSISTENT_SEQUENTIAL),
        create_req("/m/s-", PERSISTENT_SEQUENTIAL),
        set_data("/m", b"v1", 0),
        WriteReq::Check {
            path: "/m",
            version: 1,
        },
        WriteReq::Delete {
            path: "/m/a",
            version: 0,
        },
    ];
    let TxnResult::Multi(results) = p.write(WriteReq::Multi(ops)).unwrap() else {
        panic!("expected Multi");
    };
    assert_eq!(results.len(), 7);
    let created: Vec<&str> = results
        .iter()
        .filter_map(|r| match r {
            TxnResult::Created { path, .. } => Some(path.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        created,
        ["/m", "/m/a", "/m/s-0000000001", "/m/s-0000000002"]
    );
    assert!(matches!(
        results[4],
        TxnResult::SetData(Stat { version: 1, .. })
    ));
    assert_eq!(results[5], TxnResult::Checked);
    assert_eq!(results[6], TxnResult::Deleted);
    let m = p.stat("/m");
    assert_eq!(
        (m.czxid, m.mzxid, m.pzxid, m.cversion, m.num_children),
        (zxid, zxid, zxid, 3, 2)
    );
    assert_eq!(p.tree.last_zxid(), zxid);
    assert_eq!(p.events.len(), 2 * 4 + 1 + 2, "every op fires its events");
}

#[test]
fn a_failed_multi_reports_per_op_codes_and_changes_nothing() {
    let mut p = Pipeline::new();
    p.create("/x", PERSISTENT).unwrap();
    let before = p.tree.clone();
    let ops = vec![
        create_req("/new", PERSISTENT),
        set_data("/x", b"v", 0),
        WriteReq::Check {
            path: "/x",
            version: 0,
        },
        set_data("/x", b"w", 7),
    ];
    let ops_count = ops.len();
    let hdr = p.header(SESSION_A);
    let op = p
        .tree
        .prep(&hdr, WriteReq::Multi(ops), &anyone(), &p.opts)
        .unwrap();
    let expected = vec![
        ErrorCode::Ok,
        ErrorCode::Ok,
        ErrorCode::BadVersion,
        ErrorCode::RuntimeInconsistency,
    ];
    assert_eq!(
        op,
        TxnOp::MultiError(expected.clone()),
        "check sees the setData before it"
    );
    assert_eq!(expected.len(), ops_count);
    assert_eq!(p.apply(hdr, op), TxnResult::MultiError(expected));
    assert!(p.events.is_empty());
    assert!(!p.tree.contains("/new"));
    assert_eq!(p.stat("/x"), before.get("/x").unwrap().stat);
    assert_eq!(
        p.tree.last_zxid(),
        hdr.zxid,
        "a failed multi still consumes its zxid"
    );
}

#[test]
fn an_empty_multi_succeeds() {
    let mut p = Pipeline::new();
    assert_eq!(
        p.write(WriteReq::Multi(Vec::new())),
        Ok(TxnResult::Multi(Vec::new()))
    );
}

#[test]
fn a_multi_of_one_failing_op_reports_only_that_code() {
    let p = Pipeline::new();
    let hdr = p.header(SESSION_A);
    let op = p.tree.prep(
        &hdr,
        WriteReq::Multi(vec![create_req("/a/b", 0)]),
        &anyone(),
        &p.opts,
    );
    assert_eq!(op, Ok(TxnOp::MultiError(vec![ErrorCode::NoNode])));
}

#[test]
fn apply_rolls_back_a_multi_whose_txn_is_inconsistent() {
    let mut tree = DataTree::new();
    let hdr = TxnHeader {
        session_id: SESSION_A,
        cxid: 1,
        zxid: 5,
        time_ms: T0_MS,
    };
    let op = TxnOp::Multi(vec![
        TxnOp::Create {
            path: "/a".into(),
            data: Some(Bytes::new()),
            acl: Acl::open_unsafe(),
            ephemeral_owner: 0,
            parent_cversion: 1,
            kind: CreateKind::Create,
        },
        TxnOp::Delete {
            path: "/missing".into(),
        },
    ]);
    let mut events = Vec::new();
    let result = tree.apply(&hdr, &op, &mut events);
    assert_eq!(
        result,
        TxnResult::MultiError(vec![ErrorCode::Ok, ErrorCode::NoNode])
    );
    assert!(!tree.contains("/a"));
    assert!(events.is_empty());
    tree.assert_invariants();
}

// ----- ACLs -----

#[test]
fn create_and_delete_need_permissions_on_the_parent() {
    let mut p = Pipeline::new();
    let mut alice = anyone();
    alice.add_digest("alice:secret", None);
    let alice_all = [acl(perms::ALL, "digest", &digest("alice:secret"))];
    p.write_as(SESSION_A, &alice, create_with_acl("/private", &alice_all))
        .unwrap();
    p.write_as(
        SESSION_A,
        &alice,
        create_with_acl("/private/doc", open_acl()),
    )
    .unwrap();
    let stranger = anyone();
    let as_stranger = |p: &mut Pipeline, req| p.write_as(SESSION_B, &stranger, req);
    assert_eq!(
        as_stranger(&mut p, create_req("/private/x", 0)),
        Err(ErrorCode::NoAuth)
    );
    assert_eq!(
        as_stranger(&mut p, create_req("/private/doc", 0)),
        Err(ErrorCode::NoAuth),
        "NoAuth before NodeExists"
    );
    assert_eq!(
        as_stranger(&mut p, create_req("/private/no/x", 0)),
        Err(ErrorCode::NoNode),
        "NoNode before NoAuth"
    );
    let delete = WriteReq::Delete {
        path: "/private/doc",
        version: 99,
    };
    assert_eq!(
        as_stranger(&mut p, delete),
        Err(ErrorCode::NoAuth),
        "NoAuth before BadVersion"
    );
    let delete = WriteReq::Delete {
        path: "/private/none",
        version: -1,
    };
    assert_eq!(
        as_stranger(&mut p, delete),
        Err(ErrorCode::NoAuth),
        "parent ACL before the node lookup"
    );
    // The node itself is open: WRITE on it is allowed even though the parent is private.
    assert!(as_stranger(&mut p, set_data("/private/doc", b"x", -1)).is_ok());
    assert!(p
        .write_as(SESSION_A, &alice, create_req("/private/x", 0))
        .is_ok());
    let delete = WriteReq::Delete {
        path: "/private/x",
        version: -1,
    };
    assert_eq!(
        p.write_as(SESSION_A, &alice, delete),
        Ok(TxnResult::Deleted)
    );
}

#[test]
fn set_data_and_check_need_permissions_on_the_node() {
    let mut p = Pipeline::new();
    let read_only = Acl::read_unsafe();
    p.write(create_with_acl("/ro", &read_only)).unwrap();
    let no_perms = [acl(perms::WRITE, "digest", &digest("bob:pw"))];
    p.write(create_with_acl("/hidden", &no_perms)).unwrap();
    assert_eq!(
        p.write(set_data("/ro", b"x", 99)),
        Err(ErrorCode::NoAuth),
        "NoAuth before BadVersion"
    );
    assert_eq!(
        p.write(set_data("/nope", b"x", 99)),
        Err(ErrorCode::NoNode),
        "NoNode before NoAuth"
    );
    assert_eq!(
        p.write(WriteReq::Check {
            path: "/ro",
            version: 0
        }),
        Ok(TxnResult::Checked)
    );
    assert_eq!(
        p.write(WriteReq::Check {
            path: "/hidden",
            version: 0
        }),
        Err(ErrorCode::NoAuth),
        "check needs READ"
    );
    let hidden = p.tree.get("/hidden").unwrap();
    let mut bob = anyone();
    assert!(!check_acl(&hidden.acl, perms::READ, &bob));
    bob.add_digest("bob:pw", None);
    assert!(check_acl(&hidden.acl, perms::WRITE, &bob));
    assert!(
        !check_acl(&hidden.acl, perms::READ, &bob),
        "getData would be NoAuth even for bob"
    );
    assert!(p
        .write_as(SESSION_A, &bob, set_data("/hidden", b"x", 0))
        .is_ok());
    assert!(p
        .write_as(SESSION_A, &AuthInfo::superuser(), set_data("/ro", b"x", 0))
        .is_ok());
}

#[test]
fn the_auth_scheme_expands_to_the_sessions_identities() {
    let mut p = Pipeline::new();
    let auth_acl = [acl(perms::ALL, "auth", "")];
    assert_eq!(
        p.write(create_with_acl("/mine", &auth_acl)),
        Err(ErrorCode::InvalidAcl)
    );
    let mut alice = anyone();
    alice.add_digest("alice:secret", None);
    p.write_as(SESSION_A, &alice, create_with_acl("/mine", &auth_acl))
        .unwrap();
    let stored = &p.tree.get("/mine").unwrap().acl;
    assert_eq!(
        &**stored,
        &[acl(perms::ALL, "digest", &digest("alice:secret"))]
    );
}

#[test]
fn ip_acls_match_addresses_and_cidr_blocks() {
    let mut p = Pipeline::new();
    let lan_only = [acl(perms::ALL, "ip", "10.0.0.0/8")];
    p.write(create_with_acl("/lan", &lan_only)).unwrap();
    let inside = AuthInfo::for_ip_str("10.20.30.40");
    let outside = AuthInfo::for_ip_str("192.168.0.1");
    assert!(p
        .write_as(SESSION_A, &inside, create_req("/lan/a", 0))
        .is_ok());
    assert_eq!(
        p.write_as(SESSION_A, &outside, create_req("/lan/b", 0)),
        Err(ErrorCode::NoAuth)
    );
}

// ----- TTL and containers -----

#[test]
fn ttl_nodes_need_extended_types_and_a_valid_ttl() {
    let mut p = Pipeline::new();
    p.opts.extended_types_enabled = false;
    assert_eq!(
        p.write(ttl_req("/t", PERSISTENT_WITH_TTL, 100)),
        Err(ErrorCode::Unimplemented)
    );
    assert_eq!(
        p.write(ttl_req("/t", PERSISTENT_SEQUENTIAL_WITH_TTL, 0)),
        Err(ErrorCode::Unimplemented)
    );
    p.opts.extended_types_enabled = true;
    for bad_ttl_ms in [0, -1, TTL_MAX_MS + 1] {
        assert_eq!(
            p.write(ttl_req("/t", PERSISTENT_WITH_TTL, bad_ttl_ms)),
            Err(ErrorCode::BadArguments)
        );
    }
    assert_eq!(
        p.write(ttl_req("/t", PERSISTENT, 100)),
        Err(ErrorCode::BadArguments),
        "TTL with a non-TTL mode"
    );
    assert_eq!(
        p.create("/t", PERSISTENT_WITH_TTL),
        Err(ErrorCode::BadArguments),
        "TTL mode without a TTL"
    );
    assert!(p
        .write(ttl_req("/t", PERSISTENT_WITH_TTL, TTL_MAX_MS))
        .is_ok());
    assert_eq!(
        p.tree.get("/t").unwrap().kind(),
        NodeKind::Ttl { ttl_ms: TTL_MAX_MS }
    );
}

#[test]
fn reaping_candidates_follow_the_container_manager() {
    let mut p = Pipeline::new();
    let container = |path| {
        WriteReq::Create(CreateReq {
            path,
            data: Some(Bytes::new()),
            acl: open_acl(),
            flags: CONTAINER,
            ttl_ms: None,
            kind: CreateKind::Container,
        })
    };
    p.write(container("/fresh")).unwrap();
    p.write(container("/used")).unwrap();
    p.create("/used/child", PERSISTENT).unwrap();
    let ttl_created_ms = p.now_ms;
    p.write(ttl_req("/ttl", PERSISTENT_WITH_TTL, 1_000))
        .unwrap();
    p.write(ttl_req("/ttl-parent", PERSISTENT_WITH_TTL, 1_000))
        .unwrap();
    p.create("/ttl-parent/child", PERSISTENT).unwrap();
    let far_future_ms = ttl_created_ms + 1_000_000;
    assert_eq!(
        p.tree.expired_containers_and_ttls(far_future_ms, 10),
        ["/ttl"],
        "/used has a child, /fresh never had one"
    );
    p.write(WriteReq::Delete {
        path: "/used/child",
        version: -1,
    })
    .unwrap();
    assert_eq!(
        p.tree
            .expired_containers_and_ttls(ttl_created_ms + 1_000, 10),
        ["/used"],
        "TTL not yet passed"
    );
    assert_eq!(
        p.tree
            .expired_containers_and_ttls(ttl_created_ms + 1_001, 10),
        ["/used", "/ttl"]
    );
    assert_eq!(
        p.tree.expired_containers_and_ttls(far_future_ms, 1),
        ["/used"]
    );
    p.write(set_data("/ttl", b"touch", -1)).unwrap();
    assert_eq!(
        p.tree
            .expired_containers_and_ttls(ttl_created_ms + 1_001, 10),
        ["/used"],
        "mtime restarts the TTL"
    );
    let reaper = AuthInfo::superuser();
    let delete = WriteReq::DeleteContainer { path: "/used" };
    assert_eq!(p.write_as(0, &reaper, delete), Ok(TxnResult::Deleted));
    assert!(!p.tree.contains("/used"));
}

#[test]
fn delete_container_follows_zookeeper() {
    let mut p = Pipeline::new();
    p.create("/p", PERSISTENT).unwrap();
    p.create("/p/c", PERSISTENT).unwrap();
    p.create("/e", EPHEMERAL).unwrap();
    let delete = |path| WriteReq::DeleteContainer { path };
    assert_eq!(p.write(delete("/p")), Err(ErrorCode::NotEmpty));
    assert_eq!(p.write(delete("/e")), Err(ErrorCode::BadVersion));
    assert_eq!(p.write(delete("/zookeeper")), Err(ErrorCode::BadArguments));
    assert_eq!(p.write(delete("/nope")), Err(ErrorCode::NoNode));
    assert_eq!(p.write(delete("/p/c")), Ok(TxnResult::Deleted));
}

// ----- versions published to readers -----

#[test]
fn a_published_version_never_changes() {
    let mut p = Pipeline::new();
    p.create("/a", PERSISTENT).unwrap();
    p.create("/a/b", EPHEMERAL).unwrap();
    let published = p.tree.clone();
    let a_before = published.get("/a").unwrap().clone();
    p.write(set_data("/a", b"changed", -1)).unwrap();
    p.create("/a/c", PERSISTENT).unwrap();
    p.write(WriteReq::Delete {
        path: "/a/b",
        version: -1,
    })
    .unwrap();
    p.create("/z", PERSISTENT).unwrap();
    p.close_session(SESSION_A);
    assert_eq!(published.get("/a").unwrap(), &a_before);
    assert_eq!(published.children("/a").unwrap().collect::<Vec<_>>(), ["b"]);
    assert!(published.contains("/a/b"));
    assert!(!published.contains("/z"));
    assert_eq!(published.ephemeral_count(), 1);
    assert_eq!(published.node_count(), 6);
    assert_ne!(published.last_zxid(), p.tree.last_zxid());
    published.assert_invariants();
    assert_eq!(
        p.tree.get("/a").unwrap().data.as_deref(),
        Some(&b"changed"[..])
    );
    assert_eq!(p.tree.children("/a").unwrap().collect::<Vec<_>>(), ["c"]);
}

#[test]
fn replaying_the_log_rebuilds_the_same_tree() {
    let mut p = Pipeline::new();
    p.create("/a", PERSISTENT).unwrap();
    p.create("/a/s-", EPHEMERAL_SEQUENTIAL).unwrap();
    p.write(ttl_req("/t", PERSISTENT_WITH_TTL, 10)).unwrap();
    p.write(set_data("/a", b"x", 0)).unwrap();
    let read_only = Acl::read_unsafe();
    p.write(WriteReq::SetAcl {
        path: "/t",
        acl: &read_only,
        version: -1,
    })
    .unwrap();
    p.write(WriteReq::Multi(vec![
        create_req("/m", 0),
        create_req("/m/n", 1),
    ]))
    .unwrap();
    p.write(WriteReq::Multi(vec![
        create_req("/m2", 0),
        create_req("/m", 0),
    ]))
    .unwrap();
    p.close_session(SESSION_A);
    let mut replayed = DataTree::new();
    let mut events = Vec::new();
    for (hdr, op) in &p.log {
        replayed.apply(hdr, op, &mut events);
    }
    replayed.assert_invariants();
    let dump = |tree: &DataTree| {
        let mut nodes: Vec<(String, Node)> = tree
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        nodes.sort_by(|a, b| a.0.cmp(&b.0));
        nodes
    };
    assert_eq!(dump(&replayed), dump(&p.tree));
    assert_eq!(replayed.last_zxid(), p.tree.last_zxid());
    assert_eq!(
        replayed.approximate_data_bytes(),
        p.tree.approximate_data_bytes()
    );
}

// ----- reads -----

#[test]
fn all_children_number_counts_every_descendant() {
    let mut p = Pipeline::new();
    for path in ["/a", "/a/b", "/a/b/c", "/a/d", "/e"] {
        p.create(path, PERSISTENT).unwrap();
    }
    assert_eq!(p.tree.all_children_number("/a"), Some(3));
    assert_eq!(p.tree.all_children_number("/a/b/c"), Some(0));
    assert_eq!(p.tree.all_children_number("/"), Some(3 + 5));
    assert_eq!(p.tree.all_children_number("/nope"), None);
    assert_eq!(p.tree.node_count(), 4 + 5);
}

#[test]
fn restore_node_rebuilds_a_snapshot() {
    let mut p = Pipeline::new();
    p.create("/a", PERSISTENT).unwrap();
    p.create("/a/e", EPHEMERAL).unwrap();
    p.write(set_data("/", b"root", -1)).unwrap();
    let mut nodes: Vec<(String, Node)> = p
        .tree
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    nodes.sort_by(|a, b| a.0.cmp(&b.0));
    let mut restored = DataTree::new();
    for (path, node) in &nodes {
        restored
            .restore_node(path, node.data.as_deref(), &node.acl, node.stat)
            .unwrap();
    }
    restored.set_last_zxid(p.tree.last_zxid());
    restored.assert_invariants();
    for (path, node) in &nodes {
        assert_eq!(restored.get(path), Some(node), "{path}");
    }
    assert_eq!(restored.ephemerals_of(SESSION_A, "/"), ["/a/e"]);
    assert_eq!(
        restored.approximate_data_bytes(),
        p.tree.approximate_data_bytes()
    );
    let orphan = restored.restore_node("/x/y", Some(&[]), &Acl::open_unsafe(), Stat::default());
    assert_eq!(orphan, Err(ErrorCode::NoNode));
    let (path, node) = nodes.iter().find(|(p, _)| p == "/a/e").expect("/a/e");
    let twice = restored.restore_node(path, node.data.as_deref(), &node.acl, node.stat);
    assert_eq!(twice, Err(ErrorCode::NodeExists), "{path} listed twice");
    restored.assert_invariants();
}
