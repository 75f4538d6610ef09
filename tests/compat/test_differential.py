"""Differential test: the same seeded random operations against Apache ZooKeeper and B.

Server A is always Apache ZooKeeper 3.8; server B is Ferrokeeper unless DIFF_B=apache
(an Apache-vs-Apache run proves the harness itself, masking included, is deterministic).
Both are started here, independently of COMPAT_TARGET, fresh for this module, with the
same zoo.cfg.

For every seed the generator produces DIFF_OPS operations; each is executed on A and
then on B (lockstep) through kazoo, by one of three clients per server (anonymous,
digest alice, digest bob).  Every op is compared twice:

* decoded: its result normalized -- exception class name, or paths / data / sorted
  children / ACLs / stat fields without times and zxids, the ephemeralOwner mapped to
  "none" or the owning client's session label (readable, and what the generator
  learns from);
* byte for byte: every frame the op made a server send (the reply, the auth reply, and
  for a reconnect the old session's close reply, the new ConnectResponse and its auth
  replies), captured raw from kazoo's connection reader (``Capture``: kazoo's own
  deserializers are lenient -- trailing bytes, -1 versus 0 lengths -- so a body-length
  mismatch would slip through the decoded comparison).  Frames are masked structurally
  (each reply decoded by zkwire with the layout of the request it answers) in only what
  must differ between two servers, the way test_byte_exact.py does: zxids (reply header,
  Stat czxid/mzxid/pzxid) become ``ZXID`` + their ordinal within the record (0 and -1
  kept), ctime/mtime ``TIME`` (0 kept), session ids and ephemeralOwners of the run's
  sessions ``SESS`` + the owning client's label, a non-zero ConnectResponse password
  ``PASSWD``; children vectors (a Java HashSet in ZooKeeper) are sorted.  Everything
  else must match: lengths, null versus empty, error codes, xids, every Stat field.
  Pings (kazoo sends them on its own schedule) are left out.

The first op whose results or masked frames differ fails the test, printed with both
results, the differing frames in hex with the first differing byte offset and the field
there, and the ops leading to it; both transcripts (with the masked frames) are written
to files as well.

Requests are sent with kazoo's own request records through KazooClient._call so that
paths reach the server verbatim (kazoo's public API normalizes "a", "/a/" or "/a//b"
client-side), plus two small request records kazoo lacks (createContainer and
createTTL).  Multis use kazoo's public ``client.transaction()`` and, for paths kazoo
would normalize, a raw Transaction record.

Kept out on purpose (nondeterministic or known 3.8/3.9 differences):
  * exists on nodes whose ACL may deny READ (3.9.2+ checks READ on exists): all
    ACL-changing operations happen in the "acl" zone, where exists is never issued;
  * container / TTL reaping (timing dependent): TTLs are >= 1 hour and the container
    check interval is set to 10 minutes, far beyond the run;
  * create requests with a create mode the opcode does not support (Apache 3.8 may
    crash or create odd nodes), and successful creates at the top level (the root's
    stat is never compared; only "/" and "/zookeeper" themselves are hit, with errors);
  * create2 inside a multi (3.9 answers it with a Create2Response, 3.8 with a
    CreateResponse, ZOOKEEPER-4026): multis create with opcode create only.

Worth knowing when reading a transcript: Apache reports ephemeralOwner 0 ("none") for
container and TTL nodes -- the special owner values are internal to the server.

Environment: DIFF_SEEDS (default "1,2,3"), DIFF_OPS (default 300), DIFF_B
(ferrokeeper|apache, default ferrokeeper), DIFF_B_CFG ("key=value;key=value" extra
zoo.cfg lines for B only, e.g. to prove a real difference is caught:
`DIFF_B_CFG="maxSessionTimeout=8000"` fails at the first reconnect, byte level only,
at the ConnectResponse's timeOut).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import struct
import time
from collections import namedtuple
from dataclasses import dataclass, field

import pytest
from kazoo.client import KazooClient
from kazoo.protocol.connection import PING_XID
from kazoo.protocol.serialization import (
    CheckVersion,
    Connect,
    Create,
    Create2,
    Delete,
    Exists,
    GetACL,
    GetChildren,
    GetChildren2,
    GetData,
    SetACL,
    SetData,
    Sync,
    Transaction,
    int_struct,
    long_struct,
    read_string,
    stat_struct,
    write_buffer,
    write_string,
)
from kazoo.exceptions import NoNodeError
from kazoo.protocol.states import ZnodeStat
from kazoo.security import ACL, Id, make_digest_acl

from zkwire import (
    CONNECT,
    OP_NAMES,
    SESS_PH,
    ZXID_PH,
    decode_frame,
    mask_frame,
)
from zkwire import describe as describe_fields

SEEDS = [int(s) for s in os.environ.get("DIFF_SEEDS", "1,2,3").split(",") if s.strip()]
OPS = int(os.environ.get("DIFF_OPS", "300"))
KIND_A = "apache"
KIND_B = os.environ.get("DIFF_B", "ferrokeeper").strip().lower()
OP_TIMEOUT = 10.0

# Both servers: no container/TTL reaping during the run (Apache gets it as -D, see servers.py).
COMMON_CFG = {"znode.container.checkIntervalMs": "600000"}


def _parse_cfg(text: str) -> dict:
    cfg = {}
    for item in text.split(";"):
        if item.strip():
            key, _, value = item.partition("=")
            cfg[key.strip()] = value.strip()
    return cfg


B_EXTRA_CFG = _parse_cfg(os.environ.get("DIFF_B_CFG", ""))

# --------------------------------------------------------------------------------------
# Request records kazoo does not ship (opcodes 19 and 21), built on kazoo's serializers.
# --------------------------------------------------------------------------------------


def _create_request_body(path, data, acl, flags) -> bytearray:
    body = bytearray()
    body.extend(write_string(path))
    body.extend(write_buffer(data))
    body.extend(int_struct.pack(len(acl)))
    for entry in acl:
        body.extend(int_struct.pack(entry.perms))
        body.extend(write_string(entry.id.scheme))
        body.extend(write_string(entry.id.id))
    body.extend(int_struct.pack(flags))
    return body


def _read_path_and_stat(buffer, offset):
    path, offset = read_string(buffer, offset)
    return path, ZnodeStat._make(stat_struct.unpack_from(buffer, offset))


class CreateContainer(namedtuple("CreateContainer", "path data acl flags")):
    type = 19

    def serialize(self):
        return _create_request_body(self.path, self.data, self.acl, self.flags)

    @classmethod
    def deserialize(cls, buffer, offset):
        return _read_path_and_stat(buffer, offset)


class CreateTTL(namedtuple("CreateTTL", "path data acl flags ttl")):
    type = 21

    def serialize(self):
        body = _create_request_body(self.path, self.data, self.acl, self.flags)
        body.extend(long_struct.pack(self.ttl))
        return body

    @classmethod
    def deserialize(cls, buffer, offset):
        return _read_path_and_stat(buffer, offset)


# --------------------------------------------------------------------------------------
# Identities and ACLs
# --------------------------------------------------------------------------------------

USERS = {"alice": "secret", "bob": "hunter2", "carol": "pw"}
CLIENT_AUTH = {0: [], 1: ["alice:secret"], 2: ["bob:hunter2"]}
N_CLIENTS = len(CLIENT_AUTH)

WORLD = Id("world", "anyone")
ALICE_ALL = make_digest_acl("alice", "secret", all=True)
BOB_RWC = make_digest_acl("bob", "hunter2", read=True, write=True, create=True)
CAROL_ALL = make_digest_acl("carol", "pw", all=True)
OPEN = [ACL(31, WORLD)]

ACL_CHOICES = [
    ("open", OPEN),
    ("world-r", [ACL(1, WORLD)]),
    ("world-rcd", [ACL(1 | 4 | 8, WORLD)]),
    ("world-cd", [ACL(4 | 8, WORLD)]),
    ("world-admin", [ACL(16, WORLD)]),
    ("world-none", [ACL(0, WORLD)]),
    ("alice", [ALICE_ALL]),
    ("alice+world-r", [ALICE_ALL, ACL(1, WORLD)]),
    ("bob-rwc+alice-admin", [BOB_RWC, ACL(16, ALICE_ALL.id)]),
    ("carol", [CAROL_ALL]),
    ("auth", [ACL(31, Id("auth", ""))]),
    ("ip-local", [ACL(31, Id("ip", "127.0.0.1"))]),
    ("ip-other+alice", [ACL(1, Id("ip", "10.0.0.0/8")), ALICE_ALL]),
    ("alice-twice", [ALICE_ALL, ALICE_ALL]),
    ("empty", []),
    ("digest-no-hash", [ACL(31, Id("digest", "alice"))]),
    ("unknown-scheme", [ACL(31, Id("foo", "bar"))]),
    ("world-nobody", [ACL(31, Id("world", "nobody"))]),
]

# --------------------------------------------------------------------------------------
# Raw frames: what each server sent, captured from kazoo's connection reader
# --------------------------------------------------------------------------------------

OWNER_MASK = (1 << 64) - 1


class _RecordingConnect:
    """Stands in for kazoo's Connect record in ConnectionHandler._invoke: serializes the
    same bytes and hands the raw ConnectResponse to the capture before kazoo decodes it."""

    type = None

    def __init__(self, capture, connect):
        self.capture = capture
        self.connect = connect

    def serialize(self):
        return self.connect.serialize()

    def deserialize(self, payload, offset):
        self.capture.record(CONNECT, int_struct.pack(len(payload)) + bytes(payload))
        return self.connect.deserialize(payload, offset)

    def __repr__(self):
        return repr(self.connect)


class Capture:
    """Every frame one KazooClient's connection reads, whole (length prefix included),
    with the opcode of the request it answers, pings left out.

    kazoo reads a reply as one ConnectionHandler._read_header call (4-byte length, then
    the payload) and a ConnectResponse through _invoke; the opcode comes from _submit,
    which sees every request with its xid.  The hooks are instance attributes installed
    before the client starts, so nothing of kazoo's own behaviour changes.  Frames are
    appended by kazoo's connection thread before it completes the request's async
    result, so after result.get() the reply is here."""

    def __init__(self, label: str, client: KazooClient):
        self.label = label
        self.frames: list[tuple[object, bytes]] = []
        self.cursor = 0  # frames before it were handed out by take()
        self.closed = False
        self.xid_ops: dict[int, int] = {}
        conn = client._connection
        submit, read_header, invoke = conn._submit, conn._read_header, conn._invoke

        def hooked_submit(request, timeout, xid=None):
            if xid:
                self.xid_ops[xid] = request.type
            return submit(request, timeout, xid)

        def hooked_read_header(timeout):
            header, payload, offset = read_header(timeout)
            if header.xid != PING_XID:
                op = self.xid_ops.get(header.xid)
                self.record(op, int_struct.pack(len(payload)) + bytes(payload))
            return header, payload, offset

        def hooked_invoke(timeout, request, xid=None):
            if isinstance(request, Connect):
                request = _RecordingConnect(self, request)
            return invoke(timeout, request, xid)

        conn._submit = hooked_submit
        conn._read_header = hooked_read_header
        conn._invoke = hooked_invoke

    def record(self, op, frame: bytes) -> None:
        self.frames.append((op, frame))

    def take(self) -> list[tuple[object, bytes]]:
        out = self.frames[self.cursor :]
        self.cursor += len(out)
        return out


@dataclass(frozen=True)
class Frame:
    """One captured frame of an op: connection label, request opcode, masked bytes (what
    is compared) and the raw bytes (for descriptions only)."""

    conn: str
    op: object
    masked: bytes
    raw: bytes = field(compare=False, repr=False)


def opname(op) -> str:
    if op == CONNECT:
        return "connectResponse"
    if op is None:
        return "unknown request"
    return OP_NAMES.get(op, str(op))


# --------------------------------------------------------------------------------------
# One server with its clients
# --------------------------------------------------------------------------------------


class Side:
    def __init__(self, label: str, server):
        self.label = label
        self.server = server
        self.clients: list[KazooClient | None] = [None] * N_CLIENTS
        self.generation = [0] * N_CLIENTS
        self.session_labels: dict[int, str] = {}
        self.captures: list[Capture] = []

    def open_client(self, k: int) -> None:
        label = f"c{k}.{self.generation[k] + 1}"
        client = KazooClient(hosts=self.server.hosts, timeout=10.0)
        self.captures.append(Capture(label, client))
        client.start(timeout=15)
        for cred in CLIENT_AUTH[k]:
            client.add_auth("digest", cred)
        self.generation[k] += 1
        self.session_labels[client.client_id[0] & OWNER_MASK] = label
        self.clients[k] = client

    def close_client(self, k: int) -> None:
        client = self.clients[k]
        self.clients[k] = None
        if client is not None:
            label = f"c{k}.{self.generation[k]}"
            for capture in self.captures:
                if capture.label == label:
                    capture.closed = True  # stop() returns once the close reply was read
            try:
                client.stop()
            finally:
                client.close()

    def close_all(self) -> None:
        for k in range(N_CLIENTS):
            self.close_client(k)

    def call(self, k: int, request):
        client = self.clients[k]
        result = client.handler.async_result()
        client._call(request, result)
        return result.get(timeout=OP_TIMEOUT)

    # -- raw frames ------------------------------------------------------------------
    def session_code(self, raw: int):
        """A session's placeholder number: the same client label gives the same number on
        both sides (c<k>.<generation> -> (k + 1) << 16 | generation)."""
        label = self.session_labels.get(raw & OWNER_MASK)
        if label is None:
            return None
        k, gen = label[1:].split(".")
        return (int(k) + 1) << 16 | int(gen)

    def take_frames(self) -> list[Frame]:
        """The frames every connection received since the last call, masked, connection
        by connection in the order the clients were opened; closed ones are dropped."""
        out = []
        for capture in self.captures:
            for op, raw in capture.take():
                out.append(Frame(capture.label, op, mask_frame(raw, op, self.session_code), raw))
        self.captures = [c for c in self.captures if not c.closed]
        return out

    # -- normalization ---------------------------------------------------------------
    def owner(self, raw: int) -> str:
        raw &= OWNER_MASK
        if raw == 0:
            return "none"
        if raw in self.session_labels:
            return "session:" + self.session_labels[raw]
        return f"raw:{raw:#x}"

    def stat(self, st) -> list | None:
        if st is None:
            return None
        return [
            "stat",
            st.version,
            st.cversion,
            st.aversion,
            st.dataLength,
            st.numChildren,
            self.owner(st.ephemeralOwner),
        ]


def norm_data(data):
    if data is None:
        return None
    if len(data) <= 32:
        return data.hex()
    return f"{len(data)} bytes, sha1 {hashlib.sha1(data).hexdigest()[:16]}"


def norm_acls(acls):
    return [[a.perms, a.id.scheme, a.id.id] for a in acls]


def normalize(side: Side, kind: str, value):
    """JSON-able, server-independent form of one op's outcome."""
    if isinstance(value, BaseException):
        return ["error", type(value).__name__]
    if kind in ("create",):
        return ["path", value]
    if kind in ("create2", "container", "ttl"):
        path, st = value
        return ["path", path, side.stat(st)]
    if kind in ("exists", "set", "set_acls"):
        return side.stat(value)
    if kind == "get":
        data, st = value
        return ["data", norm_data(data), side.stat(st)]
    if kind == "children":
        return ["children", sorted(value)]
    if kind == "children2":
        children, st = value
        return ["children", sorted(children), side.stat(st)]
    if kind == "get_acls":
        acls, st = value
        return ["acls", norm_acls(acls), side.stat(st)]
    if kind in ("multi", "raw_multi"):
        out = []
        for item in value:
            if isinstance(item, BaseException):
                out.append(["error", type(item).__name__])
            elif isinstance(item, ZnodeStat):
                out.append(side.stat(item))
            elif isinstance(item, str):
                out.append(["path", item])
            else:
                out.append(item)
        return ["multi", out]
    return value  # delete -> True, sync -> path, auth/reconnect -> "ok"


