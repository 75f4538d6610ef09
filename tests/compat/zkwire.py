"""A small raw codec for ZooKeeper's client protocol (jute), stdlib only.

Everything on the wire is big-endian.  A frame is a 4-byte length followed by that many
bytes.  The first frame a client sends is a ConnectRequest (no RequestHeader); the server
answers with a ConnectResponse.  Every later client frame is RequestHeader{xid, type} +
request body; every server frame is ReplyHeader{xid, zxid, err} + reply body, or a watch
notification (ReplyHeader with xid -1, then WatcherEvent{type, state, path}).

Record layouts follow zookeeper.jute (zookeeper-jute/src/main/resources/zookeeper.jute)
and the opcode numbers ZooDefs.OpCode; which reply body belongs to which request follows
FinalRequestProcessor / ZooKeeperServer.processPacket.  Primitives:

    int     4 bytes signed          long    8 bytes signed
    boolean 1 byte (0 or 1)         buffer  int length (-1 = null) + bytes
    ustring like buffer, UTF-8      vector  int count (-1 = null) + elements

Decoding is *structural*: ``decode_reply`` returns the list of fields of a frame with
their byte offsets and a kind (zxid, time, session, passwd, ...), so a caller can mask
exactly the fields that must differ between two servers and nothing else.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field

# --------------------------------------------------------------------------------------
# Numbers (ZooDefs.OpCode, KeeperException.Code, Watcher.Event.*, ClientCnxn xids)
# --------------------------------------------------------------------------------------


class Op:
    NOTIFICATION = 0
    CREATE = 1
    DELETE = 2
    EXISTS = 3
    GET_DATA = 4
    SET_DATA = 5
    GET_ACL = 6
    SET_ACL = 7
    GET_CHILDREN = 8
    SYNC = 9
    PING = 11
    GET_CHILDREN2 = 12
    CHECK = 13
    MULTI = 14
    CREATE2 = 15
    RECONFIG = 16
    CHECK_WATCHES = 17
    REMOVE_WATCHES = 18
    CREATE_CONTAINER = 19
    DELETE_CONTAINER = 20
    CREATE_TTL = 21
    MULTI_READ = 22
    AUTH = 100
    SET_WATCHES = 101
    SASL = 102
    GET_EPHEMERALS = 103
    GET_ALL_CHILDREN_NUMBER = 104
    SET_WATCHES2 = 105
    ADD_WATCH = 106
    WHO_AM_I = 107
    CREATE_SESSION = -10
    CLOSE_SESSION = -11
    ERROR = -1


OP_NAMES = {v: k.lower() for k, v in vars(Op).items() if k.isupper()}
OP_NAMES[Op.ERROR] = "error"


class Err:
    OK = 0
    SYSTEM_ERROR = -1
    RUNTIME_INCONSISTENCY = -2
    DATA_INCONSISTENCY = -3
    CONNECTION_LOSS = -4
    MARSHALLING_ERROR = -5
    UNIMPLEMENTED = -6
    OPERATION_TIMEOUT = -7
    BAD_ARGUMENTS = -8
    UNKNOWN_SESSION = -12
    NEW_CONFIG_NO_QUORUM = -13
    RECONFIG_IN_PROGRESS = -14
    API_ERROR = -100
    NO_NODE = -101
    NO_AUTH = -102
    BAD_VERSION = -103
    NO_CHILDREN_FOR_EPHEMERALS = -108
    NODE_EXISTS = -110
    NOT_EMPTY = -111
    SESSION_EXPIRED = -112
    INVALID_CALLBACK = -113
    INVALID_ACL = -114
    AUTH_FAILED = -115
    SESSION_MOVED = -118
    NOT_READ_ONLY = -119
    EPHEMERAL_ON_LOCAL_SESSION = -120
    NO_WATCHER = -121
    REQUEST_TIMEOUT = -122
    RECONFIG_DISABLED = -123
    SESSION_CLOSED_REQUIRE_SASL_AUTH = -124
    QUOTA_EXCEEDED = -125
    THROTTLED_OP = -127


ERR_NAMES = {v: k for k, v in vars(Err).items() if k.isupper()}


class Event:
    NONE = -1
    NODE_CREATED = 1
    NODE_DELETED = 2
    NODE_DATA_CHANGED = 3
    NODE_CHILDREN_CHANGED = 4
    DATA_WATCH_REMOVED = 5
    CHILD_WATCH_REMOVED = 6
    PERSISTENT_WATCH_REMOVED = 7


EVENT_NAMES = {v: k for k, v in vars(Event).items() if k.isupper()}


class State:
    DISCONNECTED = 0
    SYNC_CONNECTED = 3
    AUTH_FAILED = 4
    CONNECTED_READ_ONLY = 5
    SASL_AUTHENTICATED = 6
    EXPIRED = -112
    CLOSED = 7


class Xid:
    NOTIFICATION = -1
    PING = -2
    AUTH = -4
    SET_WATCHES = -8


class WatcherType:  # checkWatches / removeWatches
    CHILDREN = 1
    DATA = 2
    ANY = 3
    PERSISTENT = 4
    PERSISTENT_RECURSIVE = 5


class AddWatchMode:
    PERSISTENT = 0
    PERSISTENT_RECURSIVE = 1


class CreateMode:
    PERSISTENT = 0
    EPHEMERAL = 1
    PERSISTENT_SEQUENTIAL = 2
    EPHEMERAL_SEQUENTIAL = 3
    CONTAINER = 4
    PERSISTENT_WITH_TTL = 5
    PERSISTENT_SEQUENTIAL_WITH_TTL = 6


class Perm:
    READ = 1
    WRITE = 2
    CREATE = 4
    DELETE = 8
    ADMIN = 16
    ALL = 31


OPEN_ACL = [(Perm.ALL, "world", "anyone")]
READ_ACL = [(Perm.READ, "world", "anyone")]

# --------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------


def p_int(v: int) -> bytes:
    return struct.pack(">i", v)


def p_long(v: int) -> bytes:
    return struct.pack(">q", v)


def p_bool(v: bool) -> bytes:
    return b"\x01" if v else b"\x00"


def p_buffer(b: bytes | None) -> bytes:
    if b is None:
        return p_int(-1)
    return p_int(len(b)) + b


def p_string(s: str | bytes | None) -> bytes:
    if s is None:
        return p_int(-1)
    raw = s.encode("utf-8") if isinstance(s, str) else s
    return p_int(len(raw)) + raw


def p_strings(items: list | None) -> bytes:
    if items is None:
        return p_int(-1)
    return p_int(len(items)) + b"".join(p_string(s) for s in items)


def p_acl(acl: list | None) -> bytes:
    """acl: list of (perms, scheme, id) or None (null vector)."""
    if acl is None:
        return p_int(-1)
    out = p_int(len(acl))
    for perms, scheme, ident in acl:
        out += p_int(perms) + p_string(scheme) + p_string(ident)
    return out


def frame(payload: bytes) -> bytes:
    return p_int(len(payload)) + payload


def connect_request(
    *,
    protocol_version: int = 0,
    last_zxid_seen: int = 0,
    timeout_ms: int = 30000,
    session_id: int = 0,
    passwd: bytes | None = b"\x00" * 16,
    read_only: bool | None = False,
) -> bytes:
    """A whole ConnectRequest frame; read_only=None omits the trailing byte (pre-3.4 clients)."""
    body = (
        p_int(protocol_version)
        + p_long(last_zxid_seen)
        + p_int(timeout_ms)
        + p_long(session_id)
        + p_buffer(passwd)
    )
    if read_only is not None:
        body += p_bool(read_only)
    return frame(body)


def request(xid: int, op: int, body: bytes = b"") -> bytes:
    """A whole request frame: RequestHeader{xid, type} + body."""
    return frame(p_int(xid) + p_int(op) + body)


# Request bodies ------------------------------------------------------------------------


def create_body(path, data=b"", acl=OPEN_ACL, flags=0) -> bytes:
    """CreateRequest (create, create2, createContainer)."""
    return p_string(path) + p_buffer(data) + p_acl(acl) + p_int(flags)


def create_ttl_body(path, data=b"", acl=OPEN_ACL, flags=CreateMode.PERSISTENT_WITH_TTL, ttl=3_600_000):
    return create_body(path, data, acl, flags) + p_long(ttl)


def path_version_body(path, version=-1) -> bytes:
    """DeleteRequest and CheckVersionRequest."""
    return p_string(path) + p_int(version)


def path_watch_body(path, watch=False) -> bytes:
    """ExistsRequest, GetDataRequest, GetChildrenRequest, GetChildren2Request."""
    return p_string(path) + p_bool(watch)


def set_data_body(path, data=b"", version=-1) -> bytes:
    return p_string(path) + p_buffer(data) + p_int(version)


def path_body(path) -> bytes:
    """GetACLRequest, SyncRequest, GetEphemeralsRequest, GetAllChildrenNumberRequest."""
    return p_string(path)


def set_acl_body(path, acl=OPEN_ACL, version=-1) -> bytes:
    return p_string(path) + p_acl(acl) + p_int(version)


def path_type_body(path, kind) -> bytes:
    """CheckWatchesRequest, RemoveWatchesRequest, AddWatchRequest (mode)."""
    return p_string(path) + p_int(kind)


def multi_header(op: int, done: bool, err: int) -> bytes:
    return p_int(op) + p_bool(done) + p_int(err)


def multi_body(ops: list[tuple[int, bytes]]) -> bytes:
    """MultiOperationRecord: (MultiHeader{type, false, -1} + op body)* + MultiHeader{-1, true, -1}.

    Also the body of multiRead (ops getChildren / getData)."""
    out = b""
    for op, body in ops:
        out += multi_header(op, False, -1) + body
    return out + multi_header(-1, True, -1)


def reconfig_body(joining=None, leaving=None, new_members=None, cur_config_id=-1) -> bytes:
    return p_string(joining) + p_string(leaving) + p_string(new_members) + p_long(cur_config_id)


def auth_body(scheme, auth: bytes, auth_type=0) -> bytes:
    return p_int(auth_type) + p_string(scheme) + p_buffer(auth)


def set_watches_body(relative_zxid, data=(), exist=(), child=()) -> bytes:
    return p_long(relative_zxid) + p_strings(list(data)) + p_strings(list(exist)) + p_strings(list(child))


def set_watches2_body(relative_zxid, data=(), exist=(), child=(), persistent=(), recursive=()) -> bytes:
    return set_watches_body(relative_zxid, data, exist, child) + p_strings(list(persistent)) + p_strings(
        list(recursive)
    )


def sasl_body(token: bytes) -> bytes:
    """GetSASLRequest{buffer token}."""
    return p_buffer(token)


def delete_container_body(path) -> bytes:
    """DeleteContainerRequest (3.9): the path as a *buffer*."""
    return p_buffer(path.encode("utf-8"))


def create_session_body(timeout_ms: int) -> bytes:
    """CreateSessionTxn{int timeOut}, what ZooKeeper reads for a createSession request."""
    return p_int(timeout_ms)


# The body encoder of every client opcode (header-only requests have b"").
REQUEST_BODIES = {
    Op.CREATE: create_body,
    Op.CREATE2: create_body,
    Op.CREATE_CONTAINER: create_body,
    Op.CREATE_TTL: create_ttl_body,
    Op.DELETE: path_version_body,
    Op.CHECK: path_version_body,
    Op.EXISTS: path_watch_body,
    Op.GET_DATA: path_watch_body,
    Op.GET_CHILDREN: path_watch_body,
    Op.GET_CHILDREN2: path_watch_body,
    Op.SET_DATA: set_data_body,
    Op.GET_ACL: path_body,
    Op.SET_ACL: set_acl_body,
    Op.SYNC: path_body,
    Op.GET_EPHEMERALS: path_body,
    Op.GET_ALL_CHILDREN_NUMBER: path_body,
    Op.MULTI: multi_body,
    Op.MULTI_READ: multi_body,
    Op.RECONFIG: reconfig_body,
    Op.CHECK_WATCHES: path_type_body,
    Op.REMOVE_WATCHES: path_type_body,
    Op.ADD_WATCH: path_type_body,
    Op.AUTH: auth_body,
    Op.SET_WATCHES: set_watches_body,
    Op.SET_WATCHES2: set_watches2_body,
    Op.SASL: sasl_body,
    Op.DELETE_CONTAINER: delete_container_body,
    Op.CREATE_SESSION: create_session_body,
    Op.PING: lambda: b"",
    Op.WHO_AM_I: lambda: b"",
    Op.CLOSE_SESSION: lambda: b"",
}


def ping_frame() -> bytes:
    """A ping as the Java client sends it: xid -2, type 11, no body."""
    return request(Xid.PING, Op.PING)


def auth_frame(scheme: str, auth: bytes) -> bytes:
    """An AuthPacket as the Java client sends it: xid -4, type 100."""
    return request(Xid.AUTH, Op.AUTH, auth_body(scheme, auth))


# --------------------------------------------------------------------------------------
# Structural decoding
# --------------------------------------------------------------------------------------

# Field kinds.  Only the first five are candidates for masking.
ZXID, TIME, SESSION, PASSWD, OWNER = "zxid", "time", "session", "passwd", "owner"
INT, LONG, BOOL, BYTES, STRING, LEN, RAW = "int", "long", "bool", "bytes", "string", "len", "raw"
# A vector whose order the server does not define (a Java HashSet's iteration order):
# value = (decoded elements, raw encoded elements); a comparison may sort the elements.
UNORDERED = "unordered"


@dataclass
class Field:
    name: str
    kind: str
    start: int  # offset in the whole frame (length prefix included)
    end: int
    value: object = None


class Truncated(Exception):
    pass


class _Reader:
    def __init__(self, buf: bytes, pos: int = 0):
        self.buf = buf
        self.pos = pos
        self.fields: list[Field] = []

    def remaining(self) -> int:
        return len(self.buf) - self.pos

    def _take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise Truncated()
        raw = self.buf[self.pos : self.pos + n]
        self.pos += n
        return raw

    def int(self, name, kind=INT) -> int:
        start = self.pos
        v = struct.unpack(">i", self._take(4))[0]
        self.fields.append(Field(name, kind, start, self.pos, v))
        return v

    def long(self, name, kind=LONG) -> int:
        start = self.pos
        v = struct.unpack(">q", self._take(8))[0]
        self.fields.append(Field(name, kind, start, self.pos, v))
        return v

    def bool(self, name) -> bool:
        start = self.pos
        v = self._take(1)[0]
        self.fields.append(Field(name, BOOL, start, self.pos, v))
        return bool(v)

    def buffer(self, name, kind=BYTES):
        n = self.int(f"{name}.len", LEN)
        if n == -1:
            return None
        start = self.pos
        raw = self._take(n)
        self.fields.append(Field(name, kind, start, self.pos, raw))
        return raw

    def string(self, name):
        raw = self.buffer(name, STRING)
        return None if raw is None else raw.decode("utf-8", "replace")

    def strings(self, name, unordered=False):
        n = self.int(f"{name}.count", LEN)
        if n == -1:
            return None
        if n < 0 or n > self.remaining():
            raise Truncated()
        if not unordered:
            return [self.string(f"{name}[{i}]") for i in range(n)]
        return self._unordered(name, n, lambda i: [self.string(f"{name}[{i}]")])

    def _unordered(self, name, n, read_one):
        """Reads n elements as one UNORDERED field (the element fields are dropped)."""
        start, first_field = self.pos, len(self.fields)
        decoded, raws = [], []
        for i in range(n):
            at = self.pos
            decoded.append(tuple(read_one(i)))
            raws.append(self.buf[at : self.pos])
        del self.fields[first_field:]
        self.fields.append(Field(name, UNORDERED, start, self.pos, (decoded, raws)))
        return decoded

    def stat(self, name="stat"):
        s = {}
        s["czxid"] = self.long(f"{name}.czxid", ZXID)
        s["mzxid"] = self.long(f"{name}.mzxid", ZXID)
        s["ctime"] = self.long(f"{name}.ctime", TIME)
        s["mtime"] = self.long(f"{name}.mtime", TIME)
        s["version"] = self.int(f"{name}.version")
        s["cversion"] = self.int(f"{name}.cversion")
        s["aversion"] = self.int(f"{name}.aversion")
        s["ephemeralOwner"] = self.long(f"{name}.ephemeralOwner", OWNER)
        s["dataLength"] = self.int(f"{name}.dataLength")
        s["numChildren"] = self.int(f"{name}.numChildren")
        s["pzxid"] = self.long(f"{name}.pzxid", ZXID)
        return s

    def acls(self, name="acl"):
        n = self.int(f"{name}.count", LEN)
        if n == -1:
            return None
        if n < 0 or n > self.remaining():
            raise Truncated()
        out = []
        for i in range(n):
            perms = self.int(f"{name}[{i}].perms")
            scheme = self.string(f"{name}[{i}].scheme")
            ident = self.string(f"{name}[{i}].id")
            out.append((perms, scheme, ident))
        return out

    def raw_rest(self, name="undecoded"):
        if self.remaining():
            start = self.pos
            self.pos = len(self.buf)
            self.fields.append(Field(name, RAW, start, self.pos, self.buf[start:]))


def _multi_results(r: _Reader, name="multi"):
    results = []
    i = 0
    while True:
        typ = r.int(f"{name}[{i}].hdr.type")
        done = r.bool(f"{name}[{i}].hdr.done")
        r.int(f"{name}[{i}].hdr.err")
        if done:
            return results
        p = f"{name}[{i}]"
        if typ == Op.CREATE:
            results.append(("create", r.string(f"{p}.path")))
        elif typ == Op.CREATE2:
            results.append(("create2", r.string(f"{p}.path"), r.stat(f"{p}.stat")))
        elif typ == Op.SET_DATA:
            results.append(("setData", r.stat(f"{p}.stat")))
        elif typ in (Op.DELETE, Op.CHECK):
            results.append((OP_NAMES[typ],))
        elif typ == Op.GET_DATA:
            results.append(("getData", r.buffer(f"{p}.data"), r.stat(f"{p}.stat")))
        elif typ == Op.GET_CHILDREN:
            results.append(("getChildren", r.strings(f"{p}.children", unordered=True)))
        elif typ == Op.ERROR:
            results.append(("error", r.int(f"{p}.err")))
        else:
            raise Truncated()  # unknown result type: leave the rest undecoded
        i += 1


def _body(op: int, r: _Reader):
    """Decodes the reply body of `op` (ZooKeeper's reply record for it)."""
    if op == Op.CREATE or op == Op.SYNC:
        r.string("path")
    elif op in (Op.CREATE2, Op.CREATE_CONTAINER, Op.CREATE_TTL):
        r.string("path")
        r.stat()
    elif op in (Op.EXISTS, Op.SET_DATA, Op.SET_ACL, Op.CHECK):
        r.stat()
    elif op in (Op.GET_DATA, Op.RECONFIG):
        r.buffer("data")
        r.stat()
    elif op == Op.GET_ACL:
        r.acls()
        r.stat()
    elif op in (Op.GET_CHILDREN, Op.GET_EPHEMERALS):
        # DataNode.children and DataTree's ephemeral sets are HashSets: no defined order.
        r.strings("children" if op == Op.GET_CHILDREN else "ephemerals", unordered=True)
    elif op == Op.GET_CHILDREN2:
        r.strings("children", unordered=True)
        r.stat()
    elif op in (Op.MULTI, Op.MULTI_READ):
        _multi_results(r)
    elif op == Op.GET_ALL_CHILDREN_NUMBER:
        r.int("totalNumber")
    elif op == Op.ADD_WATCH:
        r.int("errorResponse.err")
    elif op == Op.WHO_AM_I:
        # ServerCnxn.authInfo is a set (ConcurrentHashMap key set): no defined order.
        n = r.int("clientInfo.count", LEN)
        if n < 0 or n > r.remaining():
            raise Truncated()
        r._unordered(
            "clientInfo",
            n,
            lambda i: [r.string(f"clientInfo[{i}].authScheme"), r.string(f"clientInfo[{i}].user")],
        )
    elif op == Op.SASL:
        r.buffer("token")
    # everything else has no body


def decode_reply(frame_bytes: bytes, op: int | None) -> list[Field]:
    """Fields of a reply or notification frame; `op` is the request's opcode (None: unknown).

    A body that does not match the expected layout is decoded as far as it goes; the rest
    is one RAW field, so it is still compared byte for byte."""
    r = _Reader(frame_bytes)
    try:
        r.int("length", LEN)
        xid = r.int("hdr.xid")
        r.long("hdr.zxid", ZXID)
        r.int("hdr.err")
        if xid == Xid.NOTIFICATION:
            r.int("event.type")
            r.int("event.state")
            r.string("event.path")
        elif op is not None and r.remaining():
            _body(op, r)
    except Truncated:
        pass
    r.raw_rest()
    return r.fields


def decode_connect_response(frame_bytes: bytes) -> list[Field]:
    r = _Reader(frame_bytes)
    try:
        r.int("length", LEN)
        r.int("protocolVersion")
        r.int("timeOut")
        r.long("sessionId", SESSION)
        r.buffer("passwd", PASSWD)
        if r.remaining():
            r.bool("readOnly")
    except Truncated:
        pass
    r.raw_rest()
    return r.fields


def reply_header(frame_bytes: bytes) -> tuple[int, int, int]:
    """(xid, zxid, err) of a reply frame (length prefix included)."""
    return struct.unpack(">iqi", frame_bytes[4:20])


def connect_session(frame_bytes: bytes) -> tuple[int, int, bytes]:
    """(timeout, session id, passwd) of a ConnectResponse frame."""
    timeout, session_id = struct.unpack(">iq", frame_bytes[8:20])
    (n,) = struct.unpack(">i", frame_bytes[20:24])
    return timeout, session_id, frame_bytes[24 : 24 + max(n, 0)]


def describe(fields: list[Field]) -> str:
    parts = []
    for f in fields:
        if f.kind == LEN:
            continue
        v = f.value
        if f.kind == UNORDERED:
            v = [e if len(e) > 1 else e[0] for e in v[0]]
        elif isinstance(v, bytes):
            v = v[:40]
        parts.append(f"{f.name}={v!r}")
    return ", ".join(parts)


# --------------------------------------------------------------------------------------
# A blocking client
# --------------------------------------------------------------------------------------


@dataclass
class Received:
    frames: list[bytes] = field(default_factory=list)
    closed: bool = False  # the server closed (or reset) the connection
    timed_out: bool = False  # expected frames did not arrive in time


class Client:
    """One TCP connection; sends raw frames, reads whole frames back."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = b""
        self.closed = False

    def send(self, *frames: bytes) -> None:
        """All frames in ONE write (pipelined)."""
        try:
            self.sock.sendall(b"".join(frames))
        except OSError:
            self.closed = True

    def _fill(self, deadline: float) -> bool:
        """Reads more bytes; False on close or timeout (self.closed tells which)."""
        if self.closed:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return False
        except OSError:
            self.closed = True
            return False
        if not chunk:
            self.closed = True
            return False
        self.buf += chunk
        return True

    def read_frame(self, deadline: float) -> bytes | None:
        while True:
            if len(self.buf) >= 4:
                (n,) = struct.unpack(">i", self.buf[:4])
                if n < 0:  # not a frame: hand back what there is
                    out, self.buf = self.buf, b""
                    return out
                if len(self.buf) >= 4 + n:
                    out, self.buf = self.buf[: 4 + n], self.buf[4 + n :]
                    return out
            if not self._fill(deadline):
                return None

    def read_until(self, done, timeout: float | None = None) -> Received:
        """Reads frames until done(frames) is true, the connection closes, or timeout."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        got = Received()
        while not done(got.frames):
            f = self.read_frame(deadline)
            if f is None:
                got.closed = self.closed
                got.timed_out = not self.closed
                return got
            got.frames.append(f)
        return got

    def read_replies(self, xids, timeout: float | None = None) -> Received:
        """Reads until a reply for every xid in `xids` arrived (notifications are kept too)."""
        want = list(xids)

        def done(frames):
            seen = [reply_header(f)[0] for f in frames if len(f) >= 20]
            rest = list(want)
            for x in seen:
                if x in rest:
                    rest.remove(x)
            return not rest

        return self.read_until(done, timeout)

    def read_to_close(self, timeout: float = 2.0) -> Received:
        """Reads everything until the server closes the connection (or timeout)."""
        return self.read_until(lambda frames: False, timeout)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
        self.closed = True


# --------------------------------------------------------------------------------------
# Masking: what must differ between two servers, replaced in place (same length)
# --------------------------------------------------------------------------------------

CONNECT = "connect"  # pseudo-opcode of a ConnectResponse frame
ZXID_PH, TIME_PH, SESS_PH = b"ZXID", b"TIME", b"SESS"
PASSWD_PH = b"PASSWD--PASSWD--"


def decode_frame(frame: bytes, op) -> list[Field]:
    return decode_connect_response(frame) if op == CONNECT else decode_reply(frame, op)


def mask_frame(frame: bytes, op, session_code, owner_code=None) -> bytes:
    """The frame with only what must differ between two servers replaced: zxids by ZXID +
    their ordinal within their record (0 and -1 kept, so czxid == mzxid still compares),
    times by TIME (0 kept; always ordinal 0: a create and a setData may share a
    millisecond), session ids by SESS + session_code(id) and ephemeralOwners by SESS +
    owner_code(id) (default: session_code; an id mapped to None is kept), a non-zero
    password by PASSWD; unordered vectors (Java HashSets) sorted."""
    owner_code = owner_code or session_code
    out = bytearray(frame)
    ordinals: dict = {}
    for f in decode_frame(frame, op):
        if f.kind in (ZXID, TIME):
            if f.value in (0, -1):
                continue
            group = f.name.rsplit(".", 1)[0]
            table = ordinals.setdefault((group, f.kind), {})
            idx = table.setdefault(f.value, len(table)) if f.kind == ZXID else 0
            out[f.start : f.end] = (ZXID_PH if f.kind == ZXID else TIME_PH) + p_int(idx)
        elif f.kind in (SESSION, OWNER):
            code = (session_code if f.kind == SESSION else owner_code)(f.value)
            if code is not None:
                out[f.start : f.end] = SESS_PH + p_int(code)
        elif f.kind == PASSWD:
            if any(f.value):
                out[f.start : f.end] = PASSWD_PH[: f.end - f.start].ljust(f.end - f.start, b"-")
        elif f.kind == UNORDERED:
            out[f.start : f.end] = b"".join(sorted(f.value[1]))
    return bytes(out)
