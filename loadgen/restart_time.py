#!/usr/bin/env python3
"""Restart to serving, as an operator sees it: process start to the first answered request.

A server (Ferrokeeper, or Apache ZooKeeper with ``--server apache``) is loaded with N
znodes of 100 bytes (the loadgen's setup) and stopped cleanly (SIGTERM: Ferrokeeper
writes a final snapshot; Apache exits and recovers from its snapshot and log). Then, ``--repeats`` times: the server is
started, and a client connects every few milliseconds until a session is granted and
an ``exists /`` is answered; the time from just before the process was spawned to that
answer is "serving after". The server is then stopped cleanly again. With ``--cold``
the page cache is dropped before each start (needs root), so the snapshot is read from
the disk. The server log's recovery line gives the split (snapshot load, log replay).

Nothing is built here: run ``cargo build --release --workspace`` first.
Standard library only (Python 3.11).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "compat"))
from compare import REPO_ROOT, Server, populate  # noqa: E402
import slow_readers  # noqa: E402

RECOVERED = re.compile(
    r"recovered zxid \S+ in (\d+) ms: snapshot \S+ loaded in (\d+) ms, log read in (\d+) ms, (\d+) txns"
)
POLL_INTERVAL_S = 0.005


def first_answer(port: int, deadline_s: float) -> float:
    """Polls until a session is granted and exists("/") answered; returns when."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            control = slow_readers.ControlSession(port)
            try:
                if control.call(3, slow_readers._string("/") + b"\x00") == 0:
                    return time.monotonic()
            finally:
                control.close()
        except (OSError, ConnectionError):
            pass
        time.sleep(POLL_INTERVAL_S)
    raise RuntimeError(f"no answer on port {port} within {deadline_s} s")


def drop_page_cache() -> None:
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def restart_once(server: Server, cold: bool) -> tuple[float, str]:
    if cold:
        drop_page_cache()
    lines_before = len(server.log_path.read_text(errors="replace").splitlines())
    started = time.monotonic()
    server.start_process()
    answered = first_answer(server.port, 120.0)
    log = "\n".join(server.log_path.read_text(errors="replace").splitlines()[lines_before:])
    m = RECOVERED.search(log)
    split = (
        f"recovery {m.group(1)} ms (snapshot {m.group(2)} ms, log {m.group(3)} ms, {m.group(4)} txns)"
        if m
        else "?"
    )
    server.stop()
    return answered - started, split


class RestartableServer(Server):
    """Keeps its port and data directory across restarts."""

    def start_process(self) -> None:
        cmd = self.command_line()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--znodes", type=int, default=1_000_000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--cold", action="store_true", help="drop the page cache before each start")
    p.add_argument("--server", choices=("ferrokeeper", "apache"), default="ferrokeeper")
    p.add_argument("--ferrokeeper", type=Path, default=REPO_ROOT / "target/release/ferrokeeper")
    p.add_argument("--java", default=os.environ.get("JAVA", "java"))
    p.add_argument("--apache-heap", default="1g", help="Apache's -Xmx")
    p.add_argument("--loadgen", type=Path, default=REPO_ROOT / "target/release/ferrokeeper-loadgen")
    opts = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="fk-restart-") as tmp:
        server = RestartableServer(opts.server, Path(tmp), opts)
        server.start()
        loaded = time.monotonic()
        populate(opts.loadgen, server.hosts, opts.znodes)
        print(f"loaded {opts.znodes:,} znodes in {time.monotonic() - loaded:.1f} s", flush=True)
        server.stop()
        times = []
        for i in range(opts.repeats):
            seconds, split = restart_once(server, opts.cold)
            times.append(seconds)
            print(f"restart {i + 1}: serving after {seconds:.3f} s; {split}", flush=True)
        print(
            f"{opts.server} {'cold' if opts.cold else 'warm'}: median {statistics.median(times):.3f} s, "
            f"min {min(times):.3f} s, max {max(times):.3f} s over {len(times)} restarts"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