# --------------------------------------------------------------------------------------
# Operations
# --------------------------------------------------------------------------------------

Op = namedtuple("Op", "client kind args")
CREATES = ("create", "create2", "container", "ttl")


def execute(side: Side, op: Op):
    """Run op on one side; returns the raw result or the exception raised."""
    k, kind, a = op.client, op.kind, op.args
    try:
        if kind == "create":
            return side.call(k, Create(a["path"], a["data"], a["acl"], a["flags"]))
        if kind == "create2":
            return side.call(k, Create2(a["path"], a["data"], a["acl"], a["flags"]))
        if kind == "container":
            return side.call(k, CreateContainer(a["path"], a["data"], OPEN, 4))
        if kind == "ttl":
            return side.call(k, CreateTTL(a["path"], a["data"], OPEN, a["flags"], a["ttl"]))
        if kind == "delete":
            return side.call(k, Delete(a["path"], a["version"]))
        if kind == "exists":
            return side.call(k, Exists(a["path"], None))
        if kind == "get":
            return side.call(k, GetData(a["path"], None))
        if kind == "set":
            return side.call(k, SetData(a["path"], a["data"], a["version"]))
        if kind == "children":
            return side.call(k, GetChildren(a["path"], None))
        if kind == "children2":
            return side.call(k, GetChildren2(a["path"], None))
        if kind == "get_acls":
            return side.call(k, GetACL(a["path"]))
        if kind == "set_acls":
            return side.call(k, SetACL(a["path"], a["acl"], a["version"]))
        if kind == "sync":
            return side.call(k, Sync(a["path"]))
        if kind == "multi":
            tx = side.clients[k].transaction()
            for sub in a["ops"]:
                verb, path = sub[0], sub[1]
                if verb == "create":
                    tx.create(path, sub[2], acl=sub[4], ephemeral=bool(sub[3] & 1),
                              sequence=bool(sub[3] & 2))
                elif verb == "delete":
                    tx.delete(path, sub[2])
                elif verb == "set":
                    tx.set_data(path, sub[2], sub[3])
                elif verb == "check":
                    tx.check(path, sub[2])
            return tx.commit_async().get(timeout=OP_TIMEOUT)
        if kind == "raw_multi":
            records = []
            for sub in a["ops"]:
                verb, path = sub[0], sub[1]
                if verb == "create":
                    records.append(Create(path, sub[2], sub[4], sub[3]))
                elif verb == "delete":
                    records.append(Delete(path, sub[2]))
                elif verb == "set":
                    records.append(SetData(path, sub[2], sub[3]))
                elif verb == "check":
                    records.append(CheckVersion(path, sub[2]))
            return side.call(k, Transaction(records))
        if kind == "add_auth":
            side.clients[k].add_auth_async("digest", a["cred"]).get(timeout=OP_TIMEOUT)
            return "ok"
        if kind == "reconnect":
            side.close_client(k)
            side.open_client(k)
            return "ok"
    except Exception as e:  # the exception class is the result
        return e
    raise ValueError(f"unknown op kind {kind!r}")


