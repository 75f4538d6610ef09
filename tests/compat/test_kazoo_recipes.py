"""kazoo (the Python ZooKeeper client) and its recipes against the COMPAT_TARGET server.

Every wait below is a bounded poll on a condition (wait_until) or a join/Event wait with
a deadline; nothing relies on a bare sleep for synchronisation.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
from kazoo.exceptions import (
    BadVersionError,
    NoAuthError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
    RuntimeInconsistency,
)
from kazoo.protocol.states import EventType, ZnodeStat
from kazoo.security import ACL, Id, make_digest_acl, make_digest_acl_credential

DEADLINE = 15.0

# COMPAT_TARGET=*-ensemble: the client may land on any member.
ENSEMBLE = os.environ.get("COMPAT_TARGET", "").endswith("-ensemble")
ENSEMBLE_MODES = ("leader", "follower", "observer")


def wait_until(predicate, timeout=DEADLINE, message="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(0.02)


class Worker(threading.Thread):
    """A thread that keeps the target's result or exception for the test to check."""

    def __init__(self, target, *args):
        super().__init__(daemon=True)
        self._target_fn, self._args = target, args
        self.result, self.error = None, None

    def run(self):
        try:
            self.result = self._target_fn(*self._args)
        except BaseException as e:  # reported by finish()
            self.error = e

    def finish(self, timeout=DEADLINE):
        self.join(timeout)
        assert not self.is_alive(), f"worker {self._target_fn} still running after {timeout}s"
        if self.error is not None:
            raise self.error
        return self.result


def session_id(client) -> int:
    return client.client_id[0]


# --------------------------------------------------------------------------------------
# Locks, semaphores, elections
# --------------------------------------------------------------------------------------


def test_lock_contention(make_client, base_path):
    c1, c2 = make_client(), make_client()
    path = base_path + "/lock"
    lock1, lock2 = c1.Lock(path, "one"), c2.Lock(path, "two")

    assert lock1.acquire(timeout=DEADLINE)
    assert lock1.is_acquired
    assert lock2.acquire(blocking=False) is False
    assert not lock2.is_acquired

    waiter = Worker(lock2.acquire, True, DEADLINE)
    waiter.start()
    wait_until(lambda: lock1.contenders() == ["one", "two"], message="two contenders")
    assert waiter.is_alive(), "second client acquired a held lock"

    lock1.release()
    assert waiter.finish() is True
    assert lock2.is_acquired
    assert lock1.contenders() == ["two"]
    lock2.release()
    assert c1.get_children(path) == []


def test_lock_node_removed_when_session_closes(make_client, base_path):
    c1, c2 = make_client(), make_client()
    path = base_path + "/lock"
    assert c1.Lock(path, "holder").acquire(timeout=DEADLINE)

    c2.sync(path)  # another client's write (an ensemble member may lag until a sync)
    (node,) = c2.get_children(path)
    assert "__lock__" in node
    data, stat = c2.get(f"{path}/{node}")
    assert data == b"holder"
    assert stat.ephemeralOwner == session_id(c1)

    c1.stop()
    wait_until(lambda: c2.get_children(path) == [], message="lock node of the closed session to go")
    lock2 = c2.Lock(path, "next")
    assert lock2.acquire(blocking=False) is True
    lock2.release()


def test_semaphore(make_client, base_path):
    clients = [make_client() for _ in range(3)]
    path = base_path + "/sem"
    sems = [c.Semaphore(path, identifier=f"c{i}", max_leases=2) for i, c in enumerate(clients)]
    assert sems[0].acquire(timeout=DEADLINE)
    assert sems[1].acquire(timeout=DEADLINE)
    assert sems[2].acquire(blocking=False) is False
    assert sorted(sems[2].lease_holders()) == ["c0", "c1"]
    sems[0].release()
    assert sems[2].acquire(timeout=DEADLINE)
    assert sorted(sems[1].lease_holders()) == ["c1", "c2"]
    sems[1].release()
    sems[2].release()


