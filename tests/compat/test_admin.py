"""The AdminServer, key by key against Apache ZooKeeper's (Debian's 3.8.0).

Both servers run standalone with ``admin.enableServer=true`` on a free port, get the
same client workload through kazoo (a node, an ephemeral, a data watch, a child watch,
an exists watch on a missing node), and then answer every command Apache lists under
``/commands``. For each command the JSON must have Apache's shape: the same keys,
recursively, with the same JSON types (a list compared by its first element), and the
same ``command`` and ``error``; where the workload fixes a value (watch counts, which
paths are watched, the ephemerals, read-only, the trace mask), the values must be equal.

Known differences, each named with its reason (the README's compatibility notes):
``KNOWN_ABSENT_COMMANDS`` are not served; ``JVM_ONLY`` keys describe a JVM Ferrokeeper
does not have; ``monitor`` has the keys Ferrokeeper measures (a core set is required,
and every key both have must have Apache's type), not all of ``ServerMetrics``.
"""

from __future__ import annotations

import json
import re
import struct
import urllib.request
import zlib

import pytest
from kazoo.client import KazooClient

from servers import free_port, four_letter_word

# Apache 3.8's commands that Ferrokeeper does not serve, with why (none left).
KNOWN_ABSENT_COMMANDS: dict[str, str] = {}

# Keys of a JVM (java.*, the heap as os.memory.*): no equivalent in a Rust process.
JVM_ONLY = re.compile(r"^(java\.|os\.memory\.|sun\.|jdk\.|jetty\.|file\.encoding|native\.|"
                      r"user\.(language|timezone|country)|zookeeper\.|jline\.)")

# Commands whose keys are the process's properties, compared as far as they are not JVM's.
PROPERTY_COMMANDS = {"environment", "system_properties"}

# monitor keys Ferrokeeper must have (ZooKeeper's core mntr set).
MONITOR_CORE = {
    "version", "server_state", "avg_latency", "max_latency", "min_latency",
    "packets_received", "packets_sent", "num_alive_connections", "outstanding_requests",
    "znode_count", "watch_count", "ephemerals_count", "approximate_data_size",
    "global_sessions", "uptime",
}

# initial_configuration echoes each server's own zoo.cfg; it differs by construction.
TEXT_COMMANDS = {"initial_configuration"}


def shape(value):
    """The JSON type tree of a value: dicts by key, lists by their first element."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if value is None:
        return "null"
    return "string"


def shape_differences(apache, ours, where: str) -> list[str]:
    """Where ``ours`` does not have ``apache``'s shape (keys are compared by name,
    so maps keyed by session ids or paths are compared by their values' shapes)."""
    if isinstance(apache, dict) and isinstance(ours, dict):
        if _keyed_by_data(apache) or _keyed_by_data(ours):
            a_values = list(apache.values())[:1]
            o_values = list(ours.values())[:1]
            if a_values and o_values:
                return shape_differences(a_values[0], o_values[0], f"{where}[*]")
            return []
        out = []
        for key, value in apache.items():
            if key not in ours:
                out.append(f"{where}.{key}: missing")
            else:
                out.extend(shape_differences(value, ours[key], f"{where}.{key}"))
        out.extend(f"{where}.{key}: not in Apache's answer" for key in ours if key not in apache)
        return out
    if isinstance(apache, list) and isinstance(ours, list):
        if apache and ours:
            return shape_differences(apache[0], ours[0], f"{where}[0]")
        return []
    if shape(apache) != shape(ours):
        return [f"{where}: Apache {apache!r}, Ferrokeeper {ours!r}"]
    return []


def _keyed_by_data(d: dict) -> bool:
    """Maps whose keys are data (session ids, expiry times, paths), not field names."""
    return any(k.startswith("/") or k.isdigit() for k in d)


def get_json(port: int, path: str):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as reply:
        return json.loads(reply.read())