def acl_name(acl):
    return next((name for name, choice in ACL_CHOICES if choice == acl), norm_acls(acl))


def describe(op: Op) -> str:
    args = {}
    for key, value in op.args.items():
        if key == "acl":
            value = acl_name(value)
        elif key == "ops":
            value = [
                [
                    acl_name(x) if j == 4 else norm_data(x) if isinstance(x, bytes) else x
                    for j, x in enumerate(sub)
                ]
                for sub in value
            ]
        elif isinstance(value, bytes):
            value = norm_data(value)
        args[key] = value
    return f"c{op.client} {op.kind} {json.dumps(args, ensure_ascii=False)}"


NAMES = ["a", "b", "c", "d"]
DATA_CHOICES = [None, b"", b"x", b"hello", b"\x00\xff\x01", "ünïcode".encode()]


class Generator:
    """Seeded op generator; learns existing paths and versions from A's results."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.base = f"/diff-{seed}"
        self.zones = {"open": self.base + "/open", "acl": self.base + "/acl"}
        self.known = {"open": set(), "acl": set()}  # every path ever seen
        self.existing = {"open": set(), "acl": set()}  # what A's answers suggest exists now
        self.versions: dict[str, tuple[int, int]] = {}

    def setup_ops(self) -> list[Op]:
        return [
            Op(0, "create", {"path": p, "data": b"", "acl": OPEN, "flags": 0})
            for p in (self.base, self.zones["open"], self.zones["acl"])
        ]

    # -- learning from A -------------------------------------------------------------
    def zone_of(self, path):
        for zone, root in self.zones.items():
            if isinstance(path, str) and path.startswith(root + "/"):
                return zone
        return None

    def learn_path(self, path, st=None):
        zone = self.zone_of(path)
        if zone is not None and "//" not in path and not path.endswith("/"):
            self.known[zone].add(path)
            self.existing[zone].add(path)
            if st is not None:
                self.versions[path] = (st.version, st.aversion)

    def forget_path(self, path):
        zone = self.zone_of(path)
        if zone is not None:
            self.existing[zone] = {
                p for p in self.existing[zone] if p != path and not p.startswith(path + "/")
            }

    def learn(self, op: Op, result) -> None:
        path = op.args.get("path")
        kind = op.kind
        if isinstance(result, NoNodeError) and kind not in CREATES:
            self.forget_path(path)
        if isinstance(result, BaseException):
            return
        if kind == "delete" or (kind == "exists" and result is None):
            self.forget_path(path)
        elif kind == "create":
            self.learn_path(result)
        elif kind in ("create2", "container", "ttl"):
            self.learn_path(result[0], result[1])
        elif kind in ("exists", "set", "set_acls") and result is not None:
            self.learn_path(path, result)
        elif kind in ("get", "get_acls"):
            self.learn_path(path, result[1])
        elif kind in ("children", "children2"):
            children = result[0] if kind == "children2" else result
            for child in children:
                self.learn_path(f"{path}/{child}")
        elif kind in ("multi", "raw_multi"):
            for sub, item in zip(op.args["ops"], result):
                if isinstance(item, str):
                    self.learn_path(item)
                elif isinstance(item, ZnodeStat):
                    self.learn_path(sub[1], item)
                elif item is True and sub[0] == "delete":
                    self.forget_path(sub[1])

    # -- choices -----------------------------------------------------------------------
    def data(self):
        rng = self.rng
        r = rng.random()
        if r < 0.02:
            return bytes(rng.randrange(256) for _ in range(rng.randrange(1000, 20000)))
        if r < 0.3:
            return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 48)))
        return rng.choice(DATA_CHOICES)

    def fresh_path(self, zone):
        depth = self.rng.choice([1, 1, 2, 2, 3])
        return self.zones[zone] + "".join("/" + self.rng.choice(NAMES) for _ in range(depth))

    def invalid_path(self, zone):
        root = self.zones[zone]
        return self.rng.choice(
            [
                root[1:] + "/a",  # relative
                root + "/a/",  # trailing slash
                root + "//a",  # empty segment
                root + "/./a",
                root + "/../a",
                root + "/a/.",
                root + "/a/..",
                root + "/a\u0001b",  # control character
                root + "/a\u007fb",
                "a",  # the same shapes at the top level (never valid, never created)
                "/a/",
                "/a//b",
                "/a/./b",
            ]
        )

    def path(self, zone, invalid_rate=0.06):
        """Mostly existing nodes, some deleted or never created ones, a few invalid."""
        rng = self.rng
        r = rng.random()
        if r < invalid_rate:
            return self.invalid_path(zone)
        existing = sorted(self.existing[zone])
        if existing and r < 0.7:
            return rng.choice(existing)
        known = sorted(self.known[zone])
        if known and r < 0.82:
            return rng.choice(known)
        return self.fresh_path(zone)

    def create_path(self, zone, invalid_rate=0.06):
        """Usually a new child of an existing node (or of the zone root)."""
        rng = self.rng
        r = rng.random()
        if r < invalid_rate:
            return self.invalid_path(zone)
        if r < 0.8:
            parent = rng.choice(sorted(self.existing[zone]) + [self.zones[zone]] * 3)
            return parent + "/" + rng.choice(NAMES)
        return self.path(zone, invalid_rate=0.0)

    def version(self, path, which=0):
        rng = self.rng
        r = rng.random()
        if r < 0.3:
            return -1
        if r < 0.75 and path in self.versions:
            return self.versions[path][which]
        return rng.randrange(0, 4)

    def acl(self):
        return self.rng.choice(ACL_CHOICES)[1]

    def client(self):
        return self.rng.randrange(N_CLIENTS)

    # -- ops ---------------------------------------------------------------------------
    def next_op(self) -> Op:
        rng = self.rng
        zone = "open" if rng.random() < 0.62 else "acl"
        table = OPEN_ZONE_OPS if zone == "open" else ACL_ZONE_OPS
        kinds, weights = zip(*table)
        kind = rng.choices(kinds, weights)[0]
        return getattr(self, "op_" + kind)(zone)

    def op_create(self, zone):
        rng = self.rng
        path = self.create_path(zone)
        if rng.random() < 0.25:
            path += rng.choice(["-", "/", "_x-"])  # sequential prefixes, odd or not
        if zone == "open":
            flags = rng.choices([0, 1, 2, 3, 7, -1], [30, 15, 15, 10, 1, 1])[0]
            acl = OPEN
        else:
            flags = rng.choices([0, 1, 2, 3], [40, 10, 10, 5])[0]
            acl = self.acl()
        kind = rng.choice(["create", "create2"])
        args = {"path": path, "data": self.data(), "acl": acl, "flags": flags}
        return Op(self.client(), kind, args)

    def op_container(self, zone):
        return Op(self.client(), "container", {"path": self.create_path(zone), "data": self.data()})

    def op_ttl(self, zone):
        rng = self.rng
        # Valid TTLs are long enough never to expire during a run; 0, <0, >= 2^40 are invalid.
        ttl = rng.choices(
            [3_600_000, 86_400_000, (1 << 40) - 1, 0, -5, 1 << 40], [6, 3, 1, 1, 1, 1]
        )[0]
        flags = rng.choice([5, 6])
        args = {"path": self.create_path(zone), "data": self.data(), "flags": flags, "ttl": ttl}
        return Op(self.client(), "ttl", args)

    def op_set(self, zone):
        path = self.path(zone)
        args = {"path": path, "data": self.data(), "version": self.version(path)}
        return Op(self.client(), "set", args)

    def op_delete(self, zone):
        path = self.path(zone)
        return Op(self.client(), "delete", {"path": path, "version": self.version(path)})

    def op_exists(self, zone):
        assert zone == "open", "exists is a 3.8/3.9 difference on READ-protected nodes"
        return Op(self.client(), "exists", {"path": self.path(zone)})

    def op_get(self, zone):
        return Op(self.client(), "get", {"path": self.path(zone)})

    def op_children(self, zone):
        kind = self.rng.choice(["children", "children2"])
        path = self.zones[zone] if self.rng.random() < 0.15 else self.path(zone)
        return Op(self.client(), kind, {"path": path})

    def op_get_acls(self, zone):
        return Op(self.client(), "get_acls", {"path": self.path(zone)})

    def op_set_acls(self, zone):
        assert zone == "acl"
        path = self.path(zone)
        args = {"path": path, "acl": self.acl(), "version": self.version(path, 1)}
        return Op(self.client(), "set_acls", args)

    def op_sync(self, zone):
        return Op(self.client(), "sync", {"path": self.path(zone)})

    def op_multi(self, zone):
        rng = self.rng
        raw = rng.random() < 0.2
        ops = []
        for _ in range(rng.choice([0, 1, 2, 2, 3, 3, 4, 5])):
            verb = rng.choices(["create", "delete", "set", "check"], [4, 2, 2, 2])[0]
            invalid_rate = 0.1 if raw else 0.0
            if verb == "create":
                path = self.create_path(zone, invalid_rate)
            else:
                path = self.path(zone, invalid_rate)
            if verb == "create":
                if rng.random() < 0.2:
                    path += "-"
                acl = OPEN if zone == "open" else self.acl()
                ops.append(("create", path, self.data() or b"", rng.choice([0, 0, 1, 2, 3]), acl))
            elif verb == "delete":
                ops.append(("delete", path, self.version(path)))
            elif verb == "set":
                ops.append(("set", path, self.data() or b"", self.version(path)))
            else:
                ops.append(("check", path, self.version(path)))
        return Op(self.client(), "raw_multi" if raw else "multi", {"ops": ops})

    def op_add_auth(self, zone):
        rng = self.rng
        user = rng.choice(sorted(USERS))
        password = USERS[user] if rng.random() < 0.7 else "wrong"
        return Op(self.client(), "add_auth", {"cred": f"{user}:{password}"})

    def op_reconnect(self, zone):
        return Op(self.client(), "reconnect", {})

    def op_special(self, zone):
        rng = self.rng
        choice = rng.choice(["delete_root", "delete_zk", "create_root", "create_zk", "empty_multi"])
        if choice == "delete_root":
            return Op(self.client(), "delete", {"path": "/", "version": -1})
        if choice == "delete_zk":
            path = rng.choice(["/zookeeper", "/zookeeper/quota"])
            return Op(self.client(), "delete", {"path": path, "version": -1})
        if choice == "create_root":
            return Op(self.client(), "create", {"path": "/", "data": b"", "acl": OPEN, "flags": 0})
        if choice == "create_zk":
            args = {"path": "/zookeeper", "data": b"", "acl": OPEN, "flags": 0}
            return Op(self.client(), "create", args)
        return Op(self.client(), "multi", {"ops": []})


OPEN_ZONE_OPS = [
    ("create", 22),
    ("container", 4),
    ("ttl", 5),
    ("set", 12),
    ("delete", 12),
    ("exists", 8),
    ("get", 8),
    ("children", 7),
    ("get_acls", 3),
    ("sync", 2),
    ("multi", 10),
    ("add_auth", 1),
    ("reconnect", 1.5),
    ("special", 1),
]
ACL_ZONE_OPS = [
    ("create", 25),
    ("set", 10),
    ("delete", 10),
    ("get", 10),
    ("children", 8),
    ("get_acls", 10),
    ("set_acls", 15),
    ("multi", 6),
]

# --------------------------------------------------------------------------------------
# Transcripts
# --------------------------------------------------------------------------------------


@dataclass
class Entry:
    """One op of a transcript: its description, its normalized (decoded) result and the
    frames it made the server send (compared masked)."""

    desc: str
    result: object
    frames: list = field(default_factory=list)  # [Frame]

    def as_json(self) -> dict:
        return {
            "op": self.desc,
            "result": self.result,
            "frames": [[f.conn, opname(f.op), f.masked.hex()] for f in self.frames],
        }


def first_difference(transcript_a, transcript_b):
    """Index of the first differing entry (or of the extra one), or None if identical."""
    for i, (a, b) in enumerate(zip(transcript_a, transcript_b)):
        if a != b:
            return i
    if len(transcript_a) != len(transcript_b):
        return min(len(transcript_a), len(transcript_b))
    return None


def _hex(b: bytes, around: int | None = None, limit: int = 160) -> str:
    """Hex of a frame; a long one as its first 48 bytes and a window around `around`."""
    if len(b) <= limit:
        return b.hex()
    head = b[:48].hex()
    if around is None or around < 48 + 16:
        return f"{head}...({len(b)} bytes)"
    lo = max(48, around - 16)
    return f"{head}...[@{lo}]{b[lo : around + 48].hex()}...({len(b)} bytes)"


def _field_at(frame: Frame, offset: int) -> str:
    if offset >= len(frame.raw):
        return "past the end"
    for f in decode_frame(frame.raw, frame.op):
        if f.start <= offset < f.end:
            return f.name
    return "?"


def _describe_frame(frame: Frame, limit: int = 600) -> str:
    text = describe_fields(decode_frame(frame.raw, frame.op))
    return text if len(text) <= limit else text[:limit] + "..."


def _short(frames) -> str:
    if not frames:
        return "no frames"
    return ", ".join(f"{f.conn} {opname(f.op)} {len(f.masked)}B" for f in frames)


def frame_differences(frames_a, frames_b, label_a="A", label_b="B") -> list[str]:
    """Lines describing how two ops' masked frames differ, position by position."""
    lines = []
    if [(f.conn, f.op) for f in frames_a] != [(f.conn, f.op) for f in frames_b]:
        lines.append(f"  frames {label_a}: {_short(frames_a)}")
        lines.append(f"  frames {label_b}: {_short(frames_b)}")
    for n in range(max(len(frames_a), len(frames_b))):
        fa = frames_a[n] if n < len(frames_a) else None
        fb = frames_b[n] if n < len(frames_b) else None
        if fa == fb:
            continue
        if fa is None or fb is None:
            who, f = (label_b, fb) if fa is None else (label_a, fa)
            lines.append(f"  frame {n} ({f.conn}, {opname(f.op)}): only {who} sends it")
            lines.append(f"    {who}: {_hex(f.masked)}\n      = {_describe_frame(f)}")
            continue
        a, b = fa.masked, fb.masked
        off = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
        where = _field_at(fa, off) if off < len(a) else _field_at(fb, off)
        lines.append(
            f"  frame {n} ({fa.conn}, {opname(fa.op)}): first difference at byte {off} ({where});"
            f" lengths {len(a)} vs {len(b)}"
        )
        lines.append(f"    {label_a}: {_hex(a, off)}\n      = {_describe_frame(fa)}")
        lines.append(f"    {label_b}: {_hex(b, off)}\n      = {_describe_frame(fb)}")
    return lines


