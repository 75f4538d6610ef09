//! Every client opcode through an independent client (`zookeeper-client`), plus raw-protocol
//! checks where that client hides the wire detail (per-op multi errors, createTTL arguments).
//!
//! Run against Apache ZooKeeper with `FERROKEEPER_TEST_TARGET=apache`.

mod common;

use std::time::Duration;

use common::raw::{self, err, op, Acl as RawAcl, MultiOp};
use common::zk::{
    self, Acl, Acls, AuthId, AuthUser, CreateMode, MultiReadResult, MultiWriteError,
    MultiWriteResult, Permission,
};
use common::{mode, open, Server};

static SERVER: common::Shared = common::Shared::new();

fn server() -> &'static Server {
    common::shared(&SERVER, &[])
}

/// Containers and TTL nodes are stored with the special owners 0x8000000000000000 and
/// 0xFF<<56|ttl, but clients see ephemeralOwner 0 for them (ZooKeeper's DataNode.copyStat
/// reports the owner only for normal ephemerals).
const CLIENT_VISIBLE_SPECIAL_OWNER: i64 = 0;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Invariants of a freshly created node's Stat (create2 / createContainer / createTTL).
fn assert_fresh_stat(stat: &zk::Stat, data_len: usize, owner: i64) {
    assert_eq!(
        stat.czxid, stat.mzxid,
        "czxid == mzxid after create: {stat:?}"
    );
    assert_eq!(
        stat.czxid, stat.pzxid,
        "pzxid == czxid after create: {stat:?}"
    );
    assert!(stat.czxid > 0, "czxid set: {stat:?}");
    assert_eq!(
        stat.ctime, stat.mtime,
        "ctime == mtime after create: {stat:?}"
    );
    assert!(
        (stat.ctime - now_ms()).abs() < 120_000,
        "ctime is ms since the epoch: {stat:?}"
    );
    assert_eq!(
        (stat.version, stat.cversion, stat.aversion),
        (0, 0, 0),
        "versions start at 0: {stat:?}"
    );
    assert_eq!(stat.data_length, data_len as i32, "dataLength: {stat:?}");
    assert_eq!(stat.num_children, 0, "numChildren: {stat:?}");
    assert_eq!(stat.ephemeral_owner, owner, "ephemeralOwner: {stat:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_every_mode_with_exact_stats() {
    common::bounded(45, async {
        let c = server().client().await;
        let sid = c.session_id().0;
        assert_ne!(sid, 0);
        c.create("/ops_modes", b"", &open()).await.unwrap();

        // persistent
        let (st, seq) = c.create("/ops_modes/p", b"data", &open()).await.unwrap();
        assert_fresh_stat(&st, 4, 0);
        assert_eq!(seq.into_i64(), -1);
        let (data, got) = c.get_data("/ops_modes/p").await.unwrap();
        assert_eq!(data, b"data");
        assert_eq!(got, st, "getData stat equals create2 stat");
        assert_eq!(
            c.check_stat("/ops_modes/p").await.unwrap(),
            Some(st),
            "exists stat equals create2 stat"
        );

        // ephemeral: owner is the session id
        let (st, _) = c
            .create("/ops_modes/e", b"", &mode(CreateMode::Ephemeral))
            .await
            .unwrap();
        assert_fresh_stat(&st, 0, sid);

        // persistent sequential: suffix is the parent's cversion before the create, %010d
        let (_, pst) = c.get_children("/ops_modes").await.unwrap();
        assert_eq!(pst.cversion, 2);
        let (st, seq) = c
            .create(
                "/ops_modes/s-",
                b"x",
                &mode(CreateMode::PersistentSequential),
            )
            .await
            .unwrap();
        assert_fresh_stat(&st, 1, 0);
        assert_eq!(seq.into_i64(), 2);
        assert_eq!(seq.to_string(), "0000000002");
        assert!(c
            .check_stat("/ops_modes/s-0000000002")
            .await
            .unwrap()
            .is_some());

        // ephemeral sequential
        let (st, seq) = c
            .create(
                "/ops_modes/es-",
                b"",
                &mode(CreateMode::EphemeralSequential),
            )
            .await
            .unwrap();
        assert_fresh_stat(&st, 0, sid);
        assert_eq!(seq.into_i64(), 3);
        assert!(c
            .check_stat("/ops_modes/es-0000000003")
            .await
            .unwrap()
            .is_some());

        // container (opcode createContainer): clients see ephemeralOwner 0
        let (st, _) = c
            .create("/ops_modes/c", b"cc", &mode(CreateMode::Container))
            .await
            .unwrap();
        assert_fresh_stat(&st, 2, CLIENT_VISIBLE_SPECIAL_OWNER);
        assert_eq!(c.check_stat("/ops_modes/c").await.unwrap().unwrap(), st);

        // TTL (opcode createTTL): clients see ephemeralOwner 0
        let ttl = Duration::from_millis(3_600_000);
        let (st, _) = c
            .create(
                "/ops_modes/t",
                b"",
                &mode(CreateMode::Persistent).with_ttl(ttl),
            )
            .await
            .unwrap();
        assert_fresh_stat(&st, 0, CLIENT_VISIBLE_SPECIAL_OWNER);
        assert_eq!(c.get_data("/ops_modes/t").await.unwrap().1, st);
        let ttl_seq = mode(CreateMode::PersistentSequential).with_ttl(Duration::from_millis(5000));
        let (st, seq) = c.create("/ops_modes/ts-", b"", &ttl_seq).await.unwrap();
        assert_fresh_stat(&st, 0, CLIENT_VISIBLE_SPECIAL_OWNER);
        assert_eq!(seq.to_string(), "0000000006");
        // only real ephemerals are listed by getEphemerals
        let mut eph = c.list_ephemerals("/ops_modes").await.unwrap();
        eph.sort();
        assert_eq!(eph, ["/ops_modes/e", "/ops_modes/es-0000000003"]);

        let mut kids = c.list_children("/ops_modes").await.unwrap();
        kids.sort();
        assert_eq!(
            kids,
            [
                "c",
                "e",
                "es-0000000003",
                "p",
                "s-0000000002",
                "t",
                "ts-0000000006"
            ]
        );
        let (_, pst) = c.get_children("/ops_modes").await.unwrap();
        assert_eq!((pst.num_children, pst.cversion), (7, 7));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_opcode_1_returns_only_the_path() {
    common::bounded(45, async {
        let mut r = server().raw();
        let rep = r.req(
            op::CREATE,
            &raw::create_body("/ops_create1", b"v", &RawAcl::world_all(), 0),
        );
        assert_eq!(rep.err, 0);
        let mut d = rep.dec();
        assert_eq!(d.string(), "/ops_create1");
        assert_eq!(
            d.remaining(),
            0,
            "create (opcode 1) reply carries the path only"
        );
        // sequential through opcode 1: the reply names the actual node
        let rep = r.req(
            op::CREATE,
            &raw::create_body("/ops_create1/q", b"", &RawAcl::world_all(), 2),
        );
        assert_eq!(rep.err, 0);
        assert_eq!(rep.dec().string(), "/ops_create1/q0000000000");
        // create2 reply: path + Stat, and the reply header zxid is the new node's czxid
        let rep = r.req(
            op::CREATE2,
            &raw::create_body("/ops_create1/r", b"abc", &RawAcl::world_all(), 0),
        );
        assert_eq!(rep.err, 0);
        let mut d = rep.dec();
        assert_eq!(d.string(), "/ops_create1/r");
        let st = d.stat();
        assert_eq!(d.remaining(), 0);
        assert_eq!(st.czxid, rep.zxid, "reply header zxid is the create's zxid");
        assert_eq!(st.data_length, 3);
    })
    .await;
}

/// ZooKeeper keeps an internal per-parent counter of child *creations* (StatPersisted.cversion);
/// sequential names use it. The cversion clients see is `2 * creations - numChildren`, i.e.
/// creations + deletions (DataNode.copyStat, "v3 semantics").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_names_and_cversion() {
    common::bounded(45, async {
        let c = server().client().await;
        c.create("/ops_seq", b"", &open()).await.unwrap();
        let seq_opts = mode(CreateMode::PersistentSequential);
        let cv = |st: zk::Stat| (st.cversion, st.num_children);

        let (_, seq) = c.create("/ops_seq/a-", b"", &seq_opts).await.unwrap();
        assert_eq!(seq.to_string(), "0000000000");
        c.create("/ops_seq/plain", b"", &open()).await.unwrap();
        let (_, seq) = c.create("/ops_seq/b-", b"", &seq_opts).await.unwrap();
        assert_eq!(seq.to_string(), "0000000002");
        assert_eq!(cv(c.get_children("/ops_seq").await.unwrap().1), (3, 3));

        // A delete bumps the visible cversion, but not the sequence counter.
        c.delete("/ops_seq/plain", None).await.unwrap();
        assert_eq!(cv(c.get_children("/ops_seq").await.unwrap().1), (4, 2));
        let (_, seq) = c.create("/ops_seq/c-", b"", &seq_opts).await.unwrap();
        assert_eq!(
            seq.to_string(),
            "0000000003",
            "sequence = child creations so far"
        );
        assert_eq!(cv(c.get_children("/ops_seq").await.unwrap().1), (5, 3));

        // Different prefixes and ephemeral-sequential share the parent's counter.
        let eph_seq = mode(CreateMode::EphemeralSequential);
        let (_, seq) = c.create("/ops_seq/a-", b"", &eph_seq).await.unwrap();
        assert_eq!(seq.to_string(), "0000000004");
        let mut kids = c.list_children("/ops_seq").await.unwrap();
        kids.sort();
        assert_eq!(
            kids,
            [
                "a-0000000000",
                "a-0000000004",
                "b-0000000002",
                "c-0000000003"
            ]
        );

        // Delete everything: cversion = 2 * 5 creations - 0 children.
        for k in kids {
            c.delete(&format!("/ops_seq/{k}"), None).await.unwrap();
        }
        assert_eq!(cv(c.get_children("/ops_seq").await.unwrap().1), (10, 0));
        let (_, seq) = c.create("/ops_seq/d-", b"", &seq_opts).await.unwrap();
        assert_eq!(seq.to_string(), "0000000005");
        // A failed create does not consume a number.
        let taken = c.create("/ops_seq/d-0000000005", b"", &open()).await;
        assert_eq!(taken.unwrap_err(), zk::Error::NodeExists);
        let (_, seq) = c.create("/ops_seq/d-", b"", &seq_opts).await.unwrap();
        assert_eq!(seq.to_string(), "0000000006");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parent_stat_tracks_children() {
    common::bounded(45, async {
        let mut r = server().raw();
        let rep = r.req(
            op::CREATE2,
            &raw::create_body("/ops_parent", b"pp", &RawAcl::world_all(), 0),
        );
        assert_eq!(rep.err, 0);
        let mut d = rep.dec();
        d.string();
        let p0 = d.stat();

        let rep = r.req(
            op::CREATE2,
            &raw::create_body("/ops_parent/k", b"", &RawAcl::world_all(), 0),
        );
        assert_eq!(rep.err, 0);
        let mut d = rep.dec();
        d.string();
        let k = d.stat();

        let p1 = r
            .req(op::EXISTS, &raw::path_watch("/ops_parent", false))
            .stat();
        assert_eq!(p1.cversion, p0.cversion + 1, "child create bumps cversion");
        assert_eq!(p1.num_children, 1);
        assert_eq!(p1.pzxid, k.czxid, "pzxid = zxid of the child create");
        assert_eq!(
            (p1.version, p1.mzxid, p1.mtime, p1.data_length),
            (p0.version, p0.mzxid, p0.mtime, 2),
            "data untouched"
        );

        // A child's data change does not touch the parent.
        let (_, rep) = r.set_data("/ops_parent/k", b"zz");
        assert_eq!(rep.err, 0);
        assert_eq!(
            r.req(op::EXISTS, &raw::path_watch("/ops_parent", false))
                .stat(),
            p1
        );

        let rep = r.req(op::DELETE, &raw::delete_body("/ops_parent/k", -1));
        assert_eq!(rep.err, 0);
        let p2 = r
            .req(op::EXISTS, &raw::path_watch("/ops_parent", false))
            .stat();
        assert_eq!(p2.num_children, 0);
        assert_eq!(
            p2.cversion,
            p1.cversion + 1,
            "child delete bumps the visible cversion"
        );
        assert_eq!(
            p2.pzxid, rep.zxid,
            "pzxid = zxid of the child delete (reply header zxid)"
        );
        assert!(p2.pzxid > p1.pzxid);
        assert_eq!(p2.mzxid, p0.mzxid);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_errors() {
    common::bounded(45, async {
        let c = server().client().await;
        c.create("/ops_cerr", b"", &open()).await.unwrap();
        assert_eq!(
            c.create("/ops_cerr", b"", &open()).await.unwrap_err(),
            zk::Error::NodeExists
        );
        assert_eq!(
            c.create("/ops_cerr/missing/child", b"", &open())
                .await
                .unwrap_err(),
            zk::Error::NoNode
        );
        c.create("/ops_cerr/eph", b"", &mode(CreateMode::Ephemeral))
            .await
            .unwrap();
        assert_eq!(
            c.create("/ops_cerr/eph/child", b"", &open())
                .await
                .unwrap_err(),
            zk::Error::NoChildrenForEphemerals
        );
        assert_eq!(
            c.create(
                "/ops_cerr/eph/s-",
                b"",
                &mode(CreateMode::PersistentSequential)
            )
            .await
            .unwrap_err(),
            zk::Error::NoChildrenForEphemerals
        );

        // Empty or malformed ACLs: INVALIDACL (the client refuses an empty list itself, so raw).
        let mut r = server().raw();
        let rep = r.req(
            op::CREATE,
            &raw::create_body("/ops_cerr/noacl", b"", &[], 0),
        );
        assert_eq!(rep.err, err::INVALID_ACL);
        let rep = r.req(
            op::CREATE,
            &raw::create_body(
                "/ops_cerr/badacl",
                b"",
                &[RawAcl::new(31, "digest", "nocolon")],
                0,
            ),
        );
        assert_eq!(rep.err, err::INVALID_ACL);
        let rep = r.req(
            op::CREATE,
            &raw::create_body(
                "/ops_cerr/badacl",
                b"",
                &[RawAcl::new(31, "nosuchscheme", "x")],
                0,
            ),
        );
        assert_eq!(rep.err, err::INVALID_ACL);
        let rep = r.req(
            op::CREATE,
            &raw::create_body(
                "/ops_cerr/badacl",
                b"",
                &[RawAcl::new(31, "ip", "not-an-ip")],
                0,
            ),
        );
        assert_eq!(rep.err, err::INVALID_ACL);
        // `auth` without any authenticated id on the session
        let rep = r.req(
            op::CREATE,
            &raw::create_body("/ops_cerr/badacl", b"", &[RawAcl::new(31, "auth", "")], 0),
        );
        assert_eq!(rep.err, err::INVALID_ACL);
        assert!(c.check_stat("/ops_cerr/badacl").await.unwrap().is_none());
        assert!(c.check_stat("/ops_cerr/noacl").await.unwrap().is_none());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_argument_checks() {
    common::bounded(45, async {
        let mut r = server().raw();
        r.create("/ops_ttl", b"", 0);
        // ttl 0 and ttl above 40 bits are BADARGUMENTS
        for ttl in [0i64, -5, 0x0100_0000_0000] {
            let rep = r.req(
                op::CREATE_TTL,
                &raw::create_ttl_body("/ops_ttl/x", b"", &RawAcl::world_all(), 5, ttl),
            );
            assert_eq!(rep.err, err::BAD_ARGUMENTS, "ttl {ttl}");
        }
        // createTTL with a non-TTL mode (ephemeral) is BADARGUMENTS
        let rep = r.req(
            op::CREATE_TTL,
            &raw::create_ttl_body("/ops_ttl/x", b"", &RawAcl::world_all(), 1, 1000),
        );
        assert_eq!(rep.err, err::BAD_ARGUMENTS);
        // a valid one
        let rep = r.req(
            op::CREATE_TTL,
            &raw::create_ttl_body("/ops_ttl/x", b"", &RawAcl::world_all(), 5, 1000),
        );
        assert_eq!(rep.err, 0);
        let mut d = rep.dec();
        assert_eq!(d.string(), "/ops_ttl/x");
        assert_eq!(d.stat().ephemeral_owner, CLIENT_VISIBLE_SPECIAL_OWNER);
        // the connection is still fine
        assert_eq!(
            r.req(op::EXISTS, &raw::path_watch("/ops_ttl/x", false)).err,
            0
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_needs_extended_types() {
    common::bounded(45, async {
        let s = Server::start(&[("extendedTypesEnabled", "false")]);
        let c = s.client().await;
        let ttl = mode(CreateMode::Persistent).with_ttl(Duration::from_secs(10));
        assert_eq!(
            c.create("/ops_nottl", b"", &ttl).await.unwrap_err(),
            zk::Error::Unimplemented
        );
        assert!(c.check_stat("/ops_nottl").await.unwrap().is_none());
        // other modes still work
        c.create("/ops_nottl", b"", &mode(CreateMode::Container))
            .await
            .unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_with_versions() {
    common::bounded(45, async {
        let c = server().client().await;
        c.create("/ops_del", b"", &open()).await.unwrap();
        c.create("/ops_del/a", b"", &open()).await.unwrap();
        assert_eq!(
            c.delete("/ops_del", None).await.unwrap_err(),
            zk::Error::NotEmpty
        );
        assert_eq!(
            c.delete("/ops_del/none", None).await.unwrap_err(),
            zk::Error::NoNode
        );
        c.set_data("/ops_del/a", b"1", None).await.unwrap(); // version 1
        assert_eq!(
            c.delete("/ops_del/a", Some(0)).await.unwrap_err(),
            zk::Error::BadVersion
        );
        assert_eq!(
            c.delete("/ops_del/a", Some(2)).await.unwrap_err(),
            zk::Error::BadVersion
        );
        assert!(c.check_stat("/ops_del/a").await.unwrap().is_some());
        c.delete("/ops_del/a", Some(1)).await.unwrap();
        assert!(c.check_stat("/ops_del/a").await.unwrap().is_none());
        assert_eq!(
            c.delete("/ops_del/a", Some(1)).await.unwrap_err(),
            zk::Error::NoNode
        );
        c.create("/ops_del/b", b"", &open()).await.unwrap();
        c.delete("/ops_del/b", None).await.unwrap(); // -1 = any version
        c.delete("/ops_del", Some(0)).await.unwrap();
        assert!(c.check_stat("/ops_del").await.unwrap().is_none());

        // raw: NOTEMPTY beats BADVERSION? No: the version check comes first in ZooKeeper.
        let mut r = server().raw();
        r.create("/ops_del2", b"", 0);
        r.create("/ops_del2/x", b"", 0);
        assert_eq!(
            r.req(op::DELETE, &raw::delete_body("/ops_del2", 5)).err,
            err::BAD_VERSION
        );
        assert_eq!(
            r.req(op::DELETE, &raw::delete_body("/ops_del2", 0)).err,
            err::NOT_EMPTY
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exists_and_get_data() {
    common::bounded(45, async {
        let c = server().client().await;
        assert_eq!(c.check_stat("/ops_exists").await.unwrap(), None);
        assert_eq!(
            c.get_data("/ops_exists").await.unwrap_err(),
            zk::Error::NoNode
        );
        let (st, _) = c.create("/ops_exists", b"", &open()).await.unwrap();
        assert_eq!(c.check_stat("/ops_exists").await.unwrap(), Some(st));
        let (data, got) = c.get_data("/ops_exists").await.unwrap();
        assert!(data.is_empty());
        assert_eq!(got.data_length, 0);

        // Root and the built-in nodes exist.
        assert!(c.check_stat("/").await.unwrap().is_some());
        assert!(c.check_stat("/zookeeper").await.unwrap().is_some());
        assert!(c.check_stat("/zookeeper/quota").await.unwrap().is_some());
        let kids = c.list_children("/zookeeper").await.unwrap();
        assert!(kids.contains(&"quota".to_string()), "{kids:?}");
        assert!(kids.contains(&"config".to_string()), "{kids:?}");

        // The built-in nodes hold empty data, not null: the data length on
        // the wire is 0, not -1 (Curator's EnsembleTracker fails on null).
        let mut r = server().raw();
        for path in ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"] {
            let (_, rep) = r.get_data(path, false);
            assert_eq!(rep.err, 0, "{path}");
            assert_eq!(&rep.body[..4], &[0, 0, 0, 0], "{path}: data length 0");
        }

        // Null data (buffer length -1) reads back as empty with dataLength 0.
        let body = raw::Enc::new()
            .string("/ops_exists_null")
            .null_buffer()
            .acls(&RawAcl::world_all())
            .int(0)
            .bytes();
        assert_eq!(r.req(op::CREATE, &body).err, 0);
        let (_, rep) = r.get_data("/ops_exists_null", false);
        assert_eq!(rep.err, 0);
        let (data, st) = rep.data();
        assert!(
            data.as_ref().map(|d| d.is_empty()).unwrap_or(true),
            "{data:?}"
        );
        assert_eq!(st.data_length, 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_data_versions() {
    common::bounded(45, async {
        let c = server().client().await;
        let (st0, _) = c.create("/ops_set", b"a", &open()).await.unwrap();
        let st1 = c.set_data("/ops_set", b"bbbb", Some(0)).await.unwrap();
        assert_eq!(st1.version, 1);
        assert_eq!(st1.czxid, st0.czxid);
        assert_eq!(st1.ctime, st0.ctime);
        assert!(st1.mzxid > st0.mzxid);
        assert!(st1.mtime >= st0.mtime);
        assert_eq!(st1.data_length, 4);
        assert_eq!(st1.pzxid, st0.pzxid, "setData does not touch pzxid");
        assert_eq!((st1.cversion, st1.aversion), (0, 0));
        assert_eq!(
            c.set_data("/ops_set", b"c", Some(0)).await.unwrap_err(),
            zk::Error::BadVersion
        );
        assert_eq!(
            c.set_data("/ops_set", b"c", Some(7)).await.unwrap_err(),
            zk::Error::BadVersion
        );
        assert_eq!(
            c.get_data("/ops_set").await.unwrap().0,
            b"bbbb",
            "failed setData changed nothing"
        );
        let st2 = c.set_data("/ops_set", b"", None).await.unwrap();
        assert_eq!(st2.version, 2);
        assert_eq!(st2.data_length, 0);
        let (data, st) = c.get_data("/ops_set").await.unwrap();
        assert!(data.is_empty());
        assert_eq!(st, st2);
        assert_eq!(
            c.set_data("/ops_set_missing", b"", None).await.unwrap_err(),
            zk::Error::NoNode
        );

        // The reply header zxid of a setData is the new mzxid.
        let mut r = server().raw();
        let (_, rep) = r.set_data("/ops_set", b"z");
        assert_eq!(rep.err, 0);
        assert_eq!(rep.stat().mzxid, rep.zxid);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_set_acl() {
    common::bounded(45, async {
        let c = server().client().await;
        let (st0, _) = c.create("/ops_acl", b"", &open()).await.unwrap();
        let (acl, st) = c.get_acl("/ops_acl").await.unwrap();
        assert_eq!(acl, vec![Acl::new(Permission::ALL, AuthId::anyone())]);
        assert_eq!(st, st0);

        let new_acl = [
            Acl::new(
                Permission::READ | Permission::WRITE | Permission::ADMIN,
                AuthId::anyone(),
            ),
            Acl::new(Permission::ALL, AuthId::new("ip", "127.0.0.1")),
        ];
        let st1 = c.set_acl("/ops_acl", &new_acl, Some(0)).await.unwrap();
        assert_eq!(st1.aversion, 1);
        assert_eq!(
            (st1.version, st1.cversion, st1.mzxid, st1.pzxid),
            (0, 0, st0.mzxid, st0.pzxid),
            "{st1:?}"
        );
        assert_eq!(
            c.set_acl("/ops_acl", &new_acl, Some(0)).await.unwrap_err(),
            zk::Error::BadVersion
        );
        let (acl, st) = c.get_acl("/ops_acl").await.unwrap();
        assert_eq!(acl, new_acl.to_vec());
        assert_eq!(st.aversion, 1);
        let st2 = c
            .set_acl("/ops_acl", &Acls::anyone_all(), None)
            .await
            .unwrap();
        assert_eq!(st2.aversion, 2);
        assert_eq!(
            c.set_acl("/ops_acl", &[], None).await.unwrap_err(),
            zk::Error::InvalidAcl
        );
        assert_eq!(
            c.get_acl("/ops_acl_missing").await.unwrap_err(),
            zk::Error::NoNode
        );
        assert_eq!(
            c.set_acl("/ops_acl_missing", &Acls::anyone_all(), None)
                .await
                .unwrap_err(),
            zk::Error::NoNode
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_and_children2() {
    common::bounded(45, async {
        let c = server().client().await;
        c.create("/ops_kids", b"", &open()).await.unwrap();
        assert!(c.list_children("/ops_kids").await.unwrap().is_empty());
        for k in ["b", "a", "c"] {
            c.create(&format!("/ops_kids/{k}"), b"", &open())
                .await
                .unwrap();
        }
        let mut kids = c.list_children("/ops_kids").await.unwrap();
        kids.sort();
        assert_eq!(kids, ["a", "b", "c"]);
        let (mut kids2, st) = c.get_children("/ops_kids").await.unwrap();
        kids2.sort();
        assert_eq!(kids2, kids);
        assert_eq!((st.num_children, st.cversion), (3, 3));
        assert_eq!(st, c.check_stat("/ops_kids").await.unwrap().unwrap());
        assert_eq!(
            c.list_children("/ops_kids_missing").await.unwrap_err(),
            zk::Error::NoNode
        );
        assert_eq!(
            c.get_children("/ops_kids_missing").await.unwrap_err(),
            zk::Error::NoNode
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_atomic_success() {
    common::bounded(45, async {
        let c = server().client().await;
        c.create("/ops_multi", b"", &open()).await.unwrap();
        c.create("/ops_multi/old", b"", &open()).await.unwrap();
        let mut w = c.new_multi_writer();
        w.add_create("/ops_multi/new", b"n", &open()).unwrap();
        w.add_set_data("/ops_multi/new", b"nn", Some(0)).unwrap();
        w.add_check_version("/ops_multi/new", 1).unwrap();
        w.add_delete("/ops_multi/old", Some(0)).unwrap();
        w.add_create(
            "/ops_multi/s-",
            b"",
            &mode(CreateMode::PersistentSequential),
        )
        .unwrap();
        let res = w.commit().await.unwrap();
        assert_eq!(res.len(), 5, "{res:?}");
        let MultiWriteResult::Create { path, stat } = &res[0] else {
            panic!("{res:?}")
        };
        assert_eq!(path, "/ops_multi/new");
        let MultiWriteResult::SetData { stat: st2 } = &res[1] else {
            panic!("{res:?}")
        };
        assert_eq!(st2.version, 1);
        assert_eq!(st2.czxid, st2.mzxid, "all ops of one multi share one zxid");
        if common::check_39_behaviour("create2 inside multi returns a Stat (ZOOKEEPER-4026)") {
            assert_eq!(stat.czxid, st2.czxid, "create2-in-multi stat");
            assert_eq!(stat.version, 0);
        }
        assert_eq!(res[2], MultiWriteResult::Check);
        assert_eq!(res[3], MultiWriteResult::Delete);
        let MultiWriteResult::Create { path, .. } = &res[4] else {
            panic!("{res:?}")
        };
        // two child creations before it under /ops_multi: old, new
        assert_eq!(path, "/ops_multi/s-0000000002");
        let (data, st) = c.get_data("/ops_multi/new").await.unwrap();
        assert_eq!(data, b"nn");
        assert_eq!(st.version, 1);
        assert!(c.check_stat("/ops_multi/old").await.unwrap().is_none());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_failure_applies_nothing() {
    common::bounded(45, async {
        let c = server().client().await;
        c.create("/ops_mfail", b"orig", &open()).await.unwrap();
        let mut w = c.new_multi_writer();
        w.add_create("/ops_mfail/a", b"", &open()).unwrap();
        w.add_set_data("/ops_mfail", b"changed", None).unwrap();
        w.add_check_version("/ops_mfail", 0).unwrap(); // version is 1 inside the multi: fails
        w.add_create("/ops_mfail/b", b"", &open()).unwrap();
        match w.commit().await {
            Err(MultiWriteError::OperationFailed { index, source }) => {
                assert_eq!(index, 2);
                assert_eq!(source, zk::Error::BadVersion);
            }
            other => panic!("expected failure at index 2, got {other:?}"),
        }
        assert!(c.check_stat("/ops_mfail/a").await.unwrap().is_none());
        assert!(c.check_stat("/ops_mfail/b").await.unwrap().is_none());
        let (data, st) = c.get_data("/ops_mfail").await.unwrap();
        assert_eq!(data, b"orig");
        assert_eq!((st.version, st.cversion, st.num_children), (0, 0, 0));

        // Raw: every result is an ErrorResponse; ops before the failing one carry 0, the failing one
        // its code, later ones RUNTIMEINCONSISTENCY; the outer header err is 0.
        let mut r = server().raw();
        let ops = [
            MultiOp {
                op: op::CREATE,
                body: raw::create_body("/ops_mfail/a", b"", &RawAcl::world_all(), 0),
            },
            MultiOp {
                op: op::CHECK,
                body: raw::delete_body("/ops_mfail", 0),
            },
            MultiOp {
                op: op::DELETE,
                body: raw::delete_body("/ops_mfail/none", -1),
            },
            MultiOp {
                op: op::SET_DATA,
                body: raw::set_data_body("/ops_mfail", b"x", 5),
            },
            MultiOp {
                op: op::CREATE,
                body: raw::create_body("/ops_mfail/b", b"", &RawAcl::world_all(), 0),
            },
        ];
        let rep = r.req(op::MULTI, &raw::multi_body(&ops));
        assert_eq!(rep.err, 0, "outer error of a failed multi is 0");
        let res = raw::parse_multi_reply(&rep.body);
        let got: Vec<(i32, i32)> = res.iter().map(|x| (x.op, x.err)).collect();
        assert_eq!(
            got,
            vec![
                (-1, 0),
                (-1, 0),
                (-1, err::NO_NODE),
                (-1, err::RUNTIME_INCONSISTENCY),
                (-1, err::RUNTIME_INCONSISTENCY)
            ]
        );
        assert!(c.check_stat("/ops_mfail/a").await.unwrap().is_none());

        // A successful raw multi: per-op typed results.
        let ops = [
            MultiOp {
                op: op::CREATE,
                body: raw::create_body("/ops_mfail/c", b"", &RawAcl::world_all(), 0),
            },
            MultiOp {
                op: op::CREATE2,
                body: raw::create_body("/ops_mfail/d", b"", &RawAcl::world_all(), 0),
            },
            MultiOp {
                op: op::CHECK,
                body: raw::delete_body("/ops_mfail/c", 0),
            },
            MultiOp {
                op: op::SET_DATA,
                body: raw::set_data_body("/ops_mfail/c", b"x", 0),
            },
            MultiOp {
                op: op::DELETE,
                body: raw::delete_body("/ops_mfail/c", 1),
            },
        ];
        let rep = r.req(op::MULTI, &raw::multi_body(&ops));
        assert_eq!(rep.err, 0);
        let res = raw::parse_multi_reply(&rep.body);
        let got: Vec<(i32, i32)> = res.iter().map(|x| (x.op, x.err)).collect();
        assert_eq!(got[0], (op::CREATE, 0));
        assert_eq!(
            got[2..],
            [(op::CHECK, 0), (op::SET_DATA, 0), (op::DELETE, 0)]
        );
        assert_eq!(res[0].path.as_deref(), Some("/ops_mfail/c"));
        assert_eq!(res[1].path.as_deref(), Some("/ops_mfail/d"));
        if common::check_39_behaviour(
            "create2 inside multi answers type 15 + Stat (ZOOKEEPER-4026)",
        ) {
            assert_eq!(got[1], (op::CREATE2, 0));
            assert_eq!(res[1].stat.unwrap().czxid, rep.zxid);
        } else {
            assert_eq!(
                got[1],
                (op::CREATE, 0),
                "3.8.0 decays create2 to create inside multi"
            );
        }
        let set = res[3].stat.unwrap();
        assert_eq!(set.version, 1);
        assert_eq!(
            set.mzxid, rep.zxid,
            "the ops of a multi share the multi's zxid"
        );

        // An empty multi succeeds with no results.
        let rep = r.req(op::MULTI, &raw::multi_body(&[]));
        assert_eq!(rep.err, 0);
        assert!(raw::parse_multi_reply(&rep.body).is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_read_is_per_op() {
    common::bounded(45, async {
        let c = server().client().await;
        c.create("/ops_mread", b"top", &open()).await.unwrap();
        c.create("/ops_mread/k", b"", &open()).await.unwrap();
        // A deleted child makes the server's stored cversion differ from the
        // one clients see: multiRead must report the client view too.
        c.create("/ops_mread/gone", b"", &open()).await.unwrap();
        c.delete("/ops_mread/gone", None).await.unwrap();
        let (_, plain_stat) = c.get_data("/ops_mread").await.unwrap();
        let mut rd = c.new_multi_reader();
        rd.add_get_data("/ops_mread").unwrap();
        rd.add_get_children("/ops_mread").unwrap();
        rd.add_get_data("/ops_mread/missing").unwrap();
        rd.add_get_children("/ops_mread/k").unwrap();
        let res = rd.commit().await.unwrap();
        assert_eq!(res.len(), 4);
        match &res[0] {
            MultiReadResult::Data { data, stat } => {
                assert_eq!(data, b"top");
                assert_eq!(stat.num_children, 1);
                assert_eq!(stat, &plain_stat, "multiRead and getData agree");
            }
            other => panic!("{other:?}"),
        }
        match &res[1] {
            MultiReadResult::Children { children } => assert_eq!(children, &["k".to_string()]),
            other => panic!("{other:?}"),
        }
        match &res[2] {
            MultiReadResult::Error { err } => assert_eq!(err, &zk::Error::NoNode),
            other => panic!("{other:?}"),
        }
        match &res[3] {
            MultiReadResult::Children { children } => assert!(children.is_empty()),
            other => panic!("{other:?}"),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_returns_path() {
    common::bounded(45, async {
        let c = server().client().await;
        c.create("/ops_sync", b"", &open()).await.unwrap();
        c.sync("/ops_sync").await.unwrap();
        let mut r = server().raw();
        let rep = r.req(op::SYNC, &raw::path_body("/ops_sync"));
        assert_eq!(rep.err, 0);
        assert_eq!(rep.dec().string(), "/ops_sync");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_auth_and_whoami() {
    common::bounded(45, async {
        let c = server().client().await;
        let users = c.list_auth_users().await.unwrap();
        assert_eq!(users, vec![AuthUser::new("ip", "127.0.0.1")]);
        c.auth("digest", b"alice:secret").await.unwrap();
        let mut users = c.list_auth_users().await.unwrap();
        users.sort_by(|a, b| a.scheme().cmp(b.scheme()));
        assert_eq!(
            users,
            vec![
                AuthUser::new("digest", "alice"),
                AuthUser::new("ip", "127.0.0.1")
            ]
        );

        // auth:: ACL expands to the session's digest id
        c.create(
            "/ops_auth",
            b"",
            &CreateMode::Persistent.with_acls(Acls::creator_all()),
        )
        .await
        .unwrap();
        let (acl, _) = c.get_acl("/ops_auth").await.unwrap();
        assert_eq!(
            acl,
            vec![Acl::new(
                Permission::ALL,
                AuthId::new("digest", &common::digest_id("alice", "secret"))
            )]
        );

        // connector-level auth is applied before the first request
        let c2 = server().client_with_auth("digest", b"alice:secret").await;
        assert_eq!(c2.get_data("/ops_auth").await.unwrap().0, b"");
        let anon = server().client().await;
        assert_eq!(
            anon.get_data("/ops_auth").await.unwrap_err(),
            zk::Error::NoAuth
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_ephemerals_lists_own_session_only() {
    common::bounded(45, async {
        let c = server().client().await;
        let other = server().client().await;
        c.create("/ops_eph", b"", &open()).await.unwrap();
        c.create("/ops_eph2", b"", &open()).await.unwrap();
        c.create("/ops_eph/a", b"", &mode(CreateMode::Ephemeral))
            .await
            .unwrap();
        c.create("/ops_eph/b-", b"", &mode(CreateMode::EphemeralSequential))
            .await
            .unwrap();
        c.create("/ops_eph2/x", b"", &mode(CreateMode::Ephemeral))
            .await
            .unwrap();
        c.create("/ops_eph/persistent", b"", &open()).await.unwrap();
        other
            .create("/ops_eph/theirs", b"", &mode(CreateMode::Ephemeral))
            .await
            .unwrap();

        let mut all = c.list_ephemerals("/").await.unwrap();
        all.sort();
        assert_eq!(all, ["/ops_eph/a", "/ops_eph/b-0000000001", "/ops_eph2/x"]);
        // prefix match is on the path string
        let mut pre = c.list_ephemerals("/ops_eph").await.unwrap();
        pre.sort();
        assert_eq!(pre, ["/ops_eph/a", "/ops_eph/b-0000000001", "/ops_eph2/x"]);
        assert_eq!(
            c.list_ephemerals("/ops_eph2").await.unwrap(),
            ["/ops_eph2/x"]
        );
        assert!(c.list_ephemerals("/nothing_here").await.unwrap().is_empty());
        assert_eq!(
            other.list_ephemerals("/").await.unwrap(),
            ["/ops_eph/theirs"]
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_all_children_number_counts_descendants() {
    common::bounded(45, async {
        let c = server().client().await;
        c.create("/ops_cnt", b"", &open()).await.unwrap();
        assert_eq!(c.count_descendants_number("/ops_cnt").await.unwrap(), 0);
        for p in [
            "/ops_cnt/a",
            "/ops_cnt/b",
            "/ops_cnt/b/c",
            "/ops_cnt/b/d",
            "/ops_cnt/b/d/e",
        ] {
            c.create(p, b"", &open()).await.unwrap();
        }
        assert_eq!(c.count_descendants_number("/ops_cnt").await.unwrap(), 5);
        assert_eq!(c.count_descendants_number("/ops_cnt/b").await.unwrap(), 3);
        assert_eq!(c.count_descendants_number("/ops_cnt/a").await.unwrap(), 0);
        assert_eq!(
            c.count_descendants_number("/ops_cnt_missing")
                .await
                .unwrap_err(),
            zk::Error::NoNode
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_is_answered_with_xid_minus_2() {
    common::bounded(45, async {
        let mut r = server().raw();
        r.write_all(&raw::request_frame(raw::xid::PING, op::PING, &[]))
            .unwrap();
        let rep = r.read_reply().unwrap();
        assert_eq!((rep.xid, rep.err), (raw::xid::PING, 0));
        assert!(rep.body.is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_zxid_is_last_applied_zxid() {
    common::bounded(45, async {
        let mut r = server().raw();
        let rep = r.req(
            op::CREATE2,
            &raw::create_body("/ops_zxid", b"", &RawAcl::world_all(), 0),
        );
        let mut d = rep.dec();
        d.string();
        let created = d.stat().czxid;
        assert_eq!(rep.zxid, created);
        // a read right after sees at least that zxid in its header
        let (_, rep) = r.get_data("/ops_zxid", false);
        assert!(rep.zxid >= created);
        // errors carry the header only
        let (_, rep) = r.get_data("/ops_zxid_missing", false);
        assert_eq!(rep.err, err::NO_NODE);
        assert!(rep.body.is_empty(), "error replies have no body");
    })
    .await;
}
