"""Byte-level differential test: raw client frames to Apache ZooKeeper and to Ferrokeeper.

One scripted sequence of raw requests (``script`` below, written with ``zkwire``) runs
against a fresh Apache ZooKeeper 3.8 and a fresh Ferrokeeper started with the same zoo.cfg.
Every frame either server sends back is recorded per step and per connection: replies,
watch notifications (xid -1), ConnectResponses, and whether the server closed the
connection.  The two transcripts are then compared byte for byte after masking, by
position (each reply is decoded with the layout of the request it answers), only:

* zxids: ReplyHeader.zxid and Stat czxid/mzxid/pzxid.  The value is replaced by a
  placeholder ``ZXID`` + ordinal, the ordinal numbering the distinct values inside one
  record (so ``mzxid == czxid`` versus ``mzxid != czxid`` still compares); 0 and -1 are
  kept as they are (they are constants, not server state);
* times: Stat ctime/mtime (``TIME``; 0 kept; no ordinals: two pipelined writes may
  share a millisecond or not);
* session ids (ConnectResponse.sessionId, and Stat.ephemeralOwner when it is the id of
  one of the script's sessions: ``SESS`` + the session's number in order of creation) and
  session passwords (non-zero ConnectResponse.passwd);
* the order of elements in the vectors ZooKeeper fills from a Java HashSet, whose order
  no client may rely on: getChildren / getChildren2 / multiRead getChildren names
  (DataNode.children), getEphemerals paths (DataTree ephemerals), whoAmI ClientInfos
  (ServerCnxn.authInfo).  They are sorted, not masked: the names still compare.

Everything else must match: frame lengths, -1 (null) versus 0 (empty) lengths, field
order, error codes, stat fields, event types and paths, the order of replies and events
on each connection, and which connections the server closes.  The script's root node is
``/bx-<random>``, the same for both servers, so paths need no masking.

Where ZooKeeper 3.9 (which Ferrokeeper follows; it reports 3.9.2) answers differently
from the 3.8.0 reference server, a step carries a ``3.9 expectation``: a transformation
of Apache's (masked) outcome into what 3.9 sends, citing the Java class that changed.
Where Ferrokeeper deliberately differs from every ZooKeeper, a step carries a named
``deliberate difference`` with the reason.  Both are applied only when comparing
against Ferrokeeper; ``test_apache_against_itself`` runs the script on two fresh Apache
servers and compares them raw, which proves the masking (and the script) deterministic.

One 3.9 expectation applies to every step: ZooKeeper 3.9 (ZOOKEEPER-4655) puts the zxid of
the txn that fired a watch into the notification's ReplyHeader, where 3.8 sends -1; events
fired by setWatches on reconnect keep -1 in 3.9 (``notification_zxids_39``).

On failure the message lists every differing step: connection, frame, opcode, both
frames in hex, the first differing byte offset and the field there (frames that only
arrive in another order are listed once, with both orders).  Both transcripts are also
written to ``<tmp>/byte_exact_*.txt``.

Things Apache itself does in no fixed way, which the script therefore avoids: the place of
an auth or sasl reply among replies still in the request pipeline (processPacket answers
them from the connection thread: an auth is always first in its step), requests pipelined
behind an unknown opcode (answered or not), the order in which a closing or expiring
session's ephemerals are deleted (a HashSet: only one of them is watched), and whether two
pipelined writes share a millisecond (no ctime/mtime relation is compared).

Configuration (both servers): the launcher's zoo.cfg plus tickTime=500 (a short session
expiry scenario), znode.container.checkIntervalMs=600000 (no reaping) and
ferrokeeper.maxWatchesPerConnection=200 (one of Ferrokeeper's bounds, shown as a deliberate
difference; Apache ignores the key).  Run: ``python -m pytest -q tests/compat/test_byte_exact.py``.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import secrets
import struct
import time
from dataclasses import dataclass, field

import pytest

import zkwire

from zkwire import (
    CONNECT,
    SESS_PH,
    TIME_PH,
    ZXID_PH,
    LEN,
    OPEN_ACL,
    READ_ACL,
    AddWatchMode,
    Client,
    CreateMode,
    Err,
    Event,
    Op,
    Perm,
    WatcherType,
    Xid,
    auth_body,
    connect_request,
    connect_session,
    create_body,
    create_session_body,
    create_ttl_body,
    delete_container_body,
    decode_connect_response,
    decode_reply,
    describe,
    multi_body,
    p_buffer,
    p_int,
    p_long,
    p_string,
    path_body,
    path_type_body,
    path_version_body,
    path_watch_body,
    reconfig_body,
    reply_header,
    request,
    sasl_body,
    set_acl_body,
    set_data_body,
    set_watches2_body,
    set_watches_body,
    EVENT_NAMES,
    OP_NAMES,
    frame,
)

ROOT = "/bx-" + secrets.token_hex(4)

# Both servers: no container reaping while the script runs (Apache gets it as -D too);
# tickTime 500 ms, so sessions negotiate 1000..10000 ms and the expiry scenario is short;
# a small watch bound, so the script can show Ferrokeeper's bound (Apache ignores the key:
# an unknown zoo.cfg key only becomes a "zookeeper."-prefixed system property there).
WATCH_BOUND = 200
COMMON_CFG = {
    "znode.container.checkIntervalMs": "600000",
    "tickTime": "500",
    "ferrokeeper.maxWatchesPerConnection": str(WATCH_BOUND),
}
AUTH_IDS_BOUND = 128  # Ferrokeeper's limits::AUTH_IDS_PER_CONNECTION_MAX (the ip id included)
EXPIRY_WAIT = 4.0  # > 1000 ms minimum session timeout + one 500 ms expiry tick, with margin

CLOSE_WAIT = 3.0  # seconds a step that expects the server to close waits for it
REPLY_WAIT = 5.0


# Special xids of the Java client (ClientCnxn), used the same way here.
DEFAULT_XIDS = {Op.PING: Xid.PING, Op.AUTH: Xid.AUTH, Op.SET_WATCHES: Xid.SET_WATCHES,
                Op.SET_WATCHES2: Xid.SET_WATCHES}


def digest_id(user: str, password: str) -> str:
    """DigestAuthenticationProvider.generateDigest: user:base64(sha1(user:password))."""
    raw = hashlib.sha1(f"{user}:{password}".encode()).digest()
    return f"{user}:{base64.b64encode(raw).decode()}"


ALICE = digest_id("alice", "secret")

# --------------------------------------------------------------------------------------
# Recording
# --------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one connection received during one step."""

    frames: list  # bytes (masked once the run is masked)
    ops: list  # request opcode each frame answers (None: notification / unknown; CONNECT)
    closed: bool = False
    timed_out: bool = False
    sw: set = field(default_factory=set)  # indices of notifications fired by setWatches
    raw: list = field(default_factory=list)  # unmasked frames, for descriptions


@dataclass
class Step:
    name: str
    outcomes: dict  # connection label -> Outcome
    xids: list = field(default_factory=list)  # xids the step's requests used, in order
    expect_39: object = None  # (reason, fn(outcomes) -> outcomes) for Ferrokeeper
    deliberate: object = None  # (reason, fn(outcomes) -> outcomes) for Ferrokeeper

    def expect(self, reason: str, fn):
        self.expect_39 = (reason, fn)
        return self

    def differs(self, reason: str, fn):
        self.deliberate = (reason, fn)
        return self


class Conn:
    def __init__(self, label: str, client: Client):
        self.label = label
        self.client = client
        self.xid = 0
        self.session_id = 0
        self.passwd = b""
        self.last_zxid = 0  # highest reply-header zxid seen, as ClientCnxn tracks it

    def next_xid(self) -> int:
        self.xid += 1
        return self.xid