def assert_same_transcripts(
    transcript_a, transcript_b, label_a="A", label_b="B", context=8, files=""
):
    """Entries are Entry records; fail loudly at the first difference."""
    i = first_difference(transcript_a, transcript_b)
    if i is None:
        return
    missing = Entry("(no op)", "(missing)")
    a = transcript_a[i] if i < len(transcript_a) else missing
    b = transcript_b[i] if i < len(transcript_b) else missing
    level = "decoded results differ" if a.result != b.result else "byte level, decoded results equal"
    lines = [
        f"transcripts differ at op #{i} ({level}) {files}".rstrip(),
        "preceding ops (identical on both):",
    ]
    for j in range(max(0, i - context), i):
        e = transcript_a[j]
        lines.append(f"  #{j} {e.desc} -> {json.dumps(e.result, ensure_ascii=False)}  [{_short(e.frames)}]")
    lines.append(f"first differing op #{i}:")
    lines.append(f"  {label_a}: {a.desc}\n      -> {json.dumps(a.result, ensure_ascii=False)}")
    lines.append(f"  {label_b}: {b.desc}\n      -> {json.dumps(b.result, ensure_ascii=False)}")
    if a.frames != b.frames:
        lines.append(
            "masked frames of the op (ZXID/TIME/SESS/PASSWD placeholders, children sorted;"
            " '=' lines decode the unmasked frame):"
        )
        lines += frame_differences(a.frames, b.frames, label_a, label_b)
    raise AssertionError("\n".join(lines))