def command_names(port: int) -> list[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/commands", timeout=10) as reply:
        return re.findall(r'href="/commands/([a-z_]+)"', reply.read().decode())


def workload(hosts: str) -> KazooClient:
    """The same sessions, nodes and watches on both servers; the client stays open."""
    client = KazooClient(hosts=hosts, timeout=10.0)
    client.start(timeout=30)
    client.create("/admin-node", b"data")
    client.create("/admin-eph", b"", ephemeral=True)
    client.get("/admin-node", watch=lambda event: None)
    client.get_children("/", watch=lambda event: None)
    client.exists("/admin-missing", watch=lambda event: None)
    return client


def start_with_admin(server_factory, kind: str):
    """A standalone server with the AdminServer on a free loopback port."""
    admin_port = free_port()
    server = server_factory(kind, {
        "admin.enableServer": "true",
        "admin.serverAddress": "127.0.0.1",
        "admin.serverPort": admin_port,
    })
    return server, admin_port


@pytest.fixture(scope="module")
def answers(server_factory) -> dict:
    """kind -> {command: answer}, after the workload, for Apache's command list."""
    out = {}
    clients = []
    try:
        for kind in ("apache", "ferrokeeper"):
            server, admin_port = start_with_admin(server_factory, kind)
            clients.append(workload(server.hosts))
            names = command_names(admin_port)
            out[kind] = {
                "names": names,
                "port": admin_port,
                "answers": {},
            }
        for name in out["apache"]["names"]:
            for kind in ("apache", "ferrokeeper"):
                if kind == "ferrokeeper" and name in KNOWN_ABSENT_COMMANDS:
                    continue
                out[kind]["answers"][name] = get_json(out[kind]["port"], f"/commands/{name}")
    finally:
        for client in clients:
            client.stop()
            client.close()
    return out


def test_ferrokeeper_lists_apaches_commands(answers):
    apache = set(answers["apache"]["names"])
    ours = set(answers["ferrokeeper"]["names"])
    assert apache - ours == set(KNOWN_ABSENT_COMMANDS), sorted(apache - ours)


def test_every_command_has_apaches_shape(answers):
    problems = []
    for name, apache in answers["apache"]["answers"].items():
        ours = answers["ferrokeeper"]["answers"].get(name)
        if ours is None:
            continue
        if (apache["command"], apache["error"]) != (ours["command"], ours["error"]):
            problems.append(f"{name}: command/error {ours['command']!r}/{ours['error']!r}, "
                            f"Apache {apache['command']!r}/{apache['error']!r}")
        if name in PROPERTY_COMMANDS:
            apache = {k: v for k, v in apache.items() if not JVM_ONLY.match(k)}
            # Properties Ferrokeeper adds of its own (ferrokeeper.*, -D flags) are fine.
            ours = {k: v for k, v in ours.items() if k in apache}
        elif name == "monitor":
            missing = MONITOR_CORE - set(ours)
            if missing:
                problems.append(f"monitor: missing {sorted(missing)}")
            common = set(apache) & set(ours)
            apache = {k: v for k, v in apache.items() if k in common}
            ours = {k: v for k, v in ours.items() if k in common}
        problems.extend(shape_differences(apache, ours, name))
    assert not problems, "\n".join(problems)


def test_values_the_workload_fixes_are_equal(answers):
    a = answers["apache"]["answers"]
    f = answers["ferrokeeper"]["answers"]
    for name in ("watch_summary",):
        for key in ("num_connections", "num_paths", "num_total_watches"):
            assert f[name][key] == a[name][key], (name, key, a[name], f[name])

    def paths_by_session(answer):
        return sorted(sorted(paths) for paths in answer["session_id_to_watched_paths"].values())

    assert paths_by_session(f["watches"]) == paths_by_session(a["watches"])
    assert sorted(f["watches_by_path"]["path_to_session_ids"]) == sorted(
        a["watches_by_path"]["path_to_session_ids"])
    assert sorted(f["dump"]["session_id_to_ephemeral_paths"].values()) == sorted(
        a["dump"]["session_id_to_ephemeral_paths"].values())

    def sessions_expiring(answer):
        return sum(len(ids) for ids in answer["dump"]["expiry_time_to_session_ids"].values())

    assert sessions_expiring(f) == sessions_expiring(a) == 1
    assert f["monitor"]["watch_count"] == a["monitor"]["watch_count"]
    assert f["monitor"]["ephemerals_count"] == a["monitor"]["ephemerals_count"]
    for name, key in (("is_read_only", "read_only"), ("get_trace_mask", "tracemask"),
                      ("server_stats", "read_only")):
        assert f[name][key] == a[name][key], (name, key)
    for key in ("tick_time", "max_client_cnxns", "min_session_timeout",
                "max_session_timeout", "server_id", "client_port_listen_backlog"):
        assert f["configuration"][key] == a["configuration"][key], key
    for key in ("os.name", "os.arch", "os.version", "user.name", "user.home"):
        assert f["environment"][key] == a["environment"][key], key
    # Both hold at least their log; sizes differ with the formats' preallocation.
    assert f["dirs"]["datadir_size"] > 0 and a["dirs"]["datadir_size"] > 0
    assert set(TEXT_COMMANDS) <= set(a)


def tree_digest(client: KazooClient) -> int:
    """ZooKeeper's tree digest (DigestCalculator version 2) computed from what a client
    reads: per node CRC-32 of path ("" for the root), data and nine stat fields, summed
    as a Java long over every node outside /zookeeper/ (no containers or TTL nodes:
    their stored ephemeralOwner is not what clients read)."""
    total = 0
    stack = ["/"]
    while stack:
        path = stack.pop()
        data, st = client.get(path)
        stack.extend(f"{path.rstrip('/')}/{child}" for child in client.get_children(path))
        if path.startswith("/zookeeper/"):
            continue
        # The digest reads the stored stat; clients see its cversion as
        # `cversion * 2 - numChildren` (DataNode.copyStat), so it is turned back.
        stored_cversion = (st.cversion + st.numChildren) // 2
        fields = struct.pack(">qqqqqiiiq", st.czxid, st.mzxid, st.pzxid, st.ctime, st.mtime,
                             st.version, stored_cversion, st.aversion, st.ephemeralOwner)
        crc = zlib.crc32((b"" if path == "/" else path.encode()) + (data or b"") + fields)
        total = (total + crc) & (2**64 - 1)
    return total - 2**64 if total >= 2**63 else total


def test_hash_logs_the_tree_digest_as_zookeeper_computes_it(server_factory):
    """A workload of every kind of change up to zxid 0x100; both servers' `hash` (four
    letters and AdminServer) log a digest at 0x80 and 0x100, and the one at 0x100 is the
    digest of the tree a client reads there, computed by ZooKeeper's algorithm."""
    from kazoo.security import make_digest_acl

    for kind in ("apache", "ferrokeeper"):
        server, admin_port = start_with_admin(server_factory, kind)
        client = KazooClient(hosts=server.hosts, timeout=10.0)
        client.start(timeout=30)
        try:
            client.create("/d", b"parent")
            client.create("/d/eph", b"e", ephemeral=True)
            client.create("/d/seq-", b"s", sequence=True)
            client.create("/d/gone", b"")
            client.delete("/d/gone")
            client.set_acls("/d", [make_digest_acl("u", "p", all=True),
                                   make_digest_acl("v", "q", read=True)])
            client.add_auth("digest", "u:p")
            transaction = client.transaction()
            transaction.create("/d/multi", b"m")
            transaction.set_data("/d", b"parent2")
            transaction.commit()
            zxid = client.set("/d/multi", b"x").mzxid
            while zxid < 0x100:
                zxid = client.set("/d/multi", str(zxid).encode()).mzxid
            assert zxid == 0x100
            lines = four_letter_word(server.port, "hash").splitlines()
            assert [line.split(":")[0] for line in lines] == ["80", "100"], (kind, lines)
            digest_at_100 = int(lines[1].split(": ")[1])
            assert digest_at_100 == tree_digest(client), kind
            answer = get_json(admin_port, "/commands/hash")
            assert answer["digests"] == [
                {"zxid": 0x80, "digest_version": 2, "digest": int(lines[0].split(": ")[1])},
                {"zxid": 0x100, "digest_version": 2, "digest": digest_at_100},
            ], (kind, answer)
        finally:
            client.stop()
            client.close()