def test_read_write_lock(make_client, base_path):
    c1, c2, c3 = make_client(), make_client(), make_client()
    path = base_path + "/rw"
    r1, r2, w = c1.ReadLock(path, "r1"), c2.ReadLock(path, "r2"), c3.WriteLock(path, "w")
    assert r1.acquire(timeout=DEADLINE)
    assert r2.acquire(timeout=DEADLINE), "two readers must share the lock"
    assert w.acquire(blocking=False) is False
    writer = Worker(w.acquire, True, DEADLINE)
    writer.start()
    wait_until(lambda: len(c1.get_children(path)) == 3, message="the writer queued behind r1, r2")
    r1.release()
    wait_until(lambda: len(c1.get_children(path)) == 2, message="r1's node gone")
    assert writer.is_alive()
    assert not w.is_acquired, "the writer got the lock while r2 held it"
    r2.release()
    assert writer.finish() is True
    assert c1.ReadLock(path, "r3").acquire(blocking=False) is False
    w.release()


def test_election_leader_then_successor(make_client, base_path):
    c1, c2 = make_client(), make_client()
    path = base_path + "/election"
    elected = []
    step_down = {"one": threading.Event(), "two": threading.Event()}

    def lead(name):
        elected.append(name)
        step_down[name].wait(DEADLINE * 2)

    e1, e2 = c1.Election(path, "one"), c2.Election(path, "two")
    t1 = Worker(e1.run, lead, "one")
    t1.start()
    wait_until(lambda: elected == ["one"], message="first candidate to lead")
    t2 = Worker(e2.run, lead, "two")
    t2.start()
    wait_until(lambda: e1.contenders() == ["one", "two"], message="both contenders")
    assert elected == ["one"]

    step_down["one"].set()
    t1.finish()
    wait_until(lambda: elected == ["one", "two"], message="second candidate to take over")
    assert e2.contenders() == ["two"]
    step_down["two"].set()
    t2.finish()
    assert e1.contenders() == []


def test_election_successor_when_leader_session_closes(make_client, base_path):
    c1, c2 = make_client(), make_client()
    path = base_path + "/election"
    elected = threading.Event()
    release = threading.Event()

    def lead_forever():
        elected.set()
        release.wait(DEADLINE * 2)

    t1 = Worker(c1.Election(path, "one").run, lead_forever)
    t1.start()
    assert elected.wait(DEADLINE)

    took_over = threading.Event()
    e2 = c2.Election(path, "two")
    t2 = Worker(e2.run, took_over.set)
    t2.start()
    wait_until(lambda: e2.contenders() == ["one", "two"], message="both contenders")
    c1.stop()  # the leader's session goes away: its ephemeral lock node is deleted
    assert took_over.wait(DEADLINE), "second candidate did not take over"
    t2.finish()
    release.set()
    t1.join(DEADLINE)


def test_party(make_client, base_path):
    c1, c2 = make_client(), make_client()
    path = base_path + "/party"
    p1, p2 = c1.Party(path, "alpha"), c2.Party(path, "beta")
    p1.join()
    p2.join()
    assert sorted(p1) == ["alpha", "beta"]
    assert len(p2) == 2
    c2.stop()
    wait_until(lambda: list(p1) == ["alpha"], message="member of a closed session to leave")
    p1.leave()
    assert len(p1) == 0


# --------------------------------------------------------------------------------------
# Counter, queues, barriers
# --------------------------------------------------------------------------------------


def test_counter_concurrent_increments(make_client, base_path):
    c1, c2 = make_client(), make_client()
    path = base_path + "/counter"
    per_client = 40

    def bump(client):
        counter = client.Counter(path)
        for _ in range(per_client):
            counter += 1

    workers = [Worker(bump, c) for c in (c1, c2)]
    for w in workers:
        w.start()
    for w in workers:
        w.finish(60)
    counter = c1.Counter(path)
    assert counter.value == 2 * per_client
    counter -= 5
    c2.sync(path)
    assert c2.Counter(path).value == 2 * per_client - 5
    data, stat = c2.get(path)
    assert data == str(2 * per_client - 5).encode()
    assert stat.version >= 2 * per_client + 1


