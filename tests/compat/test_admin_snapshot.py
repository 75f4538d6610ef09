"""ZooKeeper 3.9's AdminServer ``snapshot`` and ``restore``, against Apache's own files.

Apache 3.8 (Debian's) has neither command, but both read and write the same snapshot
file format, so the two directions are checked with the real server:

- a snapshot streamed by Ferrokeeper's ``/commands/snapshot`` is a ``snapshot.<zxid>``
  file Apache 3.8 starts from: the tree a client reads from Apache is the one it reads
  from Ferrokeeper (data, every stat field, ACLs, the ephemeral and its session), and
  Apache's check of the digest sealed in the file finds it equal to the tree's;
- a snapshot Apache 3.8 wrote (at start-up, of its state after a workload) is a body
  Ferrokeeper's ``/commands/restore`` takes: the tree a client then reads from
  Ferrokeeper is Apache's.
"""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

from kazoo.client import KazooClient
from kazoo.security import make_digest_acl

from conftest import launch, shutdown
from servers import four_letter_word, free_port
from test_differential import OPEN, CreateContainer, CreateTTL

AUTH = {"Authorization": "digest admin:secret"}


def with_admin() -> tuple[dict, int]:
    port = free_port()
    return {
        "admin.enableServer": "true",
        "admin.serverAddress": "127.0.0.1",
        "admin.serverPort": port,
    }, port


def workload(client: KazooClient) -> None:
    """Nodes of every kind a snapshot holds: nested, sequential, binary and empty
    data, a digest ACL, a container, a TTL node, an ephemeral (its client stays)."""
    client.create("/app", b"root of the app")
    client.create("/app/config", bytes(range(256)))
    client.create("/app/empty", b"")
    for _ in range(3):
        client.create("/app/job-", b"queued", sequence=True)
    client.create("/app/secret", b"s", acl=[make_digest_acl("u", "p", all=True),
                                            make_digest_acl("v", "q", read=True)])
    for request in (CreateContainer("/app/box", b"", OPEN, 4),
                    CreateTTL("/app/ttl", b"t", OPEN, 5, 3_600_000)):
        result = client.handler.async_result()
        client._call(request, result)
        result.get(timeout=10)
    client.create("/app/box/item", b"i")
    client.create("/app/eph", b"e", ephemeral=True)
    client.set("/app", b"root, version 1")
    client.delete("/app/empty")
    client.create("/app/empty", b"")


def read_tree(client: KazooClient) -> dict:
    """path -> (data, stat, ACLs) of every node a client reads (as super)."""
    out = {}
    stack = ["/"]
    while stack:
        path = stack.pop()
        data, stat = client.get(path)
        acls, _ = client.get_acls(path)
        out[path] = (data, stat, sorted((a.perms, a.id.scheme, a.id.id) for a in acls))
        stack.extend(f"{path.rstrip('/')}/{child}" for child in client.get_children(path))
    return out


def started_client(hosts: str) -> KazooClient:
    # A session outliving a restart of Apache, so the ephemeral is in its snapshot.
    client = KazooClient(hosts=hosts, timeout=30.0)
    client.start(timeout=30)
    client.add_auth("digest", "u:p")
    return client


def http(port: int, method: str, path: str, body: bytes | None = None):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body,
                                     method=method, headers=AUTH)
    with urllib.request.urlopen(request, timeout=30) as reply:
        return reply.status, dict(reply.headers), reply.read()


def test_apache_starts_from_a_ferrokeeper_snapshot(tmp_path):
    cfg, admin_port = with_admin()
    ours = launch("ferrokeeper", tmp_path / "ferrokeeper", cfg)
    theirs = None
    clients = []
    try:
        clients.append(started_client(ours.hosts))
        workload(clients[0])
        status, headers, body = http(admin_port, "GET", "/commands/snapshot")
        assert status == 200
        assert int(headers["snapshot_size"]) == len(body)
        zxid = int(headers["last_zxid"], 16)
        expected = read_tree(clients[0])

        # Apache names snapshots by zxid in hex without padding (Util.makeSnapshotName).
        version_2 = tmp_path / "apache" / "data" / "version-2"
        version_2.mkdir(parents=True)
        (version_2 / f"snapshot.{zxid:x}").write_bytes(body)
        theirs = launch("apache", tmp_path / "apache")
        clients.append(started_client(theirs.hosts))
        assert read_tree(clients[1]) == expected
        log = Path(theirs.log_path).read_text(errors="replace")
        loaded = re.search(r"Snapshot loaded in \d+ ms, highest zxid is 0x([0-9a-f]+)", log)
        assert loaded and int(loaded.group(1), 16) == zxid, log[-3000:]
        mntr = four_letter_word(theirs.port, "mntr")
        assert "zk_digest_mismatches_count\t0" in mntr, mntr
        assert "Digests are not matching" not in log
    finally:
        for client in clients:
            client.stop()
            client.close()
        if theirs is not None:
            shutdown(theirs)
        shutdown(ours)


def test_ferrokeeper_restores_an_apache_snapshot(tmp_path):
    theirs = launch("apache", tmp_path / "apache")
    cfg, admin_port = with_admin()
    ours = launch("ferrokeeper", tmp_path / "ferrokeeper", cfg)
    clients = []
    try:
        clients.append(started_client(theirs.hosts))
        workload(clients[0])
        # Apache 3.8 writes a snapshot of what it loaded every time it starts.
        shutdown(theirs)
        theirs = launch("apache", tmp_path / "apache")
        version_2 = tmp_path / "apache" / "data" / "version-2"
        newest = max(version_2.glob("snapshot.*"), key=lambda p: int(p.suffix[1:], 16))
        clients.append(started_client(theirs.hosts))
        expected = read_tree(clients[1])
        assert "/app/eph" in expected, "the ephemeral's session is in the snapshot"

        status, _, body = http(admin_port, "POST", "/commands/restore", newest.read_bytes())
        assert status == 200, body
        clients.append(started_client(ours.hosts))
        assert read_tree(clients[2]) == expected
    finally:
        for client in clients:
            client.stop()
            client.close()
        shutdown(theirs)
        shutdown(ours)