def _test_frame(conn, op, raw, sessions=None):
    sessions = sessions or {}
    return Frame(conn, op, mask_frame(raw, op, sessions.get), raw)


def test_transcript_comparison_reports_first_difference():
    """The comparison itself (no server): identical passes, a difference is loud."""
    same = [Entry("c0 get /x", ["data", "00", None]), Entry("c1 delete /x", True)]
    assert_same_transcripts(same, list(same))
    other = [same[0], Entry("c1 delete /x", ["error", "NoNodeError"])]
    with pytest.raises(AssertionError) as info:
        assert_same_transcripts(same, other, "apache", "ferrokeeper")
    message = str(info.value)
    assert "differ at op #1 (decoded results differ)" in message
    assert "apache: c1 delete /x" in message and "-> true" in message
    assert '"NoNodeError"' in message and "#0 c0 get /x" in message
    with pytest.raises(AssertionError, match="op #2"):
        assert_same_transcripts(same, same + [Entry("c0 sync /", "/")])


def _stat(czxid, mzxid, pzxid, ctime=1700000000000, owner=0, version=0):
    return struct.pack(
        ">qqqqiiiqiiq", czxid, mzxid, ctime, ctime, version, 0, 0, owner, 0, 0, pzxid
    )


def _reply(xid, zxid, err, body=b""):
    payload = struct.pack(">iqi", xid, zxid, err) + body
    return int_struct.pack(len(payload)) + payload