def test_queue_order_and_priorities(make_client, base_path):
    c1, c2 = make_client(), make_client()
    path = base_path + "/queue"
    producer = c1.Queue(path)
    producer.put(b"one")
    producer.put(b"two")
    producer.put(b"urgent", priority=1)
    producer.put(b"three")
    producer.put(b"later", priority=500)
    assert len(producer) == 5
    consumer = c2.Queue(path)
    got = [consumer.get() for _ in range(5)]
    assert got == [b"urgent", b"one", b"two", b"three", b"later"]
    assert consumer.get() is None
    assert len(producer) == 0


def test_locking_queue(make_client, base_path):
    c1, c2 = make_client(), make_client()
    path = base_path + "/lqueue"
    q1, q2 = c1.LockingQueue(path), c2.LockingQueue(path)
    q1.put(b"a", priority=50)
    q1.put_all([b"b", b"c"], priority=10)
    assert len(q2) == 3

    assert q2.get(timeout=DEADLINE) == b"b"
    assert q2.holds_lock()
    assert q1.get(timeout=DEADLINE) == b"c", "a locked entry must be skipped"
    assert q1.release()
    assert q2.consume()
    assert len(q1) == 2

    assert q2.get(timeout=DEADLINE) == b"c"
    assert q2.consume()
    # An entry locked by a session that closes becomes available again.
    assert q1.get(timeout=DEADLINE) == b"a"
    c1.stop()
    assert q2.get(timeout=DEADLINE) == b"a"
    assert q2.consume()
    assert len(q2) == 0
    assert q2.get(timeout=0.3) is None


def test_barrier(make_client, base_path):
    c1, c2 = make_client(), make_client()
    path = base_path + "/barrier"
    b1, b2 = c1.Barrier(path), c2.Barrier(path)
    assert b2.wait(timeout=0.2) is True, "no barrier node: wait returns at once"
    b1.create()
    assert b2.wait(timeout=0.3) is False
    waiter = Worker(b2.wait, DEADLINE)
    waiter.start()
    b1.remove()
    assert waiter.finish() is True


def test_double_barrier(make_client, base_path):
    c1, c2 = make_client(), make_client()
    path = base_path + "/dbarrier"
    entered = {"one": threading.Event(), "two": threading.Event()}
    go_leave = threading.Event()

    def participant(client, name):
        barrier = client.DoubleBarrier(path, 2, identifier=name)
        barrier.enter()
        entered[name].set()
        assert go_leave.wait(DEADLINE)
        barrier.leave()
        return name

    w1 = Worker(participant, c1, "one")
    w1.start()
    wait_until(
        lambda: [n for n in (c2.get_children(path) if c2.exists(path) else []) if n != "ready"],
        message="participant one waiting in the barrier",
    )
    assert not entered["one"].wait(0.5), "entered a double barrier alone"
    w2 = Worker(participant, c2, "two")
    w2.start()
    assert entered["one"].wait(DEADLINE) and entered["two"].wait(DEADLINE)
    go_leave.set()
    assert w1.finish() == "one"
    assert w2.finish() == "two"
    assert c1.get_children(path) == []


# --------------------------------------------------------------------------------------
# Watches
# --------------------------------------------------------------------------------------


def test_data_watch_sees_every_update_in_order(make_client, base_path):
    watcher_client, writer = make_client(), make_client()
    path = base_path + "/watched"
    seen = []

    @watcher_client.DataWatch(path)
    def record(data, stat):
        seen.append((data, stat.version if stat else None))

    wait_until(lambda: seen == [(None, None)], message="initial call for a missing node")
    writer.create(path, b"v0")
    wait_until(lambda: seen[-1] == (b"v0", 0), message="creation")
    for i in range(1, 6):
        writer.set(path, f"v{i}".encode())
        wait_until(lambda: seen[-1] == (f"v{i}".encode(), i), message=f"update v{i}")
    writer.delete(path)
    wait_until(lambda: seen[-1] == (None, None), message="deletion")
    expected = [(None, None), (b"v0", 0)] + [(f"v{i}".encode(), i) for i in range(1, 6)]
    assert seen == expected + [(None, None)]


