//! Watches: one-shot data/exist/child watches, persistent and persistent-recursive watches,
//! removeWatches/checkWatches, and the ordering guarantees (event before any later reply that
//! reflects the change; events in zxid order), and READ filtering of events.

mod common;

use std::time::Duration;

use common::raw::{self, err, event, op, Acl as RawAcl, Conn, WatchEvent};
use common::zk::{self, AddWatchMode, EventType, WatchedEvent};
use common::{open, within, Server};

static SERVER: common::Shared = common::Shared::new();

fn server() -> &'static Server {
    common::shared(&SERVER, &[])
}

/// Watch types for removeWatches / checkWatches.
const W_CHILDREN: i32 = 1;
const W_DATA: i32 = 2;
const W_ANY: i32 = 3;
const W_PERSISTENT: i32 = 4;
const W_PERSISTENT_RECURSIVE: i32 = 5;

fn ev(event_type: i32, path: &str) -> (i32, String) {
    (event_type, path.to_string())
}
fn kinds(events: &[WatchEvent]) -> Vec<(i32, String)> {
    events
        .iter()
        .map(|e| (e.event_type, e.path.clone()))
        .collect()
}

/// Reads `path` on `c` to flush events: returns the events that preceded the reply.
///
/// `path` must be the node whose change was the last one made (largest zxid): ZooKeeper
/// guarantees that a client sees a watch event before any reply reflecting the change, and
/// events in zxid order, so every event of earlier changes precedes this read's reply.
fn barrier(c: &mut Conn, path: &str) -> Vec<WatchEvent> {
    let (events, rep) = c.exists(path, false);
    assert!(rep.err == 0 || rep.err == err::NO_NODE, "{rep:?}");
    for e in &events {
        assert_eq!(e.state, 3, "events carry state SyncConnected: {e:?}");
    }
    events
}

/// Collects the events a PersistentWatcher has buffered, stopping once none arrives for 300 ms.
async fn drain(w: &mut zk::PersistentWatcher) -> Vec<(EventType, String)> {
    let mut out = Vec::new();
    while let Ok(e) = tokio::time::timeout(Duration::from_millis(300), w.changed()).await {
        out.push((e.event_type, e.path));
    }
    out
}

