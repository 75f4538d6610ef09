#!/usr/bin/env python3
"""The slow-reader attack against Apache ZooKeeper and Ferrokeeper, side by side.

For every node size and reader count, a fresh server of each kind (Apache first) gets
the attack of ``tests/compat/slow_readers.py``: N connections each pipeline
``--requests`` getData requests for one node of that size and never read a reply,
while one session writes and reads a small node back to back. Printed per run: idle
and peak resident memory, memory after the hostile clients closed, the control
session's p50/p99/max round trip, and how many hostile floods the server cut short.

Nothing is built here: run ``cargo build --release`` first. Standard library only.
Apache runs with a 1 GB heap (zkEnv.sh's default ZK_SERVER_HEAP), ``APACHE_ZK_HEAP``
overrides it; Ferrokeeper with its defaults for this machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "compat"))
import slow_readers  # noqa: E402
from servers import start_server  # noqa: E402

MIB = 1 << 20


def run_one(kind: str, workdir: Path, readers: int, node_bytes: int, args) -> slow_readers.AttackResult:
    # Ferrokeeper's launcher pins two shards for the compat tests; 0 = this machine's default.
    extra = {"ferrokeeper.shards": os.environ.get("FK_SHARDS", "0")} if kind == "ferrokeeper" else {}
    server = start_server(kind, workdir, extra)
    try:
        return slow_readers.run_attack(
            server.port,
            server.proc.pid,
            readers,
            node_bytes,
            requests=args.requests,
            duration_s=args.seconds,
        )
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", default="1,60,200", help="comma-separated reader counts")
    parser.add_argument("--node-bytes", default="100000,1000000", help="comma-separated node sizes")
    parser.add_argument("--requests", type=int, default=5000, help="getData per hostile connection")
    parser.add_argument("--seconds", type=float, default=8.0, help="attack duration per run")
    parser.add_argument("--servers", default="apache,ferrokeeper")
    args = parser.parse_args()
    os.environ.setdefault("APACHE_ZK_HEAP", "1000m")
    print(
        "| server | node | readers | idle RSS MiB | peak above idle MiB | after close above idle MiB"
        " | control p50 ms | p99 ms | max ms | control ops | floods cut |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="fk-slow-readers-") as tmp:
        for node_bytes in (int(n) for n in args.node_bytes.split(",")):
            for readers in (int(r) for r in args.readers.split(",")):
                for kind in args.servers.split(","):
                    workdir = Path(tmp) / f"{kind}-{node_bytes}-{readers}"
                    r = run_one(kind, workdir, readers, node_bytes, args)
                    print(
                        f"| {kind} | {node_bytes // 1000} KB | {readers} | {r.idle_rss / MIB:.0f}"
                        f" | {r.peak_above_idle / MIB:.0f} | {(r.after_close_rss - r.idle_rss) / MIB:.0f}"
                        f" | {r.control_percentile_ms(0.5):.2f} | {r.control_percentile_ms(0.99):.2f}"
                        f" | {max(r.control_latencies_s) * 1000:.1f} | {len(r.control_latencies_s)}"
                        f" | {r.readers_closed_by_server} |",
                        flush=True,
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