def test_data_watch_burst_is_monotonic(make_client, base_path):
    watcher_client, writer = make_client(), make_client()
    path = base_path + "/burst"
    writer.create(path, b"0")
    # Another client's write: on an ensemble member it is visible after a sync.
    watcher_client.sync(path)
    versions = []
    watcher_client.DataWatch(path, lambda data, stat: versions.append(stat.version))
    for i in range(1, 31):
        writer.set(path, str(i).encode())
    wait_until(lambda: versions and versions[-1] == 30, message="last version")
    assert versions == sorted(set(versions)), f"versions out of order: {versions}"


def test_children_watch_in_order(make_client, base_path):
    watcher_client, writer = make_client(), make_client()
    path = base_path + "/kids"
    writer.create(path)
    watcher_client.sync(path)
    seen = []
    watcher_client.ChildrenWatch(path, lambda children: seen.append(sorted(children)))
    wait_until(lambda: seen == [[]], message="initial children")
    expected = [[]]
    names = []
    for name in ("a", "b", "c"):
        writer.create(f"{path}/{name}")
        names.append(name)
        expected.append(list(names))
        wait_until(lambda: seen[-1] == names, message=f"child {name}")
    writer.delete(f"{path}/b")
    expected.append(["a", "c"])
    wait_until(lambda: seen[-1] == ["a", "c"], message="child removal")
    assert seen == expected


def test_one_shot_watch_events(make_client, base_path):
    watcher_client, writer = make_client(), make_client()
    path = base_path + "/node"
    events = []
    lock = threading.Lock()

    def on_event(event):
        with lock:
            events.append((event.type, event.path))

    assert watcher_client.exists(path, watch=on_event) is None
    writer.create(path, b"x")
    wait_until(lambda: events == [(EventType.CREATED, path)], message="NodeCreated")

    watcher_client.get(path, watch=on_event)
    watcher_client.get_children(base_path, watch=on_event)
    writer.set(path, b"y")
    writer.set(path, b"z")  # one-shot: no second event
    writer.create(path + "_sibling")
    wait_until(lambda: len(events) == 3, message="NodeDataChanged and NodeChildrenChanged")
    assert events[1:] == [(EventType.CHANGED, path), (EventType.CHILD, base_path)]

    watcher_client.exists(path, watch=on_event)
    writer.delete(path)
    wait_until(lambda: len(events) == 4, message="NodeDeleted")
    assert events[3] == (EventType.DELETED, path)
    # Nothing else may arrive for the consumed one-shot watches: a round trip on the
    # watcher's connection flushes everything the server sent before it.
    watcher_client.sync(base_path)
    assert len(events) == 4


# --------------------------------------------------------------------------------------
# Plain operations
# --------------------------------------------------------------------------------------


def test_transaction_commit(client, base_path):
    client.create(base_path + "/old", b"old")
    tx = client.transaction()
    tx.create(base_path + "/new", b"fresh")
    tx.set_data(base_path + "/old", b"updated", version=0)
    tx.check(base_path + "/old", 1)
    tx.create(base_path + "/seq-", b"", sequence=True)
    tx.delete(base_path + "/new")
    results = tx.commit()
    assert results[0] == base_path + "/new"
    assert isinstance(results[1], ZnodeStat) and results[1].version == 1
    assert results[2] is True
    assert results[3] == base_path + "/seq-0000000002"
    assert results[4] is True
    assert client.get(base_path + "/old")[0] == b"updated"
    assert client.exists(base_path + "/new") is None
    assert sorted(client.get_children(base_path)) == ["old", "seq-0000000002"]


def test_transaction_atomic_failure(client, base_path):
    client.create(base_path + "/keep", b"original")
    before = client.get(base_path)[1]
    tx = client.transaction()
    tx.create(base_path + "/would-be-created", b"x")
    tx.set_data(base_path + "/keep", b"changed")
    tx.set_data(base_path + "/keep", b"changed-again", version=7)  # wrong version
    tx.delete(base_path + "/keep")
    results = tx.commit()
    assert [type(r) for r in results] == [
        RolledBackError,
        RolledBackError,
        BadVersionError,
        RuntimeInconsistency,
    ]
    assert client.exists(base_path + "/would-be-created") is None
    data, stat = client.get(base_path + "/keep")
    assert (data, stat.version) == (b"original", 0)
    after = client.get(base_path)[1]
    assert (after.cversion, after.numChildren) == (before.cversion, before.numChildren)

    tx = client.transaction()
    tx.check(base_path + "/missing", 0)
    tx.create(base_path + "/x")
    assert [type(r) for r in tx.commit()] == [NoNodeError, RuntimeInconsistency]
    assert client.exists(base_path + "/x") is None