fn is(e: &WatchedEvent, t: EventType, path: &str) -> bool {
    e.event_type == t && e.path == path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_watch_fires_on_change_and_delete() {
    common::bounded(45, async {
        let s = server();
        let watcher = s.client().await;
        let writer = s.client().await;
        watcher.create("/w_data", b"", &open()).await.unwrap();

        let (_, _, w) = watcher.get_and_watch_data("/w_data").await.unwrap();
        writer.set_data("/w_data", b"1", None).await.unwrap();
        let e = within(5, "NodeDataChanged", w.changed()).await;
        assert!(is(&e, EventType::NodeDataChanged, "/w_data"), "{e:?}");
        assert_eq!(e.session_state, zk::SessionState::SyncConnected);

        let (_, _, w) = watcher.get_and_watch_data("/w_data").await.unwrap();
        writer.delete("/w_data", None).await.unwrap();
        let e = within(5, "NodeDeleted", w.changed()).await;
        assert!(is(&e, EventType::NodeDeleted, "/w_data"), "{e:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exist_watch_fires_on_create_change_delete() {
    common::bounded(45, async {
        let s = server();
        let watcher = s.client().await;
        let writer = s.client().await;

        // exists on a missing node still registers a watch
        let (stat, w) = watcher.check_and_watch_stat("/w_exist").await.unwrap();
        assert!(stat.is_none());
        writer.create("/w_exist", b"", &open()).await.unwrap();
        let e = within(5, "NodeCreated", w.changed()).await;
        assert!(is(&e, EventType::NodeCreated, "/w_exist"), "{e:?}");

        let (stat, w) = watcher.check_and_watch_stat("/w_exist").await.unwrap();
        assert!(stat.is_some());
        writer.set_data("/w_exist", b"x", None).await.unwrap();
        let e = within(5, "NodeDataChanged", w.changed()).await;
        assert!(is(&e, EventType::NodeDataChanged, "/w_exist"), "{e:?}");

        let (_, w) = watcher.check_and_watch_stat("/w_exist").await.unwrap();
        writer.delete("/w_exist", None).await.unwrap();
        let e = within(5, "NodeDeleted", w.changed()).await;
        assert!(is(&e, EventType::NodeDeleted, "/w_exist"), "{e:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_watch_fires_on_child_create_delete_and_node_delete() {
    common::bounded(45, async {
        let s = server();
        let watcher = s.client().await;
        let writer = s.client().await;
        watcher.create("/w_kids", b"", &open()).await.unwrap();

        let (_, w) = watcher.list_and_watch_children("/w_kids").await.unwrap();
        writer.create("/w_kids/a", b"", &open()).await.unwrap();
        let e = within(5, "NodeChildrenChanged on create", w.changed()).await;
        assert!(is(&e, EventType::NodeChildrenChanged, "/w_kids"), "{e:?}");

        let (_, _, w) = watcher.get_and_watch_children("/w_kids").await.unwrap();
        writer.delete("/w_kids/a", None).await.unwrap();
        let e = within(5, "NodeChildrenChanged on delete", w.changed()).await;
        assert!(is(&e, EventType::NodeChildrenChanged, "/w_kids"), "{e:?}");

        let (_, w) = watcher.list_and_watch_children("/w_kids").await.unwrap();
        writer.delete("/w_kids", None).await.unwrap();
        let e = within(5, "NodeDeleted for a child watch", w.changed()).await;
        assert!(is(&e, EventType::NodeDeleted, "/w_kids"), "{e:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_triggers_are_exact() {
    common::bounded(45, async {
        // raw: which changes fire which watch, and nothing else
        let s = server();
        let mut w = s.raw();
        let mut o = s.raw();
        assert_eq!(o.create("/w_exact", b"", 0).err, 0);
        assert_eq!(o.create("/w_exact/k", b"", 0).err, 0);

        // child watch: a child's data change and the node's own data change do not fire it
        let (_, rep) = w.call(op::GET_CHILDREN, &raw::path_watch("/w_exact", true));
        assert_eq!(rep.err, 0);
        assert_eq!(o.set_data("/w_exact/k", b"x").1.err, 0);
        assert_eq!(o.set_data("/w_exact", b"x").1.err, 0);
        assert!(barrier(&mut w, "/w_exact").is_empty());
        assert_eq!(o.create("/w_exact/k2", b"", 0).err, 0);
        assert_eq!(
            kinds(&barrier(&mut w, "/w_exact/k2")),
            [ev(event::NODE_CHILDREN_CHANGED, "/w_exact")]
        );

        // data watch: child changes do not fire it
        let (_, rep) = w.get_data("/w_exact", true);
        assert_eq!(rep.err, 0);
        assert_eq!(o.create("/w_exact/k3", b"", 0).err, 0);
        assert_eq!(
            o.req(op::DELETE, &raw::delete_body("/w_exact/k3", -1)).err,
            0
        );
        assert!(barrier(&mut w, "/w_exact/k3").is_empty());
        assert_eq!(o.set_data("/w_exact", b"y").1.err, 0);
        assert_eq!(
            kinds(&barrier(&mut w, "/w_exact")),
            [ev(event::NODE_DATA_CHANGED, "/w_exact")]
        );

        // a failed operation fires nothing
        let (_, rep) = w.get_data("/w_exact", true);
        assert_eq!(rep.err, 0);
        assert_eq!(
            o.req(op::SET_DATA, &raw::set_data_body("/w_exact", b"z", 99))
                .err,
            err::BAD_VERSION
        );
        assert!(barrier(&mut w, "/w_exact").is_empty());
        // getData on a missing node fails and sets no watch
        let (_, rep) = w.get_data("/w_exact/none", true);
        assert_eq!(rep.err, err::NO_NODE);
        assert_eq!(o.create("/w_exact/none", b"", 0).err, 0);
        assert!(
            barrier(&mut w, "/w_exact/none").is_empty(),
            "getData(NONODE) must not leave a watch"
        );
        // the data watch from before still fires once
        assert_eq!(o.set_data("/w_exact", b"w").1.err, 0);
        assert_eq!(
            kinds(&barrier(&mut w, "/w_exact")),
            [ev(event::NODE_DATA_CHANGED, "/w_exact")]
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_watch_fires_at_most_once() {
    common::bounded(45, async {
        let s = server();
        let mut w = s.raw();
        let mut o = s.raw();
        assert_eq!(o.create("/w_once", b"", 0).err, 0);
        // the same watch registered twice (getData + exists) is still one watch
        assert_eq!(w.get_data("/w_once", true).1.err, 0);
        assert_eq!(w.exists("/w_once", true).1.err, 0);
        for i in 0..3 {
            assert_eq!(o.set_data("/w_once", format!("{i}").as_bytes()).1.err, 0);
        }
        assert_eq!(
            kinds(&barrier(&mut w, "/w_once")),
            [ev(event::NODE_DATA_CHANGED, "/w_once")]
        );
        assert_eq!(o.set_data("/w_once", b"again").1.err, 0);
        assert_eq!(o.req(op::DELETE, &raw::delete_body("/w_once", -1)).err, 0);
        assert!(
            barrier(&mut w, "/w_once").is_empty(),
            "a one-shot watch fired twice"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_change_event_precedes_own_reply() {
    common::bounded(45, async {
        let s = server();
        let mut c = s.raw();
        assert_eq!(c.create("/w_own", b"", 0).err, 0);
        assert_eq!(c.get_data("/w_own", true).1.err, 0);
        let (events, rep) = c.set_data("/w_own", b"new");
        assert_eq!(rep.err, 0);
        assert_eq!(
            kinds(&events),
            [ev(event::NODE_DATA_CHANGED, "/w_own")],
            "event must precede the setData reply"
        );
        assert_eq!(c.exists("/w_own/child", true).1.err, err::NO_NODE);
        let (events, rep) = c.call(
            op::CREATE,
            &raw::create_body("/w_own/child", b"", &RawAcl::world_all(), 0),
        );
        assert_eq!(rep.err, 0);
        assert_eq!(kinds(&events), [ev(event::NODE_CREATED, "/w_own/child")]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_precedes_later_reply_that_reflects_the_change() {
    common::bounded(45, async {
        let s = server();
        let mut w = s.raw();
        let mut o = s.raw();
        assert_eq!(o.create("/w_order", b"old", 0).err, 0);
        for round in 0..20 {
            assert_eq!(w.get_data("/w_order", true).1.err, 0);
            let (_, rep) = o.set_data("/w_order", format!("v{round}").as_bytes());
            assert_eq!(rep.err, 0);
            let change_zxid = rep.zxid;
            let (events, rep) = w.get_data("/w_order", false);
            assert_eq!(rep.err, 0);
            assert_eq!(
                rep.data().0.unwrap(),
                format!("v{round}").as_bytes(),
                "read after the write's reply sees it"
            );
            assert_eq!(
                kinds(&events),
                [ev(event::NODE_DATA_CHANGED, "/w_order")],
                "round {round}: event before the read reply"
            );
            if common::check_39_behaviour("notification header zxid is the event's zxid") {
                assert_eq!(events[0].zxid, change_zxid, "notification zxid");
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_in_zxid_order() {
    common::bounded(45, async {
        let s = server();
        let mut w = s.raw();
        let mut o = s.raw();
        for p in ["/w_zx", "/w_zx/a", "/w_zx/b", "/w_zx/c"] {
            assert_eq!(o.create(p, b"", 0).err, 0);
        }
        // watches registered in one order, triggered in another
        assert_eq!(w.get_data("/w_zx/a", true).1.err, 0);
        assert_eq!(w.get_data("/w_zx/b", true).1.err, 0);
        assert_eq!(w.get_data("/w_zx/c", true).1.err, 0);
        assert_eq!(
            w.call(op::GET_CHILDREN, &raw::path_watch("/w_zx", true))
                .1
                .err,
            0
        );
        assert_eq!(w.exists("/w_zx/d", true).1.err, err::NO_NODE);
        let mut zxids = Vec::new();
        zxids.push(o.set_data("/w_zx/c", b"1").1.zxid);
        zxids.push(o.set_data("/w_zx/a", b"1").1.zxid);
        let rep = o.req(
            op::CREATE,
            &raw::create_body("/w_zx/d", b"", &RawAcl::world_all(), 0),
        );
        zxids.push(rep.zxid); // fires NodeCreated /w_zx/d and NodeChildrenChanged /w_zx
        zxids.push(o.req(op::DELETE, &raw::delete_body("/w_zx/b", -1)).zxid);
        let events = barrier(&mut w, "/w_zx/b");
        let got = kinds(&events);
        assert_eq!(got.len(), 5, "{got:?}");
        assert_eq!(got[0], ev(event::NODE_DATA_CHANGED, "/w_zx/c"));
        assert_eq!(got[1], ev(event::NODE_DATA_CHANGED, "/w_zx/a"));
        // the two events of the create share a zxid; their relative order is not specified
        let mut mid = vec![got[2].clone(), got[3].clone()];
        mid.sort();
        assert_eq!(
            mid,
            [
                ev(event::NODE_CREATED, "/w_zx/d"),
                ev(event::NODE_CHILDREN_CHANGED, "/w_zx")
            ]
        );
        assert_eq!(got[4], ev(event::NODE_DELETED, "/w_zx/b"));
        if common::check_39_behaviour("notification header zxid is the event's zxid") {
            let z: Vec<i64> = events.iter().map(|e| e.zxid).collect();
            assert_eq!(z, [zxids[0], zxids[1], zxids[2], zxids[2], zxids[3]]);
        } else {
            // ZooKeeper 3.8 sends -1 in the notification header
            assert!(events.iter().all(|e| e.zxid == -1));
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_watch_stays_and_covers_node_and_children() {
    common::bounded(45, async {
        let s = server();
        let watcher = s.client().await;
        let writer = s.client().await;
        let mut pw = watcher
            .watch("/w_pers", AddWatchMode::Persistent)
            .await
            .unwrap();
        writer.create("/w_pers", b"", &open()).await.unwrap();
        writer.set_data("/w_pers", b"1", None).await.unwrap();
        writer.set_data("/w_pers", b"2", None).await.unwrap();
        writer.create("/w_pers/k", b"", &open()).await.unwrap();
        writer.set_data("/w_pers/k", b"x", None).await.unwrap(); // not watched: a child's data
        writer.create("/w_pers/k/g", b"", &open()).await.unwrap(); // not watched: a grandchild
        writer.delete("/w_pers/k/g", None).await.unwrap();
        writer.delete("/w_pers/k", None).await.unwrap();
        writer.delete("/w_pers", None).await.unwrap();
        writer.create("/w_pers", b"", &open()).await.unwrap();
        watcher.check_stat("/w_pers").await.unwrap(); // reflects the last change
        let got = drain(&mut pw).await;
        let p = "/w_pers".to_string();
        assert_eq!(
            got,
            [
                (EventType::NodeCreated, p.clone()),
                (EventType::NodeDataChanged, p.clone()),
                (EventType::NodeDataChanged, p.clone()),
                (EventType::NodeChildrenChanged, p.clone()),
                (EventType::NodeChildrenChanged, p.clone()),
                (EventType::NodeDeleted, p.clone()),
                (EventType::NodeCreated, p.clone()),
            ]
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_recursive_watch_covers_subtree_without_child_events() {
    common::bounded(45, async {
        let s = server();
        let mut w = s.raw();
        let mut o = s.raw();
        assert_eq!(
            w.req(op::ADD_WATCH, &raw::add_watch_body("/w_rec", 1)).err,
            0
        );
        // a sibling with a common name prefix is not in the subtree
        assert_eq!(o.create("/w_recx", b"", 0).err, 0);
        assert_eq!(o.set_data("/w_recx", b"1").1.err, 0);
        for p in ["/w_rec", "/w_rec/a", "/w_rec/a/b"] {
            assert_eq!(o.create(p, b"", 0).err, 0);
        }
        assert_eq!(o.set_data("/w_rec/a/b", b"1").1.err, 0);
        assert_eq!(o.set_data("/w_rec", b"1").1.err, 0);
        assert_eq!(
            o.req(op::DELETE, &raw::delete_body("/w_rec/a/b", -1)).err,
            0
        );
        let events = barrier(&mut w, "/w_rec/a/b");
        assert!(
            events
                .iter()
                .all(|e| e.event_type != event::NODE_CHILDREN_CHANGED),
            "recursive watch sent NodeChildrenChanged: {events:?}"
        );
        assert_eq!(
            kinds(&events),
            [
                ev(event::NODE_CREATED, "/w_rec"),
                ev(event::NODE_CREATED, "/w_rec/a"),
                ev(event::NODE_CREATED, "/w_rec/a/b"),
                ev(event::NODE_DATA_CHANGED, "/w_rec/a/b"),
                ev(event::NODE_DATA_CHANGED, "/w_rec"),
                ev(event::NODE_DELETED, "/w_rec/a/b"),
            ]
        );
        // still active afterwards
        assert_eq!(o.create("/w_rec/a/c", b"", 0).err, 0);
        assert_eq!(
            kinds(&barrier(&mut w, "/w_rec/a/c")),
            [ev(event::NODE_CREATED, "/w_rec/a/c")]
        );

        // the same through zookeeper-client
        let watcher = s.client().await;
        let mut rw = watcher
            .watch("/w_rec2", AddWatchMode::PersistentRecursive)
            .await
            .unwrap();
        let writer = s.client().await;
        writer.create("/w_rec2", b"", &open()).await.unwrap();
        writer.create("/w_rec2/x", b"", &open()).await.unwrap();
        writer.delete("/w_rec2/x", None).await.unwrap();
        watcher.check_stat("/w_rec2/x").await.unwrap(); // reflects the last change
        let got = drain(&mut rw).await;
        assert_eq!(
            got,
            [
                (EventType::NodeCreated, "/w_rec2".to_string()),
                (EventType::NodeCreated, "/w_rec2/x".to_string()),
                (EventType::NodeDeleted, "/w_rec2/x".to_string()),
            ]
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_and_check_watches() {
    common::bounded(45, async {
        let s = server();
        let mut w = s.raw();
        let mut o = s.raw();
        assert_eq!(o.create("/w_rm", b"", 0).err, 0);

        // nothing registered yet
        assert_eq!(
            w.req(op::CHECK_WATCHES, &raw::path_type("/w_rm", W_DATA))
                .err,
            err::NO_WATCHER
        );
        assert_eq!(
            w.req(op::REMOVE_WATCHES, &raw::path_type("/w_rm", W_ANY))
                .err,
            err::NO_WATCHER
        );
        assert_eq!(
            w.req(op::CHECK_WATCHES, &raw::path_type("/w_rm_missing", W_ANY))
                .err,
            err::NO_WATCHER
        );

        // a data watch
        assert_eq!(w.get_data("/w_rm", true).1.err, 0);
        assert_eq!(
            w.req(op::CHECK_WATCHES, &raw::path_type("/w_rm", W_DATA))
                .err,
            0
        );
        assert_eq!(
            w.req(op::CHECK_WATCHES, &raw::path_type("/w_rm", W_ANY))
                .err,
            0
        );
        assert_eq!(
            w.req(op::CHECK_WATCHES, &raw::path_type("/w_rm", W_CHILDREN))
                .err,
            err::NO_WATCHER
        );
        // another session's watches are not ours (3.8.0 checks only that *some* session watches the
        // path: its WatchManager.containsWatcher ignores the watcher)
        if common::check_39_behaviour("checkWatches only sees the session's own watches") {
            let rep = o.req(op::CHECK_WATCHES, &raw::path_type("/w_rm", W_DATA));
            assert_eq!(rep.err, err::NO_WATCHER);
        }
        let rep = w.req(op::REMOVE_WATCHES, &raw::path_type("/w_rm", W_DATA));
        assert_eq!(rep.err, 0);
        assert!(rep.body.is_empty());
        assert_eq!(
            w.req(op::CHECK_WATCHES, &raw::path_type("/w_rm", W_DATA))
                .err,
            err::NO_WATCHER
        );
        assert_eq!(o.set_data("/w_rm", b"1").1.err, 0);
        assert!(barrier(&mut w, "/w_rm").is_empty(), "removed watch fired");

        // a child watch, removed with Any
        assert_eq!(
            w.call(op::GET_CHILDREN, &raw::path_watch("/w_rm", true))
                .1
                .err,
            0
        );
        assert_eq!(
            w.req(op::CHECK_WATCHES, &raw::path_type("/w_rm", W_CHILDREN))
                .err,
            0
        );
        assert_eq!(
            w.req(op::CHECK_WATCHES, &raw::path_type("/w_rm", W_DATA))
                .err,
            err::NO_WATCHER
        );
        assert_eq!(
            w.req(op::REMOVE_WATCHES, &raw::path_type("/w_rm", W_ANY))
                .err,
            0
        );
        assert_eq!(o.create("/w_rm/k", b"", 0).err, 0);
        assert!(
            barrier(&mut w, "/w_rm").is_empty(),
            "removed child watch fired"
        );

        // an exist watch on a missing node counts as a data watch
        assert_eq!(w.exists("/w_rm/later", true).1.err, err::NO_NODE);
        assert_eq!(
            w.req(op::CHECK_WATCHES, &raw::path_type("/w_rm/later", W_DATA))
                .err,
            0
        );
        assert_eq!(
            w.req(op::REMOVE_WATCHES, &raw::path_type("/w_rm/later", W_DATA))
                .err,
            0
        );
        assert_eq!(o.create("/w_rm/later", b"", 0).err, 0);
        assert!(barrier(&mut w, "/w_rm/later").is_empty());

        // a fired watch is gone
        assert_eq!(w.get_data("/w_rm", true).1.err, 0);
        assert_eq!(o.set_data("/w_rm", b"2").1.err, 0);
        assert_eq!(barrier(&mut w, "/w_rm").len(), 1);
        assert_eq!(
            w.req(op::CHECK_WATCHES, &raw::path_type("/w_rm", W_DATA))
                .err,
            err::NO_WATCHER
        );

        // persistent watches: Any removes them (3.8 and 3.9)
        assert_eq!(
            w.req(op::ADD_WATCH, &raw::add_watch_body("/w_rm", 0)).err,
            0
        );
        assert_eq!(
            w.req(op::CHECK_WATCHES, &raw::path_type("/w_rm", W_ANY))
                .err,
            0
        );
        assert_eq!(
            w.req(op::REMOVE_WATCHES, &raw::path_type("/w_rm", W_ANY))
                .err,
            0
        );
        assert_eq!(o.set_data("/w_rm", b"3").1.err, 0);
        assert!(
            barrier(&mut w, "/w_rm").is_empty(),
            "removed persistent watch fired"
        );

        if common::check_39_behaviour(
            "removeWatches/checkWatches types Persistent(4) and PersistentRecursive(5)",
        ) {
            assert_eq!(
                w.req(op::ADD_WATCH, &raw::add_watch_body("/w_rm", 0)).err,
                0
            );
            assert_eq!(
                w.req(op::CHECK_WATCHES, &raw::path_type("/w_rm", W_PERSISTENT))
                    .err,
                0
            );
            assert_eq!(
                w.req(
                    op::CHECK_WATCHES,
                    &raw::path_type("/w_rm", W_PERSISTENT_RECURSIVE)
                )
                .err,
                err::NO_WATCHER
            );
            assert_eq!(
                w.req(op::CHECK_WATCHES, &raw::path_type("/w_rm", W_DATA))
                    .err,
                err::NO_WATCHER,
                "a persistent watch is not a Data watch"
            );
            assert_eq!(
                w.req(op::REMOVE_WATCHES, &raw::path_type("/w_rm", W_PERSISTENT))
                    .err,
                0
            );
            assert_eq!(
                w.req(op::CHECK_WATCHES, &raw::path_type("/w_rm", W_PERSISTENT))
                    .err,
                err::NO_WATCHER
            );
            assert_eq!(
                w.req(op::ADD_WATCH, &raw::add_watch_body("/w_rm", 1)).err,
                0
            );
            assert_eq!(
                w.req(
                    op::CHECK_WATCHES,
                    &raw::path_type("/w_rm", W_PERSISTENT_RECURSIVE)
                )
                .err,
                0
            );
            assert_eq!(
                w.req(
                    op::REMOVE_WATCHES,
                    &raw::path_type("/w_rm", W_PERSISTENT_RECURSIVE)
                )
                .err,
                0
            );
            assert_eq!(o.set_data("/w_rm", b"4").1.err, 0);
            assert!(barrier(&mut w, "/w_rm").is_empty());
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_only_for_readable_nodes() {
    common::bounded(45, async {
        let s = server();
        let secret = common::digest_id("owner", "pw");
        let mut o = s.raw();
        assert_eq!(o.add_auth("digest", b"owner:pw"), 0);
        assert_eq!(o.create("/w_acl", b"", 0).err, 0);
        let mut w = s.raw(); // unauthenticated: may not READ /w_acl/secret
        assert_eq!(
            w.req(op::ADD_WATCH, &raw::add_watch_body("/w_acl", 1)).err,
            0
        );

        let acl = [RawAcl::new(raw::perms::ALL, "digest", &secret)];
        assert_eq!(
            o.req(op::CREATE, &raw::create_body("/w_acl/secret", b"", &acl, 0))
                .err,
            0
        );
        assert_eq!(o.set_data("/w_acl/secret", b"s").1.err, 0);
        assert_eq!(o.create("/w_acl/public", b"", 0).err, 0);
        assert_eq!(
            o.req(op::DELETE, &raw::delete_body("/w_acl/secret", -1))
                .err,
            0
        );
        let events = barrier(&mut w, "/w_acl/secret");
        let got = kinds(&events);
        assert!(
            got.contains(&ev(event::NODE_CREATED, "/w_acl/public")),
            "{got:?}"
        );
        if common::check_39_behaviour("events are filtered by READ permission (CVE-2024-23944 fix)")
        {
            assert_eq!(
                got,
                [ev(event::NODE_CREATED, "/w_acl/public")],
                "events leaked for an unreadable node"
            );
        }
    })
    .await;
}

/// setWatches (xid -8), as clients send it on reconnect: watches whose condition already changed
/// since `relativeZxid` fire at once (before the reply), the others are registered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_watches_on_reconnect() {
    common::bounded(45, async {
        let s = server();
        let mut o = s.raw();
        for p in ["/w_sw", "/w_sw/d", "/w_sw/c", "/w_sw/gone", "/w_sw/same"] {
            assert_eq!(o.create(p, b"", 0).err, 0);
        }
        let rel = o.exists("/w_sw", false).1.zxid;
        assert_eq!(o.set_data("/w_sw/d", b"1").1.err, 0);
        assert_eq!(o.create("/w_sw/c/k", b"", 0).err, 0);
        assert_eq!(o.create("/w_sw/y", b"", 0).err, 0);
        let rep = o.req(op::DELETE, &raw::delete_body("/w_sw/gone", -1));
        assert_eq!(rep.err, 0);

        let mut w = s.raw();
        let body = raw::Enc::new()
            .long(rel)
            .strings(&["/w_sw/d", "/w_sw/gone", "/w_sw/same"])
            .strings(&["/w_sw/y", "/w_sw/nothere"])
            .strings(&["/w_sw/c", "/w_sw/same"])
            .bytes();
        let f = raw::request_frame(raw::xid::SET_WATCHES, op::SET_WATCHES, &body);
        w.write_all(&f).unwrap();
        let (events, rep) = w.read_until(raw::xid::SET_WATCHES);
        assert_eq!(rep.err, 0);
        let mut got = kinds(&events);
        got.sort();
        assert_eq!(
            got,
            [
                ev(event::NODE_CREATED, "/w_sw/y"),
                ev(event::NODE_DELETED, "/w_sw/gone"),
                ev(event::NODE_DATA_CHANGED, "/w_sw/d"),
                ev(event::NODE_CHILDREN_CHANGED, "/w_sw/c"),
            ]
        );
        // the unchanged ones were registered
        assert_eq!(o.set_data("/w_sw/same", b"x").1.err, 0);
        assert_eq!(o.create("/w_sw/nothere", b"", 0).err, 0);
        assert_eq!(o.create("/w_sw/same/k", b"", 0).err, 0);
        let mut got = kinds(&barrier(&mut w, "/w_sw/same/k"));
        got.sort();
        assert_eq!(
            got,
            [
                ev(event::NODE_CREATED, "/w_sw/nothere"),
                ev(event::NODE_DATA_CHANGED, "/w_sw/same"),
                ev(event::NODE_CHILDREN_CHANGED, "/w_sw/same"),
            ]
        );
        // the fired ones were not
        assert_eq!(o.set_data("/w_sw/d", b"2").1.err, 0);
        assert_eq!(o.create("/w_sw/c/k2", b"", 0).err, 0);
        assert!(barrier(&mut w, "/w_sw/c/k2").is_empty());
    })
    .await;
}

/// addWatch is answered with ZooKeeper's `ErrorResponse` body (one int, 0): a
/// 20-byte payload. The Java client deserializes that body and, without it,
/// drops the connection at end of stream (Curator's CuratorCache then loops).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_watch_reply_carries_an_error_response_body() {
    common::bounded(30, async {
        let s = server();
        let mut w = s.raw();
        for mode in [0, 1] {
            let reply = w.req(op::ADD_WATCH, &raw::add_watch_body("/w_body", mode));
            assert_eq!(reply.err, 0);
            assert_eq!(
                reply.body,
                vec![0, 0, 0, 0],
                "mode {mode}: ErrorResponse(0)"
            );
        }
    })
    .await;
}