class Run:
    """The script's state against one server."""

    def __init__(self, server, root: str):
        self.server = server
        self.port = server.port
        self.root = root
        self.conns: dict[str, Conn] = {}
        self.steps: list[Step] = []

    def p(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    # -- frames ----------------------------------------------------------------------
    def _frames(self, conn: Conn, reqs, add_ping: bool):
        frames, xmap, xids, pings = [], {}, [], 0
        for spec in reqs:
            op, body = spec[0], spec[1]
            xid = spec[2] if len(spec) > 2 else DEFAULT_XIDS.get(op)
            if xid is None:
                xid = conn.next_xid()
            frames.append(request(xid, op, body))
            xmap[xid] = op
            xids.append(xid)
            pings += op == Op.PING
        if add_ping:
            frames.append(request(Xid.PING, Op.PING))
            xmap[Xid.PING] = Op.PING
            pings += 1
        return frames, xmap, xids, pings

    def _outcome(self, conn: Conn, got, xmap: dict, connect: bool = False) -> Outcome:
        ops, sw = [], set()
        sent_set_watches = any(op in (Op.SET_WATCHES, Op.SET_WATCHES2) for op in xmap.values())
        set_watches_answered = False
        for i, f in enumerate(got.frames):
            if connect and i == 0:
                ops.append(CONNECT)
                continue
            if len(f) < 20:
                ops.append(None)
                continue
            xid, zxid, _ = reply_header(f)
            if xid == Xid.NOTIFICATION:
                ops.append(None)
                if sent_set_watches and not set_watches_answered:
                    sw.add(i)
                continue
            op = xmap.get(xid)
            if op is None and Op.CREATE_SESSION in xmap.values() and len(f) in (40, 41):
                # A createSession request can make ZooKeeper send another ConnectResponse.
                ops.append(CONNECT)
                continue
            ops.append(op)
            if op in (Op.SET_WATCHES, Op.SET_WATCHES2):
                set_watches_answered = True
            if zxid > conn.last_zxid:
                conn.last_zxid = zxid
        return Outcome(list(got.frames), ops, got.closed, got.timed_out, sw, list(got.frames))

    @staticmethod
    def _pings_seen(frames, want: int, skip_first: bool = False) -> bool:
        n = 0
        for f in frames[1:] if skip_first else frames:
            if len(f) >= 20 and reply_header(f)[0] == Xid.PING:
                n += 1
        return n >= want

    # -- steps -----------------------------------------------------------------------
    def connect(self, name, label, *, resume=None, session_id=None, passwd=None,
                read_only=False, timeout_ms=30000, last_zxid=None, reqs=(), close=False):
        """A new connection: ConnectRequest (+ pipelined requests) in one write.

        resume: label of a connection whose session (id, password, last zxid) to resume."""
        sid, pw, lz = 0, b"\x00" * 16, 0
        if resume is not None:
            old = self.conns[resume]
            sid, pw, lz = old.session_id, old.passwd, old.last_zxid
        if session_id is not None:
            sid = session_id
        if passwd is not None:
            pw = passwd
        if last_zxid is not None:
            lz = last_zxid
        conn = Conn(label, Client(self.port, timeout=REPLY_WAIT))
        if resume is not None:
            conn.xid = self.conns[resume].xid
        conn.session_id, conn.passwd, conn.last_zxid = sid, pw, lz
        frames, xmap, xids, pings = self._frames(conn, reqs, add_ping=not close)
        connect_frame = connect_request(
            last_zxid_seen=lz, timeout_ms=timeout_ms, session_id=sid, passwd=pw, read_only=read_only
        )
        conn.client.send(connect_frame, *frames)
        if close:
            got = conn.client.read_to_close(CLOSE_WAIT)
        else:
            got = conn.client.read_until(
                lambda fs: len(fs) >= 1 and self._pings_seen(fs, pings, skip_first=True), REPLY_WAIT
            )
        if got.frames:
            timeout, new_sid, new_pw = connect_session(got.frames[0])
            if timeout > 0:
                conn.session_id, conn.passwd = new_sid, new_pw
        self.conns[label] = conn
        step = Step(name, {label: self._outcome(conn, got, xmap, connect=True)}, xids)
        self.steps.append(step)
        return step

    def step(self, name, label, reqs, *, close=False, watchers=(), raw=b""):
        """Sends reqs on `label` in ONE write, plus a ping as barrier (unless the server is
        expected to close), and reads until the ping's reply (or the close).

        watchers: other connections that may get events from this step: each gets a sync
        (ordered after every earlier write in both servers) and is read up to its reply.
        raw: bytes sent as they are after the requests (malformed frames)."""
        conn = self.conns[label]
        frames, xmap, xids, pings = self._frames(conn, reqs, add_ping=False)
        if not close:
            frames.append(request(Xid.PING, Op.PING))
            xmap[Xid.PING] = Op.PING
            pings += 1
        conn.client.send(*frames[: len(reqs)], raw, *frames[len(reqs) :])
        if close:
            got = conn.client.read_to_close(CLOSE_WAIT)
        else:
            got = conn.client.read_until(lambda fs: self._pings_seen(fs, pings), REPLY_WAIT)
        outcomes = {label: self._outcome(conn, got, xmap)}
        for w in watchers:
            other = self.conns[w]
            x = other.next_xid()
            other.client.send(request(x, Op.SYNC, path_body("/")))
            got_w = other.client.read_replies([x], REPLY_WAIT)
            outcomes[w] = self._outcome(other, got_w, {x: Op.SYNC})
        step = Step(name, outcomes, xids)
        self.steps.append(step)
        return step

    def drop(self, label):
        """Closes the socket without closeSession (a client losing its connection)."""
        self.conns[label].client.close()
        # Let both servers notice, so the reconnect below is not racing the close.
        time.sleep(0.2)

    def close_all(self):
        for c in self.conns.values():
            c.client.close()


# --------------------------------------------------------------------------------------
# Masking
# --------------------------------------------------------------------------------------


def mask_frame(frame: bytes, op, sessions: dict) -> bytes:
    """zkwire.mask_frame with session codes in order of first appearance: any non-zero
    session id gets the next code; an ephemeralOwner is masked only if it is one of them."""
    return zkwire.mask_frame(
        frame,
        op,
        lambda sid: sessions.setdefault(sid, len(sessions) + 1) if sid != 0 else None,
        sessions.get,
    )


def mask_run(run: Run) -> list[Step]:
    sessions: dict = {}
    steps = []
    for s in run.steps:
        masked = {}
        for label, o in s.outcomes.items():
            frames = [mask_frame(f, op, sessions) for f, op in zip(o.frames, o.ops)]
            masked[label] = Outcome(frames, list(o.ops), o.closed, o.timed_out, set(o.sw), list(o.raw))
        steps.append(Step(s.name, masked, list(s.xids), s.expect_39, s.deliberate))
    return steps


# --------------------------------------------------------------------------------------
# Building expected (masked) frames for 3.9 expectations
# --------------------------------------------------------------------------------------


def ph_zxid(i: int = 0) -> bytes:
    return ZXID_PH + p_int(i)


def mframe(xid: int, err: int, body: bytes = b"", zxid: bytes | None = None) -> bytes:
    payload = p_int(xid) + (ph_zxid() if zxid is None else zxid) + p_int(err) + body
    return p_int(len(payload)) + payload


def mevent(event_type: int, path: str, zxid: bytes | None = None) -> bytes:
    """A notification as 3.9 sends it for a txn: ReplyHeader{-1, txn zxid, 0} + WatcherEvent."""
    return mframe(-1, 0, p_int(event_type) + p_int(3) + p_string(path), zxid)


def frame_xid(f: bytes) -> int:
    return struct.unpack(">i", f[4:8])[0]


def index_of(o: Outcome, xid: int) -> int:
    for i, f in enumerate(o.frames):
        if len(f) >= 20 and frame_xid(f) == xid:
            return i
    raise AssertionError(f"no reply with xid {xid} in Apache's outcome")


def set_err(o: Outcome, xid: int, err: int, body: bytes = b"") -> None:
    """The reply to xid becomes header + body with error `err` (zxid bytes kept)."""
    i = index_of(o, xid)
    f = o.frames[i]
    payload = f[4:8] + f[8:16] + p_int(err) + body
    o.frames[i] = o.raw[i] = p_int(len(payload)) + payload


def refused_as_unknown(out: dict, label: str, xid: int, at: int | None = None) -> dict:
    """Ferrokeeper's answer to an opcode a client must not send: the reply to xid is
    ReplyHeader{xid, -1, Unimplemented}, nothing after it, and the connection closes.
    `at` is the index of Apache's answer when it carries no xid (a ConnectResponse)."""
    o = out[label]
    i = index_of(o, xid) if at is None else at
    while len(o.frames) > i + 1:
        remove_frame(o, i + 1)
    o.frames[i] = o.raw[i] = mframe(xid, Err.UNIMPLEMENTED, zxid=p_long(-1))
    o.closed = True
    return out


def insert_frames(o: Outcome, at: int, frames: list, ops=None) -> None:
    for k, f in enumerate(frames):
        o.frames.insert(at + k, f)
        o.raw.insert(at + k, f)
        o.ops.insert(at + k, None if ops is None else ops[k])
    o.sw = {i if i < at else i + len(frames) for i in o.sw}


def remove_frame(o: Outcome, i: int) -> None:
    del o.frames[i], o.raw[i], o.ops[i]
    o.sw = {j if j < i else j - 1 for j in o.sw if j != i}


def notification_zxids_39(outcomes: dict) -> dict:
    """ZooKeeper 3.9 (ZOOKEEPER-4655, NIOServerCnxn.process / WatchManager.triggerWatch)
    puts the zxid of the txn that fired a watch into the notification's ReplyHeader; 3.8
    sends -1.  Events fired by setWatches on reconnect still carry -1 in 3.9
    (DataTree.setWatches builds WatchedEvent without a zxid: WatchedEvent.NO_ZXID)."""
    out = copy.deepcopy(outcomes)
    for o in out.values():
        for i, f in enumerate(o.frames):
            if o.ops[i] is None and len(f) >= 20 and frame_xid(f) == Xid.NOTIFICATION:
                if i not in o.sw and f[8:16] == p_long(-1):
                    o.frames[i] = f[:8] + ph_zxid() + f[16:]
    return out


# --------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------


def _hex(b: bytes, limit: int = 240) -> str:
    h = b.hex()
    return h if len(h) <= 2 * limit else h[: 2 * limit] + f"...(+{len(b) - limit} bytes)"


def _field_at(frame: bytes, op, offset: int) -> str:
    try:
        fields = decode_connect_response(frame) if op == CONNECT else decode_reply(frame, op)
    except Exception:  # noqa: BLE001 - descriptions only
        return "?"
    for f in fields:
        if f.start <= offset < f.end:
            return f.name
    return "past the end" if offset >= len(frame) else "?"


def _opname(op) -> str:
    if op == CONNECT:
        return "connectResponse"
    if op is None:
        return "notification/unknown"
    return OP_NAMES.get(op, str(op))


def _describe(frame: bytes, op) -> str:
    try:
        fields = decode_connect_response(frame) if op == CONNECT else decode_reply(frame, op)
    except Exception:  # noqa: BLE001
        return "?"
    fields = [f for f in fields if f.kind != LEN]
    for f in fields:  # placeholders of synthesized (expected) frames read as such
        raw = frame[f.start : f.end]
        if f.end - f.start == 8 and raw[:4] in (ZXID_PH, TIME_PH, SESS_PH):
            f.value = f"{raw[:4].decode()}#{int.from_bytes(raw[4:], 'big')}"
    return describe(fields)


def _short(frame: bytes, op) -> str:
    """A frame in a few words, for order listings."""
    if op == CONNECT or len(frame) < 20:
        return _opname(op)
    xid, _, err = reply_header(frame)
    if xid == Xid.NOTIFICATION:
        fields = decode_reply(frame, None)
        kind = next((f.value for f in fields if f.name == "event.type"), "?")
        path = next((f.value for f in fields if f.name == "event.path"), b"")
        return f"event {EVENT_NAMES.get(kind, kind)} {path.decode(errors='replace')}"
    return f"{_opname(op)} xid={xid}" + (f" err={err}" if err else "")


def _diff_entry(where: str, a: str, b: str, fw, rw, opw, fg, rg, opg) -> str:
    if fw is None or fg is None:
        present, raw, op, who = (fg, rg, opg, b) if fw is None else (fw, rw, opw, a)
        return f"{where} ({_opname(op)}): only {who} sends it\n    {who}: {_hex(present)}\n      = {_describe(raw, op)}"
    off = next((k for k in range(min(len(fw), len(fg))) if fw[k] != fg[k]), min(len(fw), len(fg)))
    return (
        f"{where} ({_opname(opw)}): first difference at byte {off}"
        f" ({_field_at(rw, opw, off)}); lengths {len(fw)} vs {len(fg)}\n"
        f"    {a}: {_hex(fw)}\n      = {_describe(rw, opw)}\n"
        f"    {b}: {_hex(fg)}\n      = {_describe(rg, opg)}"
    )


def _order_line(a, b, want, got) -> str:
    return (
        f"    {a}: " + " | ".join(_short(f, op) for f, op in zip(want.frames, want.ops)) + "\n"
        f"    {b}: " + " | ".join(_short(f, op) for f, op in zip(got.frames, got.ops))
    )


def _unmatched(frames: list, others: list) -> list[int]:
    """Indices of `frames` with no equal frame left in `others` (a multiset difference)."""
    rest = list(others)
    unmatched = []
    for i, f in enumerate(frames):
        if f in rest:
            rest.remove(f)
        else:
            unmatched.append(i)
    return unmatched


def compare_outcome(step: str, label: str, want: Outcome, got: Outcome, names=("apache", "ferrokeeper")):
    problems = []
    a, b = names
    head = f"[{step}] conn {label}"
    positional = [
        i for i in range(max(len(want.frames), len(got.frames)))
        if (want.frames[i] if i < len(want.frames) else None) != (got.frames[i] if i < len(got.frames) else None)
    ]
    if positional:
        # Frames one side has and the other lacks, as multisets (order aside).
        only_w = _unmatched(want.frames, got.frames)
        only_g = _unmatched(got.frames, want.frames)
        if not only_w and not only_g:
            problems.append(f"{head}: the same {len(want.frames)} frames in another order\n" + _order_line(a, b, want, got))
        elif len(only_w) + len(only_g) < len(positional):
            # Reordered *and* different: pair what differs by reply xid (notifications in
            # their order), so each content difference is shown once.
            problems.append(f"{head}: frames in another order, and some differ (listed below)\n"
                            + _order_line(a, b, want, got))

            def key(o, i):
                f = o.frames[i]
                x = frame_xid(f) if len(f) >= 8 else None
                return ("event",) if x == Xid.NOTIFICATION else ("reply", x)

            gs = list(only_g)
            for i in only_w:
                j = next((j for j in gs if key(got, j) == key(want, i)), None)
                if j is not None:
                    gs.remove(j)
                    problems.append(_diff_entry(f"{head} {a} frame {i} / {b} frame {j}", a, b,
                                                want.frames[i], want.raw[i], want.ops[i],
                                                got.frames[j], got.raw[j], got.ops[j]))
                else:
                    problems.append(_diff_entry(f"{head} {a} frame {i}", a, b, want.frames[i], want.raw[i],
                                                want.ops[i], None, None, None))
            for j in gs:
                problems.append(_diff_entry(f"{head} {b} frame {j}", a, b, None, None, None,
                                            got.frames[j], got.raw[j], got.ops[j]))
        else:
            for i in positional:
                fw, fg = (o.frames[i] if i < len(o.frames) else None for o in (want, got))
                problems.append(_diff_entry(
                    f"{head} frame {i}", a, b,
                    fw, want.raw[i] if fw is not None else None, want.ops[i] if fw is not None else None,
                    fg, got.raw[i] if fg is not None else None, got.ops[i] if fg is not None else None,
                ))
    if want.closed != got.closed or want.timed_out != got.timed_out:
        def state(o):
            return "closed by the server" if o.closed else ("no answer (timeout)" if o.timed_out else "open")

        problems.append(f"{head}: connection {a}: {state(want)}, {b}: {state(got)}")
    return problems


def compare_runs(ref: Run, other: Run, *, apply_expectations: bool, names=("apache", "ferrokeeper")):
    a_steps, b_steps = mask_run(ref), mask_run(other)
    assert [s.name for s in a_steps] == [s.name for s in b_steps], "the script diverged"
    problems = []
    for sa, sb in zip(a_steps, b_steps):
        want, title = sa.outcomes, sa.name
        if apply_expectations:
            want = notification_zxids_39(want)
            for tag, spec in (("3.9 expectation", sa.expect_39), ("deliberate difference", sa.deliberate)):
                if spec is not None:
                    reason, fn = spec
                    want = fn(copy.deepcopy(want))
                    title = f"{sa.name}] [{tag}: {reason}"
        for label in sorted(set(want) | set(sb.outcomes)):
            empty = Outcome([], [])
            problems += compare_outcome(title, label, want.get(label, empty), sb.outcomes.get(label, empty), names)
    return problems


def dump(run: Run, path) -> None:
    with open(path, "w") as out:
        for s in mask_run(run):
            out.write(f"== {s.name}\n")
            for label, o in s.outcomes.items():
                state = " CLOSED" if o.closed else (" TIMEOUT" if o.timed_out else "")
                out.write(f"  [{label}]{state}\n")
                for f, raw, op in zip(o.frames, o.raw, o.ops):
                    out.write(f"    {_opname(op)}: {f.hex()}\n      = {_describe(raw, op)}\n")


# --------------------------------------------------------------------------------------
# The script
# --------------------------------------------------------------------------------------


def rq(op, body=b"", xid=None):
    return (op, body) if xid is None else (op, body, xid)


def getdata(path, watch=False):
    return rq(Op.GET_DATA, path_watch_body(path, watch))


def exists(path, watch=False):
    return rq(Op.EXISTS, path_watch_body(path, watch))


def children(path, watch=False):
    return rq(Op.GET_CHILDREN, path_watch_body(path, watch))


def children2(path, watch=False):
    return rq(Op.GET_CHILDREN2, path_watch_body(path, watch))


def create(path, data=b"", acl=OPEN_ACL, flags=0, op=Op.CREATE):
    return rq(op, create_body(path, data, acl, flags))


def setdata(path, data=b"", version=-1):
    return rq(Op.SET_DATA, set_data_body(path, data, version))


def delete(path, version=-1):
    return rq(Op.DELETE, path_version_body(path, version))


def getacl(path):
    return rq(Op.GET_ACL, path_body(path))


def addwatch(path, mode):
    return rq(Op.ADD_WATCH, path_type_body(path, mode))


def checkw(path, kind):
    return rq(Op.CHECK_WATCHES, path_type_body(path, kind))


def removew(path, kind):
    return rq(Op.REMOVE_WATCHES, path_type_body(path, kind))


def script(run: Run) -> None:
    p = run.p
    R = run.root

    # ---------------------------------------------------------------- sessions ----------
    run.connect("connect A: ConnectRequest with the readOnly byte", "A", read_only=False)
    # A ConnectRequest without the trailing readOnly byte gets a ConnectResponse without it
    # (3.8: ServerCnxn.isOldClient; 3.9.3+: ProtocolManager.serializeConnectResponse,
    # ZOOKEEPER-4814).  Only 3.9.0..3.9.2 always appended it (ZOOKEEPER-4492); the 3.8 and
    # 3.9.3+ behaviour is what old clients need, so no 3.9 expectation here.
    run.connect("connect B: old client, no readOnly byte", "B", read_only=None, timeout_ms=8000)
    run.connect("connect RO: a read-only client on a read-write server", "RO", read_only=True,
                reqs=[rq(Op.CLOSE_SESSION)], close=True)
    # ZooKeeper negotiates the timeout into [2, 20] x tickTime (1000..10000 ms here).
    run.connect("connect with a timeout below minSessionTimeout", "T1", timeout_ms=100)
    run.step("closeSession of an idle session", "T1", [rq(Op.CLOSE_SESSION)], close=True)
    run.connect("connect with a timeout above maxSessionTimeout", "T2", timeout_ms=10_000_000,
                reqs=[rq(Op.CLOSE_SESSION)], close=True)

    # ---------------------------------------------------------------- built-in nodes ----
    run.step("getData of the built-in nodes", "A", [
        getdata("/"), getdata("/zookeeper"), getdata("/zookeeper/quota"), getdata("/zookeeper/config"),
    ])
    run.step("getChildren / getChildren2 of the built-in nodes", "A", [
        children("/"), children("/zookeeper"), children2("/zookeeper"), children("/zookeeper/quota"),
        children2("/zookeeper/config"),
    ])
    run.step("getACL / exists / getAllChildrenNumber of the built-in nodes", "A", [
        getacl("/"), getacl("/zookeeper"), getacl("/zookeeper/quota"), getacl("/zookeeper/config"),
        exists("/zookeeper/config"), exists("/zookeeper/quota"),
        rq(Op.GET_ALL_CHILDREN_NUMBER, path_body("/zookeeper")),
    ])
    run.step("writes to the built-in nodes", "A", [
        create("/"), delete("/"), delete("/zookeeper"), delete("/zookeeper/quota"),
        delete("/zookeeper/config"), setdata("/zookeeper/config", b"x"),
        rq(Op.SET_ACL, set_acl_body("/zookeeper/config", OPEN_ACL)),
        create("/zookeeper/config/x"), create("/zookeeper/bx-child"), delete("/zookeeper/bx-child"),
    ])
    run.step("paths the servers alias or refuse on reads", "A", [
        getdata(""), exists(""), children(""), getdata("/zookeeper/"), exists("zookeeper"),
        exists("/a\x00b"), getacl(""),
    ])

    # ---------------------------------------------------------------- creates -----------
    run.step("create the root (create2)", "A", [create(R, b"root", op=Op.CREATE2)])
    run.step("creates of every kind, pipelined", "A", [
        create(p("a"), b"a"),
        create(p("b"), b"bee", op=Op.CREATE2),
        create(p("c"), flags=CreateMode.CONTAINER, op=Op.CREATE_CONTAINER),
        rq(Op.CREATE_TTL, create_ttl_body(p("t"), b"ttl")),
        rq(Op.CREATE_TTL, create_ttl_body(p("ts-"), flags=CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL)),
        create(p("e"), b"eph", flags=CreateMode.EPHEMERAL),
        create(p("s-"), flags=CreateMode.PERSISTENT_SEQUENTIAL),
        create(p("es-"), flags=CreateMode.EPHEMERAL_SEQUENTIAL, op=Op.CREATE2),
        create(p("n"), None),
        create(p("empty"), b"", op=Op.CREATE2),
        create(p("seq")),
        create(p("seq") + "/", flags=CreateMode.PERSISTENT_SEQUENTIAL),
        create(p("seq") + "/", flags=CreateMode.PERSISTENT_SEQUENTIAL, op=Op.CREATE2),
        create(p("cflag"), flags=CreateMode.CONTAINER),  # create (1) with the container flag
        create(p("cc0"), op=Op.CREATE_CONTAINER),  # createContainer with flags 0
        create(p("big"), b"x" * 3000),
    ])
    run.step("create errors", "A", [
        create(p("a")),  # NodeExists
        create(p("missing", "x")),  # NoNode
        create("no-slash"),  # BadArguments
        create(p("a") + "/"),  # trailing slash
        create(R + "//x"),
        create(p(".", "x")),
        create(p("..")),
        create(p("x\x00y")),
        create(p("x\x01y")),
        create(p("e", "child")),  # NoChildrenForEphemerals
        create(p("acl-empty"), acl=[]),  # InvalidACL
        create(p("acl-null"), acl=None),
        create(p("acl-bad-scheme"), acl=[(Perm.ALL, "foo", "bar")]),
        create(p("acl-digest-nohash"), acl=[(Perm.ALL, "digest", "alice")]),
        create(p("acl-ip-bad"), acl=[(Perm.ALL, "ip", "1.2.3.4/99")]),
        create(p("acl-auth"), acl=[(Perm.ALL, "auth", "")]),  # no auth yet: InvalidACL
        create(p("acl-world-nobody"), acl=[(Perm.ALL, "world", "nobody")]),
        create(p("flags7"), flags=7),
        rq(Op.CREATE_TTL, create_ttl_body(p("ttl0"), ttl=0)),
        rq(Op.CREATE_TTL, create_ttl_body(p("ttlmax"), ttl=1 << 40)),
        create(p("ttl-via-create"), flags=CreateMode.PERSISTENT_WITH_TTL),
        create(p("e"), flags=CreateMode.EPHEMERAL, op=Op.CREATE2),  # NodeExists
    ])
    run.step("ACL variants", "A", [
        create(p("acl-r"), b"r", acl=READ_ACL),
        create(p("acl-ip"), acl=[(Perm.ALL, "ip", "127.0.0.1")]),
        create(p("acl-ipnet"), acl=[(Perm.READ, "ip", "10.0.0.0/8"), (Perm.ALL, "ip", "127.0.0.0/8")]),
        create(p("acl-twice"), acl=[(Perm.ALL, "world", "anyone"), (Perm.ALL, "world", "anyone")]),
        create(p("acl-zero"), acl=[(0, "world", "anyone")]),
        getacl(p("acl-ip")), getacl(p("acl-ipnet")), getacl(p("acl-twice")), getacl(p("acl-zero")),
        getdata(p("acl-zero")), getdata(p("acl-ip")),
    ])

    # ---------------------------------------------------------------- reads -------------
    run.step("reads", "A", [
        getdata(p("a")), getdata(p("n")), getdata(p("empty")), getdata(p("b")), getdata(p("big")),
        exists(p("b")), exists(p("missing")), exists(p("c")), exists(p("t")), exists(p("e")),
        getdata(p("cflag")), getdata(p("cc0")),
        children(R), children2(R), children(p("seq")), children2(p("missing")), children(p("missing")),
        getacl(p("b")), getacl(p("missing")),
        rq(Op.GET_ALL_CHILDREN_NUMBER, path_body(R)), rq(Op.GET_ALL_CHILDREN_NUMBER, path_body(p("missing"))),
        rq(Op.GET_ALL_CHILDREN_NUMBER, path_body("/")),
        getdata(p("a") + "/"), getdata("no-slash"),
    ])
    run.step("getEphemerals", "A", [
        rq(Op.GET_EPHEMERALS, path_body("/")), rq(Op.GET_EPHEMERALS, path_body(p("e"))),
        rq(Op.GET_EPHEMERALS, path_body(p("es"))), rq(Op.GET_EPHEMERALS, path_body("/nomatch")),
        rq(Op.GET_EPHEMERALS, path_body("")), rq(Op.GET_EPHEMERALS, path_body("  ")),
    ])
    run.step("getEphemerals of a session without ephemerals", "B", [rq(Op.GET_EPHEMERALS, path_body("/"))])
    run.step("sync", "A", [rq(Op.SYNC, path_body(R)), rq(Op.SYNC, path_body("bad")), rq(Op.SYNC, path_body("/"))])
    run.step("reconfig on a standalone server", "A", [
        rq(Op.RECONFIG, reconfig_body(None, None, "server.1=127.0.0.1:2888:3888;2181", -1)),
        rq(Op.RECONFIG, reconfig_body("server.2=127.0.0.1:2889:3889;2182", None, None, -1)),
    ])
    run.step("pings pipelined with a read", "A", [rq(Op.PING), rq(Op.PING), getdata(p("a")), rq(Op.PING)])
    run.step("whoAmI without auth", "A", [rq(Op.WHO_AM_I)])

    # ---------------------------------------------------------------- writes ------------
    run.step("setData", "A", [
        setdata(p("a"), b"a2", 0), setdata(p("a"), b"a3", 0), setdata(p("missing"), b"x"),
        setdata(p("a"), None, -1), getdata(p("a")), setdata(p("a"), b"", 2), getdata(p("a")),
        setdata(p("e"), b"e2"), setdata("bad", b"x"),
    ])
    run.step("setACL", "A", [
        rq(Op.SET_ACL, set_acl_body(p("b"), READ_ACL + OPEN_ACL, 5)),  # BadVersion
        rq(Op.SET_ACL, set_acl_body(p("b"), OPEN_ACL, 0)),
        rq(Op.SET_ACL, set_acl_body(p("b"), [], -1)),  # InvalidACL
        rq(Op.SET_ACL, set_acl_body(p("missing"), OPEN_ACL, -1)),
        rq(Op.SET_ACL, set_acl_body(p("acl-r"), OPEN_ACL, -1)),  # no ADMIN: NoAuth
        getacl(p("b")),
    ])
    check = run.step("check (standalone)", "A", [
        rq(Op.CHECK, path_version_body(p("a"), 99)), rq(Op.CHECK, path_version_body(p("missing"), 0)),
        rq(Op.CHECK, path_version_body(p("b"), 0)),  # the right version
    ])
    check_ok = check.xids[2]

    def check_answered(out):
        o = out["A"]
        at = index_of(o, Xid.PING)
        insert_frames(o, at, [mframe(check_ok, 0)], [Op.CHECK])
        return out

    check.differs(
        "ZooKeeper never answers a successful standalone check: FinalRequestProcessor replies "
        "SetDataResponse(rc.stat) with a null stat (DataTree.processTxn sets no stat for check), "
        "serialization throws NullPointerException and NIOServerCnxn.sendResponse logs "
        "'Destruction averted' without sending anything (3.8.0 to 3.9.4); the client would wait "
        "forever. Ferrokeeper answers with the bare ReplyHeader err=0",
        check_answered,
    )
    run.step("delete errors", "A", [
        delete(R), delete(p("missing")), delete(p("a"), 99), delete("bad"), delete(p("a") + "/"),
        delete(p("seq")),
    ])

    # ---------------------------------------------------------------- multi -------------
    multi_ok = run.step("multi that succeeds", "A", [rq(Op.MULTI, multi_body([
        (Op.CREATE, create_body(p("m1"), b"m1")),
        (Op.CREATE2, create_body(p("m2"), b"m2")),
        (Op.SET_DATA, set_data_body(p("m1"), b"m1b", 0)),
        (Op.CHECK, path_version_body(p("m1"), 1)),
        (Op.DELETE, path_version_body(p("m1"), 1)),
        (Op.CREATE, create_body(p("mc"), flags=CreateMode.CONTAINER)),
        (Op.CREATE_TTL, create_ttl_body(p("mt"))),
        (Op.CREATE, create_body(p("ms-"), flags=CreateMode.PERSISTENT_SEQUENTIAL)),
    ])), exists(p("m2")), exists(p("mc"))])
    multi_xid = multi_ok.xids[0]

    def multi_create2_39(out):
        # 3.9 (ZOOKEEPER-4026: MultiOperationRecord.deserialize keeps OpCode.create2 and
        # DataTree.processTxn handles it) answers create2 inside multi with a Create2Response
        # {path, stat} typed 15; 3.8 decays it to create (type 1, path only).  The stat 3.8
        # cannot show is the one the following exists(m2) returns, taken from that reply.
        o = out["A"]
        i = index_of(o, multi_xid)
        f = o.frames[i]
        m2 = p("m2").encode()
        old = p_int(Op.CREATE) + b"\x00" + p_int(0) + p_int(len(m2)) + m2
        at = f.index(old, 20)
        stat = o.frames[index_of(o, multi_ok.xids[1])][20:]  # exists(m2): header + Stat
        new = p_int(Op.CREATE2) + b"\x00" + p_int(0) + p_int(len(m2)) + m2 + stat
        body = f[4:at] + new + f[at + len(old):]
        o.frames[i] = o.raw[i] = p_int(len(body)) + body
        return out

    multi_ok.expect("create2 inside multi returns type 15 + Stat (ZOOKEEPER-4026)", multi_create2_39)
    run.step("multi that fails (per-op error layout)", "A", [rq(Op.MULTI, multi_body([
        (Op.CREATE, create_body(p("mf"))),
        (Op.SET_DATA, set_data_body(p("missing"), b"x")),
        (Op.CHECK, path_version_body(p("m2"), 0)),
        (Op.DELETE, path_version_body(p("m2"), -1)),
    ])), exists(p("mf"))])
    run.step("multi failing on a version check first", "A", [rq(Op.MULTI, multi_body([
        (Op.CHECK, path_version_body(p("m2"), 7)),
        (Op.CREATE, create_body(p("mf2"))),
    ]))])
    run.step("multi failing on a bad path", "A", [rq(Op.MULTI, multi_body([
        (Op.CREATE, create_body(p("mf3"))),
        (Op.CREATE, create_body("bad-path")),
    ]))])
    run.step("empty multi", "A", [rq(Op.MULTI, multi_body([]))])
    run.step("multiRead with mixed results", "A", [rq(Op.MULTI_READ, multi_body([
        (Op.GET_DATA, path_watch_body(p("b"))),
        (Op.GET_CHILDREN, path_watch_body(p("seq"))),
        (Op.GET_DATA, path_watch_body(p("missing"))),
        (Op.GET_CHILDREN, path_watch_body(p("missing"))),
        (Op.GET_DATA, path_watch_body(p("n"))),
        (Op.GET_DATA, path_watch_body(p("acl-zero"))),
        (Op.GET_DATA, path_watch_body("/zookeeper/config")),
        (Op.GET_CHILDREN, path_watch_body("/zookeeper")),
    ]))])
    run.step("empty multiRead", "A", [rq(Op.MULTI_READ, multi_body([]))])
    run.connect("connect M1", "M1")
    run.step("multi with a read op inside", "M1", [rq(Op.MULTI, multi_body([
        (Op.GET_DATA, path_watch_body(p("b"))),
    ]))])
    run.connect("connect M2", "M2")
    run.step("multiRead with a write op inside", "M2", [rq(Op.MULTI_READ, multi_body([
        (Op.CREATE, create_body(p("mr"))),
    ]))])

    # ---------------------------------------------------------------- one-shot watches --
    run.step("prepare watched nodes", "A", [
        create(p("w")), create(p("wd")), create(p("wdel"), b"d"), create(p("wdel", "k")),
    ])
    run.step("B sets one-shot watches", "B", [
        getdata(p("w"), True), exists(p("wnew"), True), children(p("wd"), True),
        children2(p("wdel"), True), getdata(p("wdel"), True), exists(p("w"), True),
        getdata(p("missing"), True),  # NoNode: leaves no watch
    ])
    run.step("A's writes fire B's watches", "A", [
        setdata(p("w"), b"1"), setdata(p("w"), b"2"),  # second one: the watch is gone
        create(p("wnew")), create(p("wd", "x")), create(p("wd", "y")),
        delete(p("wdel", "k")), delete(p("wdel")), create(p("missing")), delete(p("missing")),
    ], watchers=["B"])
    run.step("own writes fire own watches (watch and write in one write)", "A", [
        getdata(p("w"), True), exists(p("o2"), True), children(p("wd"), True), children(R, True),
        setdata(p("w"), b"3"), create(p("o2")), create(p("wd", "z")), delete(p("o2")),
        exists(p("o2"), True), create(p("o2"), flags=CreateMode.EPHEMERAL),
        getdata(p("o2"), True), children(p("o2"), True), delete(p("o2")),
    ])

    # ---------------------------------------------------------------- auth and ACLs -----
    # Apache answers auth (and sasl) packets straight from the connection thread
    # (ZooKeeperServer.processPacket), ahead of requests still in its pipeline: an auth is
    # therefore always the first request of its step, when nothing else is in flight.
    run.step("auth digest, whoAmI", "A", [rq(Op.AUTH, auth_body("digest", b"alice:secret")), rq(Op.WHO_AM_I)])
    run.step("the same digest again, whoAmI", "A", [rq(Op.AUTH, auth_body("digest", b"alice:secret")),
                                                    rq(Op.WHO_AM_I)])
    run.step("nodes only alice may read", "A", [
        create(p("acl-alice"), b"secret", acl=[(Perm.ALL, "digest", ALICE)]),
        create(p("acl-auth"), b"auth", acl=[(Perm.ALL, "auth", "")]),
        create(p("acl-alice-r"), b"r", acl=[(Perm.ALL, "digest", ALICE), (Perm.READ, "world", "anyone")]),
        create(p("acl-alice", "kid")),
        getacl(p("acl-alice")), getacl(p("acl-auth")), getdata(p("acl-alice")),
    ])
    noauth = run.step("another session without alice's auth", "B", [
        getdata(p("acl-alice")), getacl(p("acl-alice")), children(p("acl-alice")),
        children2(p("acl-alice")), rq(Op.GET_ALL_CHILDREN_NUMBER, path_body(p("acl-alice"))),
        setdata(p("acl-alice"), b"x"), delete(p("acl-alice", "kid")), create(p("acl-alice", "k2")),
        getacl(p("acl-alice-r")), getdata(p("acl-alice-r")),
        exists(p("acl-alice")),  # 3.9: NoAuth
        exists(p("acl-zero")),  # 3.9: NoAuth
        exists(p("acl-alice-r")),
        rq(Op.MULTI_READ, multi_body([(Op.GET_DATA, path_watch_body(p("acl-alice"))),
                                      (Op.GET_CHILDREN, path_watch_body(p("acl-alice")))])),
    ])
    exists_noauth = noauth.xids[10:12]

    def exists_read_acl_39(out):
        # 3.9.0+ (ZOOKEEPER-2590, FinalRequestProcessor case OpCode.exists) checks READ on an
        # existing node: NoAuth, header only. 3.8 returns the Stat to anyone.
        for x in exists_noauth:
            set_err(out["B"], x, Err.NO_AUTH)
        return out

    noauth.expect("exists checks READ (ZOOKEEPER-2590)", exists_read_acl_39)

    run.step("B watches nodes it cannot read", "B", [
        exists(p("acl-new"), True), children(p("acl-alice-r"), True), getdata(p("acl-alice-r"), True),
    ])
    filtered = run.step("events on nodes B cannot read", "A", [
        create(p("acl-new"), acl=[(Perm.ALL, "digest", ALICE)]),
        create(p("acl-alice-r", "kid")),
        setdata(p("acl-alice-r"), b"r2"),
    ], watchers=["B"])

    def event_read_acl_39(out):
        # 3.9.2+ (ZOOKEEPER-4799: NIOServerCnxn.process(event, znodeAcl) checks READ on the
        # node's ACL before delivering): B gets no NodeCreated for acl-new (alice only);
        # acl-alice-r is world-readable, so its events still arrive.
        o = out["B"]
        for i, f in enumerate(o.frames):
            if o.ops[i] is None and p("acl-new").encode() in f:
                remove_frame(o, i)
                break
        return out

    filtered.expect("watch events need READ on the node (ZOOKEEPER-4799)", event_read_acl_39)

    run.connect("connect AU", "AU")
    run.step("auth with the ip scheme", "AU", [rq(Op.AUTH, auth_body("ip", b"anything")), rq(Op.WHO_AM_I)])
    run.connect("connect AN", "AN")
    run.step("auth digest without a colon", "AN", [rq(Op.AUTH, auth_body("digest", b"nocolon")), rq(Op.WHO_AM_I)])
    run.connect("connect AE", "AE")
    run.step("auth digest with empty credentials", "AE", [rq(Op.AUTH, auth_body("digest", b"")), rq(Op.WHO_AM_I)])
    run.connect("connect AF", "AF")
    run.step("auth with an unknown scheme", "AF", [rq(Op.AUTH, auth_body("foo", b"bar"))], close=True)
    run.connect("connect AX", "AX")
    run.step("auth with the world scheme", "AX", [rq(Op.AUTH, auth_body("world", b"anyone"))], close=True)
    run.connect("connect AS", "AS")
    run.step("sasl packet on a server without SASL", "AS", [rq(Op.SASL, sasl_body(b"token")), rq(Op.WHO_AM_I)])
    run.step("sasl packet with an empty token", "AS", [rq(Op.SASL, sasl_body(b""))])

    # ---------------------------------------------------------------- persistent watches
    run.connect("connect P", "P")
    run.step("addWatch in both modes", "P", [
        addwatch(p("pw"), AddWatchMode.PERSISTENT),
        addwatch(p("rw"), AddWatchMode.PERSISTENT_RECURSIVE),
        addwatch(p("pw"), AddWatchMode.PERSISTENT),  # again
        addwatch(p("qw"), 7),  # no such mode
        addwatch("bad", AddWatchMode.PERSISTENT),  # not validated by ZooKeeper
        addwatch(p("missing", "deep"), AddWatchMode.PERSISTENT_RECURSIVE),
    ])
    run.step("writes under persistent watches", "P", [
        create(p("pw")), create(p("pw", "c")), setdata(p("pw", "c"), b"1"), setdata(p("pw"), b"1"),
        delete(p("pw", "c")),
        create(p("rw")), create(p("rw", "x")), create(p("rw", "x", "y")), setdata(p("rw", "x", "y"), b"1"),
        delete(p("rw", "x", "y")), setdata(p("rw"), b"2"),
        rq(Op.MULTI, multi_body([(Op.CREATE, create_body(p("rw", "m"))), (Op.SET_DATA, set_data_body(p("pw"), b"2")),
                                 (Op.DELETE, path_version_body(p("rw", "m")))])),
        delete(p("pw")), create(p("pw")),  # persistent: still there after the delete
    ])
    run.step("another session's writes under P's persistent watches", "A", [
        create(p("rw", "fromA")), setdata(p("pw"), b"A"), create(p("pw", "fromA")),
    ], watchers=["P"])

    # 3.8 and 3.9 keep different per-path watch modes (ZOOKEEPER-4466).
    run.step("persistent and one-shot watches on one path", "P", [
        create(p("mix1")), create(p("mix2")),
        addwatch(p("mix1"), AddWatchMode.PERSISTENT), getdata(p("mix1"), True),
        getdata(p("mix2"), True), addwatch(p("mix2"), AddWatchMode.PERSISTENT),
    ])
    mixed = run.step("two setData on each of those paths", "P", [
        setdata(p("mix1"), b"1"), setdata(p("mix1"), b"2"), setdata(p("mix2"), b"1"), setdata(p("mix2"), b"2"),
    ])
    mixed_second = mixed.xids[1]

    def mixed_modes_39(out):
        # 3.9 (ZOOKEEPER-4466, WatchManager.addWatch keeps a WatchStats set of modes per
        # path) keeps the persistent watch on mix1 when a one-shot watch is added on top;
        # 3.8 (WatcherModeManager.setWatcherMode) replaced PERSISTENT by STANDARD, so its
        # second setData fires nothing.
        o = out["P"]
        insert_frames(o, index_of(o, mixed_second), [mevent(Event.NODE_DATA_CHANGED, p("mix1"))])
        return out

    mixed.expect("one path keeps both watch modes (ZOOKEEPER-4466)", mixed_modes_39)

    # ---------------------------------------------------------------- watch types -------
    # checkWatches / removeWatches with every WatcherType on paths holding exactly one
    # kind of watch.  3.8 knows WatcherType 1..3 only (4 and 5 throw in WatcherType.fromInt:
    # MarshallingError) and matches any mode; 3.9 (ZOOKEEPER-4471/4472,
    # DataTree.containsWatcher/removeWatch) adds Persistent(4) / PersistentRecursive(5)
    # and makes Children/Data match one-shot watches only.
    kinds = ("data", "child", "persistent", "recursive", "none")
    types = (WatcherType.CHILDREN, WatcherType.DATA, WatcherType.ANY, WatcherType.PERSISTENT,
             WatcherType.PERSISTENT_RECURSIVE, 9)

    def holds_39(kind, wtype):
        """3.9: does WatcherType `wtype` match a watch of `kind`?"""
        return {
            WatcherType.CHILDREN: kind == "child",
            WatcherType.DATA: kind == "data",
            WatcherType.ANY: kind != "none",
            WatcherType.PERSISTENT: kind == "persistent",
            WatcherType.PERSISTENT_RECURSIVE: kind == "recursive",
        }.get(wtype)

    def result_39(kind, wtype):
        h = holds_39(kind, wtype)
        return Err.MARSHALLING_ERROR if h is None else (Err.OK if h else Err.NO_WATCHER)

    def setup_watch(path, kind):
        return {
            "data": [getdata(path, True)],
            "child": [children(path, True)],
            "persistent": [addwatch(path, AddWatchMode.PERSISTENT)],
            "recursive": [addwatch(path, AddWatchMode.PERSISTENT_RECURSIVE)],
            "none": [],
        }[kind]

    run.connect("connect X", "X")
    run.step("nodes for the watch-type matrix", "A", [create(p("wt"))] + [create(p("wt", k)) for k in kinds])
    run.step("one kind of watch per path", "X", [r for k in kinds for r in setup_watch(p("wt", k), k)])
    check_matrix = run.step("checkWatches: every path x every WatcherType", "X", [
        checkw(p("wt", k), t) for k in kinds for t in types
    ] + [checkw("bad", WatcherType.ANY), checkw(p("wt", "missing"), WatcherType.DATA)])

    def check_matrix_39(out):
        o = out["X"]
        xs = iter(check_matrix.xids)
        for k in kinds:
            for t in types:
                set_err(o, next(xs), result_39(k, t))
        # "bad" (no leading slash): 3.9's WatchManager.containsWatcher looks the path up
        # in its maps without validating it -> NoWatcher.  3.8 walks the path's parents and
        # fails on a path without '/' (MarshallingError).
        set_err(o, next(xs), Err.NO_WATCHER)
        return out

    check_matrix.expect("WatcherType semantics of 3.9 (ZOOKEEPER-4471/4472)", check_matrix_39)

    # removeWatches: one fresh path per (kind, type), so removals do not interact.
    rm_cases = [(k, t) for k in kinds for t in types]
    rm_path = {(k, t): p("rm", f"{k}-{t}") for k, t in rm_cases}
    run.step("nodes for the removeWatches matrix", "A", [create(p("rm"))] + [create(rm_path[c]) for c in rm_cases])
    run.step("one kind of watch per removeWatches path", "X",
             [r for k, t in rm_cases for r in setup_watch(rm_path[(k, t)], k)])
    rm_matrix = run.step("removeWatches: every kind x every WatcherType", "X",
                         [removew(rm_path[c], c[1]) for c in rm_cases]
                         + [removew("bad", WatcherType.ANY), removew(p("rm", "missing"), WatcherType.CHILDREN)])

    def rm_matrix_39(out):
        o = out["X"]
        for x, (k, t) in zip(rm_matrix.xids, rm_cases):
            set_err(o, x, result_39(k, t))
        return out

    rm_matrix.expect("WatcherType semantics of 3.9 (ZOOKEEPER-4471/4472)", rm_matrix_39)

    # What is left fires on writes: setData(path) then create(path/x), for every path.
    triggers = [r for c in rm_cases for r in (setdata(rm_path[c], b"t"), create(rm_path[c] + "/x"))]
    fired = run.step("writes on every removeWatches path", "X", triggers)

    def remaining_39(kind, wtype):
        """The watch kind left on the path after removeWatches(wtype) in 3.9."""
        return None if holds_39(kind, wtype) else kind

    def fired_39(out):
        # Rebuilt from the 3.9 model: Apache's replies, preceded by the events the watch
        # left on each path fires (data: NodeDataChanged once; child: NodeChildrenChanged
        # once; persistent: both; recursive: NodeDataChanged and NodeCreated of the child).
        o = out["X"]
        replies = [(f, op) for f, op in zip(o.frames, o.ops) if op is not None]
        frames, ops = [], []
        xs = iter(fired.xids)
        for c in rm_cases:
            left = remaining_39(*c)
            path = rm_path[c]
            for action in ("set", "create"):
                x = next(xs)
                if action == "set" and left in ("data", "persistent", "recursive"):
                    frames.append(mevent(Event.NODE_DATA_CHANGED, path))
                    ops.append(None)
                if action == "create" and left in ("child", "persistent"):
                    frames.append(mevent(Event.NODE_CHILDREN_CHANGED, path))
                    ops.append(None)
                if action == "create" and left == "recursive":
                    frames.append(mevent(Event.NODE_CREATED, path + "/x"))
                    ops.append(None)
                f, op = next((f, op) for f, op in replies if frame_xid(f) == x)
                frames.append(f)
                ops.append(op)
        frames.append(replies[-1][0])  # the barrier ping
        ops.append(Op.PING)
        o.frames, o.raw, o.ops, o.sw = frames, list(frames), ops, set()
        return out

    fired.expect("watches left by 3.9's removeWatches (ZOOKEEPER-4471/4472)", fired_39)

    # ---------------------------------------------------------------- reconnect ---------
    run.step("nodes for the reconnect scenario", "A", [
        create(p("re")), create(p("re", "d1")), create(p("re", "d2")), create(p("re", "d3")),
        create(p("re", "d4")), create(p("re", "keep")),
    ])
    run.connect("connect W", "W")
    run.step("W sets watches of every kind", "W", [
        getdata(p("re", "d1"), True), getdata(p("re", "d2"), True), getdata(p("re", "d3"), True),
        exists(p("re", "e1"), True), exists(p("re", "e2"), True), children(p("re"), True),
        children(p("re", "keep"), True), addwatch(p("re", "pers"), AddWatchMode.PERSISTENT),
        addwatch(p("re", "rec"), AddWatchMode.PERSISTENT_RECURSIVE),
    ])
    run.drop("W")
    run.step("writes while W is disconnected", "A", [
        setdata(p("re", "d1"), b"x"), delete(p("re", "d2")), create(p("re", "e1")),
    ])
    # What ClientCnxn.primeConnection sends: ConnectRequest with the session, then
    # setWatches2 (xid -8) (and the auth packets, which Apache answers straight from the
    # connection thread, ahead of the request pipeline: their place among the replies is
    # racy there, so auth gets its own step below), in one go, before any answer.
    run.connect("reconnect W with its session; setWatches2 pipelined", "W", resume="W", reqs=[
        rq(Op.SET_WATCHES2, set_watches2_body(
            run.conns["W"].last_zxid,
            data=[p("re", "d1"), p("re", "d2"), p("re", "d3")],
            exist=[p("re", "e1"), p("re", "e2")],
            child=[p("re"), p("re", "keep")],
            persistent=[p("re", "pers")],
            recursive=[p("re", "rec")],
        )),
        rq(Op.WHO_AM_I),
    ])
    run.step("auth after the reconnect", "W", [rq(Op.AUTH, auth_body("digest", b"alice:secret")), rq(Op.WHO_AM_I)])
    run.step("writes after the reconnect fire the restored watches", "A", [
        setdata(p("re", "d3"), b"x"), create(p("re", "e2")), create(p("re", "keep", "k")),
        create(p("re", "pers")), create(p("re", "rec")), create(p("re", "rec", "x")),
    ], watchers=["W"])
    run.step("setWatches (101) with relativeZxid 0", "B", [
        rq(Op.SET_WATCHES, set_watches_body(
            0,
            data=[p("a"), p("gone"), p("acl-alice")],  # acl-alice: B lacks READ
            exist=[p("b"), p("later")],
            child=[R, p("gone2")],
        )),
    ])
    run.step("a write fires the watch setWatches registered", "A", [create(p("later"))], watchers=["B"])
    run.connect("reconnect with a bad password", "BADPW", session_id=run.conns["W"].session_id,
                passwd=b"\x01" * 16, close=True)
    run.connect("reconnect with an unknown session id", "NOSESS", session_id=0x7F00000000001234,
                passwd=b"\x00" * 16, close=True)
    run.connect("connect with a lastZxidSeen the server has not reached", "AHEAD", last_zxid=1 << 40,
                close=True)
    # ZooKeeper closes the session's old connection (ZooKeeperServer.processConnectRequest:
    # serverCnxnFactory.closeSession(sessionId, CLIENT_RECONNECT)): W's outcome is the close.
    moved = run.connect("connect W2 on W's session while W is connected", "W2", resume="W", read_only=None)
    moved.outcomes["W"] = run._outcome(run.conns["W"], run.conns["W"].client.read_to_close(CLOSE_WAIT), {})
    run.step("the moved session still works", "W2", [getdata(p("re", "d1")), rq(Op.WHO_AM_I)])

    # ---------------------------------------------------------------- closeSession ------
    run.connect("connect E", "E")
    run.step("E creates ephemerals", "E", [
        create(p("eph")), create(p("eph", "e1"), b"1", flags=CreateMode.EPHEMERAL),
        create(p("eph", "e2-"), flags=CreateMode.EPHEMERAL_SEQUENTIAL, op=Op.CREATE2),
        rq(Op.GET_EPHEMERALS, path_body(p("eph"))),
    ])
    # Only one of E's two ephemerals is watched: ZooKeeper deletes a closing session's
    # ephemerals in the iteration order of a HashSet (PrepRequestProcessor closeSession),
    # so events of two deletions have no defined order.
    run.step("A watches one of E's ephemerals", "A", [exists(p("eph", "e1"), True)])
    run.step("closeSession: reply, then the server closes", "E", [rq(Op.CLOSE_SESSION)], close=True)
    run.step("ephemerals are gone after closeSession", "A", [
        children(p("eph")), exists(p("eph", "e1")), rq(Op.SYNC, path_body("/")),
    ])
    run.connect("reconnect to the closed session", "E2", resume="E", close=True)
    run.connect("connect E3", "E3")
    run.step("E3 creates one ephemeral", "E3", [create(p("eph", "only"), flags=CreateMode.EPHEMERAL)])
    run.step("A watches it and its parent", "A", [getdata(p("eph", "only"), True), children(p("eph"), True)])
    run.step("closeSession of E3 with the closeSession pipelined behind a read", "E3", [
        getdata(p("eph", "only")), rq(Op.CLOSE_SESSION),
    ], close=True)
    run.step("events of E3's close", "A", [rq(Op.SYNC, path_body("/"))])

    # ---------------------------------------------------------------- expiry ------------
    run.connect("connect Z with the minimum timeout", "Z", timeout_ms=1000)
    run.step("Z creates an ephemeral", "Z", [create(p("exp")), create(p("exp", "z"), flags=CreateMode.EPHEMERAL)])
    run.step("A watches Z's ephemeral and its parent", "A", [exists(p("exp", "z"), True), children(p("exp"), True)])
    run.drop("Z")
    time.sleep(EXPIRY_WAIT)  # both servers expire Z meanwhile (timeout 1000 ms, tick 500 ms)
    run.step("after Z's session expired: its ephemeral is gone, with events", "A", [
        children(p("exp")), rq(Op.SYNC, path_body("/")),
    ])
    run.connect("reconnect to the expired session", "Z2", resume="Z", close=True)

    # ---------------------------------------------------------------- bad input ---------
    # Each on a fresh connection: the servers may close it.
    for k, (name, reqs) in enumerate([
        ("truncated getData body", [rq(Op.GET_DATA, p_int(10) + b"/a")]),
        ("truncated exists body (no watch flag)", [rq(Op.EXISTS, p_string(p("a")))]),
        ("truncated getChildren2 body", [rq(Op.GET_CHILDREN2, b"\x00\x00")]),
        ("truncated create body", [rq(Op.CREATE, p_string(p("zz")) + p_int(5))]),
        ("truncated setData body", [rq(Op.SET_DATA, p_string(p("a")))]),
        ("truncated setWatches body", [rq(Op.SET_WATCHES, p_long(0))]),
        ("truncated multi body", [rq(Op.MULTI, p_int(Op.CREATE) + b"\x00")]),
        ("truncated checkWatches body", [rq(Op.CHECK_WATCHES, p_string(p("a")))]),
        ("null path in getData", [rq(Op.GET_DATA, p_int(-1) + b"\x00")]),
        ("null path in create", [rq(Op.CREATE, p_int(-1) + p_buffer(b"") + p_int(0) + p_int(0))]),
        ("request body with trailing bytes", [rq(Op.GET_DATA, path_watch_body(p("a")) + b"junk")]),
    ]):
        label = f"BAD{k}"
        run.connect(f"connect {label}", label)
        run.step(name, label, reqs)
    for k, (name, raw) in enumerate([
        ("a frame shorter than a RequestHeader", frame(p_int(1))),
        ("a negative frame length", p_int(-5)),
        ("a frame length beyond jute.maxbuffer", p_int(0x7FFFFFFF)),
    ]):
        label = f"RAW{k}"
        run.connect(f"connect {label}", label)
        run.step(name, label, [], raw=raw, close=True)

    # ---------------------------------------------------------------- unknown opcodes ---
    run.connect("connect U", "U")
    # Alone in its write: Apache answers (UnimplementedRequestProcessor) and closes, and
    # whether it still answers requests pipelined behind it is a race there.
    run.step("unknown opcode 99: answered, then the connection closes", "U", [rq(99)], close=True)
    run.connect("connect U2", "U2")
    run.step("notification opcode 0 as a request", "U2", [rq(Op.NOTIFICATION)], close=True)
    run.connect("connect U3", "U3")
    run.step("opcode -1 (error) as a request", "U3", [rq(Op.ERROR)], close=True)
    # createSession (-10) is a valid Request type for ZooKeeper (Request.isValid): with an
    # empty body PrepRequestProcessor cannot read its CreateSessionTxn (MarshallingError);
    # with a CreateSessionTxn{timeOut} FinalRequestProcessor calls finishSessionInit again,
    # which sends a second ConnectResponse for the connection's own session.
    run.connect("connect CS", "CS")
    cs = run.step("createSession (-10) with an empty body", "CS", [rq(Op.CREATE_SESSION)])
    run.connect("connect CS2", "CS2")
    cs2 = run.step("createSession (-10) with a CreateSessionTxn body", "CS2",
                   [rq(Op.CREATE_SESSION, create_session_body(5000))])
    create_session_reason = (
        "a createSession request on an open session makes ZooKeeper log a second "
        "CreateSessionTxn for that session (PrepRequestProcessor) with whatever timeout the "
        "body names, unnegotiated, which is what a restarted server restores, and send a "
        "second ConnectResponse no client expects; Ferrokeeper treats the handshake opcode "
        "as a request a client must not send: Unimplemented, then the connection closes"
    )
    cs.differs(create_session_reason, lambda out: refused_as_unknown(out, "CS", cs.xids[0]))
    cs2.differs(create_session_reason, lambda out: refused_as_unknown(out, "CS2", cs2.xids[0], at=0))
    run.connect("connect DC", "DC")
    dc = run.step("deleteContainer (20) sent by a client", "DC", [
        rq(Op.DELETE_CONTAINER, delete_container_body(p("c"))), exists(p("c")),
    ])
    dc_xids = dc.xids
    dc.differs(
        "3.9 accepts deleteContainer (20) from any client and deletes an empty container or "
        "TTL node with no ACL check at all (PrepRequestProcessor checks only children and "
        "node type), so any session could delete nodes it has no DELETE permission on; "
        "Ferrokeeper keeps the opcode to its own container reaper: a client sending it gets "
        "Unimplemented and the connection closes, as for other opcodes a client must not send",
        lambda out: refused_as_unknown(out, "DC", dc_xids[0]),
    )

    # ---------------------------------------------------------------- Ferrokeeper's bounds
    run.connect("connect WB", "WB")
    wb = run.step(f"{WATCH_BOUND + 1} watches on one connection", "WB",
                  [exists(p("wb", str(i)), True) for i in range(WATCH_BOUND + 1)])

    def watch_bound(out):
        # The request that would exceed the bound is answered, then the connection closes.
        o = out["WB"]
        remove_frame(o, index_of(o, Xid.PING))
        o.closed = True
        return out

    wb.differs(
        f"ferrokeeper.maxWatchesPerConnection (set to {WATCH_BOUND} here, 1,000,000 by default): "
        "watches are memory a client could grow without limit; ZooKeeper has no such bound",
        watch_bound,
    )
    run.connect("connect AB", "AB")
    ab = run.step(f"{AUTH_IDS_BOUND} distinct digest ids on one connection", "AB",
                  [rq(Op.AUTH, auth_body("digest", f"user{i}:pw".encode())) for i in range(AUTH_IDS_BOUND)])

    def auth_bound(out):
        # Ids include the connection's ip id: the 128th digest would be id 129 and gets
        # AUTHFAILED (the auth replies all carry xid -4: the last one is the refused one).
        o = out["AB"]
        remove_frame(o, index_of(o, Xid.PING))
        f = o.frames[-1]
        o.frames[-1] = o.raw[-1] = f[:16] + p_int(Err.AUTH_FAILED)
        o.closed = True
        return out

    ab.differs(
        f"limits::AUTH_IDS_PER_CONNECTION_MAX ({AUTH_IDS_BOUND} ids, the ip id included): each id is "
        "scanned by every ACL check of the connection; ZooKeeper has no such bound",
        auth_bound,
    )

    # ---------------------------------------------------------------- the end -----------
    run.step("closeSession of A (auth, watches, ephemerals)", "A", [rq(Op.CLOSE_SESSION)], close=True,
             watchers=["B"])


# --------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------


def run_script(server) -> Run:
    run = Run(server, ROOT)
    try:
        script(run)
    finally:
        run.close_all()
    return run


@pytest.fixture(scope="module")
def apache_run(server_factory):
    return run_script(server_factory("apache", COMMON_CFG))


def _report(problems, ref, other, tmp_path, names):
    a, b = names
    pa, pb = tmp_path / f"byte_exact_{a}.txt", tmp_path / f"byte_exact_{b}.txt"
    dump(ref, pa)
    dump(other, pb)
    steps = sorted({pr.split("]")[0] for pr in problems})
    return (
        f"{len(problems)} differences in {len(steps)} steps (root {ROOT}); transcripts: {pa} {pb}\n\n"
        + "\n\n".join(problems)
    )


def test_byte_exact(apache_run, server_factory, tmp_path):
    ferro = run_script(server_factory("ferrokeeper", COMMON_CFG))
    problems = compare_runs(apache_run, ferro, apply_expectations=True)
    assert not problems, _report(problems, apache_run, ferro, tmp_path, ("apache", "ferrokeeper"))


def test_apache_against_itself(apache_run, server_factory, tmp_path):
    """The script on a second fresh Apache: the masked transcripts must be identical."""
    again = run_script(server_factory("apache", COMMON_CFG))
    problems = compare_runs(apache_run, again, apply_expectations=False, names=("apache", "apache#2"))
    assert not problems, _report(problems, apache_run, again, tmp_path, ("apache", "apache2"))