def test_ephemeral_and_sequential_nodes(make_client, base_path):
    owner, observer = make_client(), make_client()
    parent = base_path + "/p"
    owner.create(parent)
    names = [owner.create(parent + "/job-", b"", sequence=True) for _ in range(3)]
    assert names == [f"{parent}/job-{i:010d}" for i in range(3)]
    eph = owner.create(parent + "/eph", b"e", ephemeral=True)
    eseq = owner.create(parent + "/eseq-", b"", ephemeral=True, sequence=True)
    assert eseq == f"{parent}/eseq-{4:010d}"
    observer.sync(parent)
    assert observer.exists(eph).ephemeralOwner == session_id(owner)
    assert observer.exists(eseq).ephemeralOwner == session_id(owner)
    assert observer.exists(names[0]).ephemeralOwner == 0
    with pytest.raises(NoChildrenForEphemeralsError):
        owner.create(eph + "/child")
    path, stat = owner.create(parent + "/with-stat", b"abc", include_data=True)
    assert path == parent + "/with-stat"
    assert (stat.version, stat.dataLength, stat.numChildren) == (0, 3, 0)

    owner.stop()
    wait_until(lambda: observer.exists(eph) is None, message="ephemeral to vanish")
    assert observer.exists(eseq) is None
    assert sorted(observer.get_children(parent)) == [n.rsplit("/", 1)[1] for n in names] + [
        "with-stat"
    ]
    stat = observer.exists(parent)
    # cversion counts child creations *and* deletions (6 creates + 2 ephemerals gone).
    assert (stat.cversion, stat.numChildren) == (8, 4)


def test_ensure_path_and_recursive_delete(client, base_path):
    deep = base_path + "/a/b/c/d"
    client.ensure_path(deep)
    assert client.exists(deep) is not None
    client.ensure_path(deep)  # idempotent
    client.create(base_path + "/a/b/sibling", b"s")
    client.create(base_path + "/a/x", b"x")
    with pytest.raises(NotEmptyError):
        client.delete(base_path + "/a")
    client.delete(base_path + "/a", recursive=True)
    assert client.exists(base_path + "/a") is None
    assert client.get_children(base_path) == []
    client.create(base_path + "/made/by/makepath", b"m", makepath=True)
    assert client.get(base_path + "/made/by/makepath")[0] == b"m"


def test_get_set_with_versions(client, base_path):
    path = base_path + "/v"
    client.create(path, b"first")
    data, stat = client.get(path)
    assert (data, stat.version, stat.dataLength) == (b"first", 0, 5)
    stat = client.set(path, b"second", version=0)
    assert stat.version == 1
    with pytest.raises(BadVersionError):
        client.set(path, b"third", version=0)
    stat = client.set(path, b"", version=-1)
    assert (stat.version, stat.dataLength) == (2, 0)
    assert client.get(path)[0] == b""
    with pytest.raises(BadVersionError):
        client.delete(path, version=1)
    client.delete(path, version=2)
    assert client.exists(path) is None
    client.create(path, b"x" * 100_000)
    assert client.get(path)[0] == b"x" * 100_000


def test_error_codes(client, base_path):
    with pytest.raises(NoNodeError):
        client.get(base_path + "/missing")
    with pytest.raises(NoNodeError):
        client.set(base_path + "/missing", b"")
    with pytest.raises(NoNodeError):
        client.delete(base_path + "/missing")
    with pytest.raises(NoNodeError):
        client.get_children(base_path + "/missing")
    with pytest.raises(NoNodeError):
        client.create(base_path + "/missing/child")
    client.create(base_path + "/dup")
    with pytest.raises(NodeExistsError):
        client.create(base_path + "/dup")
    client.create(base_path + "/dup/kid")
    with pytest.raises(NotEmptyError):
        client.delete(base_path + "/dup")
    assert client.exists(base_path + "/missing") is None