def test_byte_level_comparison():
    """Masking and the byte-level report (no server): what must differ is masked, a body
    one byte longer is caught although the decoded results are equal."""
    path = write_string("/p")
    a = _reply(5, 0x100000007, 0, path + _stat(0x100000007, 0x100000007, 0x100000007, owner=0x51))
    b = _reply(5, 0x200000042, 0, path + _stat(0x200000042, 0x200000042, 0x200000042, 1700000999999, owner=0x77))
    fa = _test_frame("c0.1", 15, a, {0x51: 65537})
    fb = _test_frame("c0.1", 15, b, {0x77: 65537})
    assert fa == fb  # zxids, times and the owning session masked
    assert fa.masked.count(ZXID_PH) == 4 and SESS_PH in fa.masked
    # mzxid != czxid is kept as a relation (ordinals), not masked away.
    c = _reply(5, 0x200000042, 0, path + _stat(0x200000042, 0x200000043, 0x200000042, owner=0x77))
    assert _test_frame("c0.1", 15, c, {0x77: 65537}) != fb
    # An unknown owner stays raw: a real difference.
    assert _test_frame("c0.1", 15, b) != fb
    # Children are sorted; null and empty vectors differ.
    kids = lambda names: int_struct.pack(len(names)) + b"".join(write_string(n) for n in names)
    assert _test_frame("c1.1", 8, _reply(3, 9, 0, kids(["a", "b"]))) == _test_frame(
        "c1.1", 8, _reply(3, 10, 0, kids(["b", "a"]))
    )
    assert _test_frame("c1.1", 8, _reply(3, 9, 0, int_struct.pack(-1))) != _test_frame(
        "c1.1", 8, _reply(3, 9, 0, int_struct.pack(0))
    )
    # A trailing byte (kazoo ignores it) fails the op, with offset and field.
    longer = _test_frame("c0.1", 15, b[:3] + bytes([b[3] + 1]) + b[4:] + b"\0", {0x77: 65537})
    ta = [Entry("c0 create2 /p", ["path", "/p", None], [fa])]
    tb = [Entry("c0 create2 /p", ["path", "/p", None], [longer])]
    with pytest.raises(AssertionError) as info:
        assert_same_transcripts(ta, tb, "apache", "ferrokeeper")
    message = str(info.value)
    assert "op #0 (byte level, decoded results equal)" in message
    assert "first difference at byte 3 (length)" in message and "create2" in message
    assert f"apache: {fa.masked.hex()}" in message
    # A frame only one side sends.
    with pytest.raises(AssertionError, match="only ferrokeeper sends it"):
        assert_same_transcripts(ta, [Entry(ta[0].desc, ta[0].result, [fa, fa])], "apache", "ferrokeeper")


