#!/usr/bin/env python3
"""The AdminServer's snapshot and restore as an operator times them, with curl's view.

A standalone Ferrokeeper with its AdminServer is loaded with N znodes of 100 bytes (the
loadgen's setup). Then, ``--repeats`` times: ``GET /commands/snapshot`` (the request
to the last byte of the ZooKeeper-format stream: the snapshot written into the data
dir, then encoded twice, once to count it) and ``POST /commands/restore`` of that file
(the request to the answer: the body parsed into a tree, the tree written durably and
read back, the clients' connections closed). After each restore, `mntr` must count
every loaded znode. Apache ZooKeeper 3.8 (the one on this machine) has neither command.

Nothing is built here: run ``cargo build --release --workspace`` first.
Standard library only (Python 3.11).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "compat"))
from compare import REPO_ROOT, Server, populate  # noqa: E402
from servers import four_letter_word, free_port  # noqa: E402

AUTH = {"Authorization": "ip"}


def timed(request: urllib.request.Request) -> tuple[float, bytes]:
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=600) as reply:
        body = reply.read()
    return time.monotonic() - started, body


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--znodes", type=int, default=1_000_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--ferrokeeper", type=Path, default=REPO_ROOT / "target/release/ferrokeeper")
    p.add_argument("--loadgen", type=Path, default=REPO_ROOT / "target/release/ferrokeeper-loadgen")
    opts = p.parse_args()
    opts.apache_heap = "1g"
    admin_port = free_port()
    with tempfile.TemporaryDirectory(prefix="fk-admin-snap-") as tmp:
        server = Server("ferrokeeper", Path(tmp), opts, {
            "admin.enableServer": "true",
            "admin.serverAddress": "127.0.0.1",
            "admin.serverPort": admin_port,
            "admin.rateLimiterIntervalInMS": "0",
        })
        server.start()
        try:
            populate(opts.loadgen, server.hosts, opts.znodes)
            url = f"http://127.0.0.1:{admin_port}/commands"
            snaps, restores = [], []
            for i in range(opts.repeats):
                seconds, body = timed(urllib.request.Request(f"{url}/snapshot", headers=AUTH))
                snaps.append(seconds)
                restore = urllib.request.Request(f"{url}/restore", data=body, method="POST",
                                                 headers=AUTH)
                restored_s, answer = timed(restore)
                restores.append(restored_s)
                assert b'"error": null' in answer, answer
                mntr = four_letter_word(server.port, "mntr")
                count = int(mntr.split("zk_znode_count\t")[1].split()[0])
                assert count >= opts.znodes, mntr
                print(f"{i + 1}: snapshot {len(body) / 2**20:.1f} MiB in {seconds:.2f} s, "
                      f"restore in {restored_s:.2f} s", flush=True)
            # The split of the last repeat, from the server's log lines' times.
            marks = ("snapshot written", "admin: snapshot at", "admin: restoring from",
                     "installed a snapshot", "recovered zxid", "restored a snapshot")
            lines = Path(server.log_path).read_text(errors="replace").splitlines()
            last = {}
            for line in lines:
                for mark in marks:
                    if mark in line:
                        last[mark] = line[:300]
            for mark in marks:
                if mark in last:
                    print("  " + last[mark])
            for name, times in (("snapshot", snaps), ("restore", restores)):
                print(f"{name} of {opts.znodes:,} znodes: median {statistics.median(times):.2f} s, "
                      f"min {min(times):.2f} s, max {max(times):.2f} s over {len(times)}")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