def test_children_with_stat(client, base_path):
    for name in ("x", "y", "z"):
        client.create(f"{base_path}/{name}", name.encode())
    children, stat = client.get_children(base_path, include_data=True)
    assert sorted(children) == ["x", "y", "z"]
    assert (stat.numChildren, stat.cversion) == (3, 3)
    client.delete(base_path + "/y")
    stat = client.exists(base_path)
    assert (stat.cversion, stat.numChildren) == (4, 2), "a deletion bumps cversion too"


def test_digest_acl(make_client, base_path):
    alice = make_client(auth_data=[("digest", "alice:secret")])
    stranger = make_client()
    acl = make_digest_acl("alice", "secret", all=True)
    assert acl.id == Id("digest", make_digest_acl_credential("alice", "secret"))
    path = base_path + "/private"
    alice.create(path, b"secret-data", acl=[acl])

    assert alice.get(path)[0] == b"secret-data"
    with pytest.raises(NoAuthError):
        stranger.get(path)
    with pytest.raises(NoAuthError):
        stranger.set(path, b"x")
    with pytest.raises(NoAuthError):
        stranger.get_children(path)
    with pytest.raises(NoAuthError):
        stranger.create(path + "/child")
    with pytest.raises(NoAuthError):
        stranger.set_acls(path, [ACL(31, Id("world", "anyone"))])
    with pytest.raises(NoAuthError):
        stranger.get_acls(path)  # 3.8: getACL needs READ or ADMIN

    acls, stat = alice.get_acls(path)
    assert acls == [acl]
    assert stat.aversion == 0

    stranger.add_auth("digest", "alice:wrong-password")  # accepted, but a different identity
    with pytest.raises(NoAuthError):
        stranger.get(path)
    stranger.add_auth("digest", "alice:secret")
    assert stranger.get(path)[0] == b"secret-data"

    # World-readable, alice-writable: others read the data and see a redacted ACL.
    public = base_path + "/public"
    alice.create(public, b"p", acl=[acl, ACL(1, Id("world", "anyone"))])
    anonymous = make_client()
    assert anonymous.get(public)[0] == b"p"
    with pytest.raises(NoAuthError):
        anonymous.set(public, b"q")
    redacted, _ = anonymous.get_acls(public)
    assert redacted == [ACL(31, Id("digest", "alice:x")), ACL(1, Id("world", "anyone"))]

    stat = alice.set_acls(path, [acl, ACL(1, Id("world", "anyone"))], version=0)
    assert stat.aversion == 1
    with pytest.raises(BadVersionError):
        alice.set_acls(path, [ACL(31, Id("world", "anyone"))], version=0)
    assert anonymous.get(path)[0] == b"secret-data"
    # Without ADMIN the permission check comes first: NoAuth, not BadVersion.
    alice.set_acls(path, [ACL(1, Id("world", "anyone"))], version=1)
    with pytest.raises(NoAuthError):
        alice.set_acls(path, [ACL(31, Id("world", "anyone"))], version=0)


# --------------------------------------------------------------------------------------
# Four-letter words as clients use them
# --------------------------------------------------------------------------------------


def test_server_version(client):
    version = client.server_version()
    assert isinstance(version, tuple) and len(version) >= 3
    assert all(isinstance(part, int) for part in version)
    assert version[0] == 3 and version[1] >= 4, version


def test_ruok_srvr_mntr(client):
    assert client.command(b"ruok") == "imok"
    srvr = client.command(b"srvr")
    lines = srvr.splitlines()
    modes = ENSEMBLE_MODES if ENSEMBLE else ("standalone",)
    assert any(f"Mode: {m}" in lines for m in modes), srvr
    assert any(line.startswith("Zookeeper version: 3.") for line in lines), srvr
    assert any(line.startswith("Node count: ") for line in lines), srvr
    mntr = dict(
        line.split("\t", 1) for line in client.command(b"mntr").splitlines() if "\t" in line
    )
    assert mntr.get("zk_server_state") in modes, mntr
    assert mntr.get("zk_version", "").startswith("3."), mntr
    assert int(mntr["zk_znode_count"]) >= 1