# --------------------------------------------------------------------------------------
# The differential run
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sides(server_factory):
    server_a = server_factory(KIND_A, COMMON_CFG)
    server_b = server_factory(KIND_B, {**COMMON_CFG, **B_EXTRA_CFG})
    pair = (Side(f"A={KIND_A}", server_a), Side(f"B={KIND_B}", server_b))
    for side in pair:
        for k in range(N_CLIENTS):
            side.open_client(k)
    yield pair
    for side in pair:
        side.close_all()


@pytest.mark.parametrize("seed", SEEDS)
def test_differential(sides, seed, tmp_path):
    side_a, side_b = sides
    for side in sides:  # fresh sessions per seed, whatever an earlier seed left behind
        for k in range(N_CLIENTS):
            side.close_client(k)
            side.open_client(k)
    for side in sides:
        side.take_frames()  # the reconnects above are not part of the transcript
    gen = Generator(seed)
    transcript_a, transcript_b = [], []
    ops = gen.setup_ops() + [None] * OPS
    started = time.monotonic()
    frames_seen = 0
    for i, op in enumerate(ops):
        if op is None:
            op = gen.next_op()
        desc = describe(op)
        raw_a = execute(side_a, op)
        raw_b = execute(side_b, op)
        transcript_a.append(Entry(desc, normalize(side_a, op.kind, raw_a), side_a.take_frames()))
        transcript_b.append(Entry(desc, normalize(side_b, op.kind, raw_b), side_b.take_frames()))
        frames_seen += len(transcript_a[-1].frames)
        gen.learn(op, raw_a)
        if transcript_a[-1] != transcript_b[-1]:
            break  # the generator follows A: after a difference the runs diverge anyway
        for side in sides:  # a dead server makes every later op fail: stop early
            assert side.server.alive(), (
                f"{side.label} server died at op #{i}:\n{side.server.log_tail()}"
            )

    files = []
    for side, transcript in ((side_a, transcript_a), (side_b, transcript_b)):
        f = tmp_path / f"seed{seed}-{side.label[0]}-{side.server.kind}.jsonl"
        f.write_text(
            "".join(json.dumps(e.as_json(), ensure_ascii=False) + "\n" for e in transcript)
        )
        files.append(str(f))
    assert_same_transcripts(
        transcript_a,
        transcript_b,
        side_a.label,
        side_b.label,
        files=f"(full transcripts: {files[0]} and {files[1]})",
    )
    assert len(transcript_a) == len(ops)
    # Every op answers with at least one frame: a capture that silently stopped recording
    # would make the byte-level comparison vacuous.
    assert frames_seen >= len(ops), f"only {frames_seen} frames captured for {len(ops)} ops"

    # Guard against a generator that silently stops exercising things.
    errors = set()
    for entry in transcript_a:
        result = entry.result
        items = result[1] if isinstance(result, list) and result[:1] == ["multi"] else [result]
        errors |= {r[1] for r in items if isinstance(r, list) and r[:1] == ["error"]}
    if OPS >= 200:
        expected = {
            "NoNodeError",
            "NodeExistsError",
            "BadVersionError",
            "NoAuthError",
            "BadArgumentsError",
            "NotEmptyError",
            "InvalidACLError",
        }
        assert expected <= errors, f"seed {seed} never produced {expected - errors}"
    print(
        f"seed {seed}: {len(ops)} ops, {frames_seen} frames, identical transcripts, "
        f"{time.monotonic() - started:.1f}s; errors seen: {sorted(errors)}"
    )
