"""The slow-reader attack: many connections pipeline large reads and never read a reply.

Each hostile connection opens a session, sends ``requests`` getData requests for one
large node in one go and then reads nothing; meanwhile one well-behaved session keeps
writing and reading a small node, back to back, and records each round trip. A sampler
reads the server's resident memory from /proc while the attack runs. Used by
``test_slow_readers.py`` (bounds asserted in CI) and by ``loadgen/slow_readers.py``
(the side-by-side record against Apache ZooKeeper).

Standard library only. Hostile connections come from 127.0.0.2, 127.0.0.3, ... in groups
below ZooKeeper's default ``maxClientCnxns`` (60 per IP), so both servers run with their
default per-IP limit.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass

NODE_PATH = "/slow_readers_node"
CONTROL_PATH = "/slow_readers_control"
CONNECTIONS_PER_SOURCE_IP = 50
OP_CREATE, OP_GET_DATA, OP_SET_DATA = 1, 4, 5
RSS_SAMPLE_INTERVAL_S = 0.02


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack(">i", len(raw)) + raw


def _buffer(data: bytes) -> bytes:
    return struct.pack(">i", len(data)) + data


def _frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            raise ConnectionError("server closed the connection")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _recv_frame(sock: socket.socket) -> bytes:
    (length,) = struct.unpack(">i", _recv_exactly(sock, 4))
    return _recv_exactly(sock, length)


def open_session(port: int, source_ip: str = "127.0.0.1", timeout_s: float = 30.0) -> socket.socket:
    """A connected socket with a fresh session (30 s session timeout)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout_s)
    sock.bind((source_ip, 0))
    sock.connect(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    connect = struct.pack(">iqiq", 0, 0, 30_000, 0) + _buffer(bytes(16)) + b"\x00"
    sock.sendall(_frame(connect))
    _recv_frame(sock)
    return sock


def get_data_frame(xid: int, path: str) -> bytes:
    return _frame(struct.pack(">ii", xid, OP_GET_DATA) + _string(path) + b"\x00")


class ControlSession:
    """The well-behaved client: one request at a time, every reply read."""

    def __init__(self, port: int):
        self.sock = open_session(port)
        self.xid = 0

    def call(self, op: int, body: bytes) -> int:
        self.xid += 1
        self.sock.sendall(_frame(struct.pack(">ii", self.xid, op) + body))
        while True:
            reply = _recv_frame(self.sock)
            xid, _zxid, err = struct.unpack_from(">iqi", reply)
            if xid == self.xid:
                return err
            # a watch event (-1) or ping (-2) is skipped; nothing else may arrive

    def create(self, path: str, data: bytes) -> int:
        acl = struct.pack(">ii", 1, 31) + _string("world") + _string("anyone")
        return self.call(OP_CREATE, _string(path) + _buffer(data) + acl + struct.pack(">i", 0))

    def set_data(self, path: str, data: bytes) -> int:
        return self.call(OP_SET_DATA, _string(path) + _buffer(data) + struct.pack(">i", -1))

    def get_data(self, path: str) -> int:
        return self.call(OP_GET_DATA, _string(path) + b"\x00")

    def close(self) -> None:
        self.sock.close()


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class RssSampler(threading.Thread):
    """Tracks the peak resident memory of a process until stopped."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = rss_bytes(pid)
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(RSS_SAMPLE_INTERVAL_S):
            try:
                self.peak = max(self.peak, rss_bytes(self.pid))
            except (OSError, RuntimeError):
                return

    def stop(self) -> int:
        self.done.set()
        self.join()
        return self.peak


@dataclass
class AttackResult:
    readers: int
    node_bytes: int
    idle_rss: int
    peak_rss: int
    after_close_rss: int
    control_latencies_s: list[float]
    control_errors: int
    readers_closed_by_server: int

    @property
    def peak_above_idle(self) -> int:
        return self.peak_rss - self.idle_rss

    def control_percentile_ms(self, q: float) -> float:
        ordered = sorted(self.control_latencies_s)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000.0


def _flood(sock: socket.socket, requests: int, closed: list, stopping: threading.Event) -> None:
    frames = b"".join(get_data_frame(xid, NODE_PATH) for xid in range(1, requests + 1))
    try:
        sock.sendall(frames)
    except OSError:
        # Before the attack ends, only the server can have cut the flood short.
        if not stopping.is_set():
            closed.append(sock)


def run_attack(
    port: int,
    pid: int,
    readers: int,
    node_bytes: int,
    requests: int = 5000,
    duration_s: float = 8.0,
    settle_s: float = 3.0,
) -> AttackResult:
    """Runs the attack for ``duration_s`` and returns memory and control latency."""
    control = ControlSession(port)
    control.create(NODE_PATH, b"n" * node_bytes)
    control.create(CONTROL_PATH, b"c" * 100)
    for _ in range(50):  # warm the path before the idle measurement
        control.set_data(CONTROL_PATH, b"c" * 100)
        control.get_data(CONTROL_PATH)
    idle = rss_bytes(pid)
    sampler = RssSampler(pid)
    sampler.start()

    hostile, closed, floods = [], [], []
    stopping = threading.Event()
    for i in range(readers):
        source = f"127.0.0.{2 + i // CONNECTIONS_PER_SOURCE_IP}"
        sock = open_session(port, source)
        hostile.append(sock)
        flood = threading.Thread(target=_flood, args=(sock, requests, closed, stopping), daemon=True)
        flood.start()
        floods.append(flood)

    latencies, errors = [], 0
    value = b"w" * 100
    deadline = time.monotonic() + duration_s
    control_alive = True
    while control_alive and time.monotonic() < deadline:
        for write in (True, False):
            started = time.perf_counter()
            try:
                if write:
                    err = control.set_data(CONTROL_PATH, value)
                else:
                    err = control.get_data(CONTROL_PATH)
            except OSError:
                # No answer within the socket timeout, or the connection was
                # lost: the well-behaved client was not served.
                err, control_alive = -1, False
            latencies.append(time.perf_counter() - started)
            errors += err != 0
            if not control_alive:
                break

    stopping.set()
    for sock in hostile:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
    for flood in floods:
        flood.join(timeout=10)
    peak = sampler.stop()
    # Memory after the hostile clients are gone: the lowest reading over the settle
    # time (what the server gives back, not a moment of a late free).
    after = rss_bytes(pid)
    settle_deadline = time.monotonic() + settle_s
    while time.monotonic() < settle_deadline:
        if control_alive:
            control.get_data(CONTROL_PATH)  # activity, as a live server sees
        after = min(after, rss_bytes(pid))
        time.sleep(0.1)
    control.close()
    return AttackResult(
        readers=readers,
        node_bytes=node_bytes,
        idle_rss=idle,
        peak_rss=peak,
        after_close_rss=after,
        control_latencies_s=latencies,
        control_errors=errors,
        readers_closed_by_server=len(closed),
    )
