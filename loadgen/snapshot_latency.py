#!/usr/bin/env python3
"""Write latency with and without a snapshot in progress, on a 1M-znode tree.

Two Ferrokeeper servers run side by side, each in its own new data directory:

- "no snapshots": ``snapCount`` so large that no snapshot starts while measuring;
- "snapshotting": a small ``snapCount``, so a new snapshot of the whole tree
  starts as soon as the previous one is written: the tree is being snapshotted
  during the whole measured run.

Both are loaded with the same N znodes of 100 bytes (the loadgen's setup), then
the same setData run (16 sessions x 8 outstanding, fsync on) goes against each
in turn, several times, alternating. Snapshots written during each run are
counted from the server log ("snapshot written: ... in N ms" lines), so the
table shows that the second server really was snapshotting throughout.

Nothing is built here: run ``cargo build --release --workspace`` first.
Standard library only (Python 3.11).
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import REPO_ROOT, Server, ServerError  # noqa: E402

SNAPSHOT_LINE = re.compile(r"snapshot written: .* \((\d+) znodes in (\d+) ms\)")


class TunedServer(Server):
    """A Ferrokeeper with extra zoo.cfg keys."""

    def __init__(self, workdir: Path, opts: argparse.Namespace, extra: dict[str, str]):
        super().__init__("ferrokeeper", workdir, opts)
        self.extra = extra

    def config(self) -> dict[str, str]:
        return {**super().config(), **self.extra}

    def snapshots_ms(self) -> list[int]:
        """Durations of the snapshots written so far, from the server log."""
        text = self.log_path.read_text(errors="replace")
        return [int(m.group(2)) for m in SNAPSHOT_LINE.finditer(text)]


def loadgen(opts, server: Server, extra: list[str], json_path: Path | None) -> tuple[list[str], dict]:
    cmd = [
        str(opts.loadgen), "--connect", f"127.0.0.1:{server.port}",
        "--keys", str(opts.znodes), "--value-size", "100", "--progress", "never",
        "--server-pid", str(server.pid), *extra,
    ]
    if json_path is not None:
        cmd += ["--json", str(json_path)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=opts.timeout)
    if r.returncode != 0:
        raise ServerError(f"loadgen exit {r.returncode}: {(r.stdout + r.stderr)[-800:]}")
    return cmd, (json.loads(json_path.read_text()) if json_path else {})


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--znodes", type=int, default=1_000_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--duration", type=float, default=10)
    p.add_argument("--warmup", type=float, default=2)
    p.add_argument("--snap-count", type=int, default=20_000,
                   help="snapCount of the snapshotting server")
    p.add_argument("--timeout", type=float, default=900, help="seconds allowed per loadgen run")
    p.add_argument("--ferrokeeper", type=Path, default=REPO_ROOT / "target/release/ferrokeeper")
    p.add_argument("--loadgen", type=Path, default=REPO_ROOT / "target/release/ferrokeeper-loadgen")
    p.add_argument("--out", type=Path, help="also write the markdown table to this file")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    opts = parse_args(argv)
    workroot = Path(tempfile.mkdtemp(prefix="fk-snaplat-"))
    modes = {
        "no snapshots": {"snapCount": "1000000000000"},
        "snapshotting": {"snapCount": str(opts.snap_count)},
    }
    servers = {name: TunedServer(workroot / name.replace(" ", "-"), opts, extra)
               for name, extra in modes.items()}
    rows: dict[str, list[dict]] = {name: [] for name in modes}
    run_cmd: list[str] = []
    try:
        for name, server in servers.items():
            server.dir.mkdir(parents=True)
            server.start()
            started = time.monotonic()
            loadgen(opts, server, ["--workload", "getset", "--reads", "100", "--sessions", "1",
                                   "--outstanding", "1", "--warmup", "0", "--duration", "1"], None)
            print(f"{name}: loaded {opts.znodes:,} znodes in {time.monotonic() - started:.1f} s",
                  flush=True)
        for repeat in range(opts.repeats):
            for name, server in servers.items():
                before = len(server.snapshots_ms())
                run_cmd, j = loadgen(opts, server, [
                    "--workload", "getset", "--reads", "0", "--no-setup", "--sessions", "16",
                    "--outstanding", "8", "--warmup", str(opts.warmup),
                    "--duration", str(opts.duration), "--seed", str(repeat + 1),
                ], workroot / f"{name}-{repeat}.json")
                snaps = server.snapshots_ms()[before:]
                lat = j["latency_us"]
                row = {
                    "ops_s": j["throughput_ops_per_s"], "p50": lat["p50"], "p99": lat["p99"],
                    "p999": lat["p99_9"], "max": lat["max"], "errors": j["errors"],
                    "snapshots": len(snaps), "snapshot_ms": snaps,
                }
                rows[name].append(row)
                print(f"{name} #{repeat + 1}: {json.dumps(row)}", flush=True)
    except (ServerError, subprocess.TimeoutExpired) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(workroot, ignore_errors=True)
    table = report(opts, rows, run_cmd)
    print(table)
    if opts.out:
        opts.out.write_text(table + "\n")
    return 0


def report(opts, rows: dict[str, list[dict]], run_cmd: list[str]) -> str:
    def ms(us: float) -> str:
        return f"{us / 1000:.2f}"

    def spread(values: list[float], fmt) -> str:
        return f"{fmt(statistics.median(values))} ({fmt(min(values))}–{fmt(max(values))})"

    shown = shlex.join(["ferrokeeper-loadgen", *run_cmd[1:]])
    shown = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", shown)
    shown = re.sub(r"--server-pid \d+", "--server-pid PID", shown)
    shown = re.sub(r"--json \S+", "--json run.json", shown)
    out = [
        f"setData of 100 B on a tree of {opts.znodes:,} znodes, median (min–max) over "
        f"{opts.repeats} repeats; command: `{shown}`",
        "",
        "| server | ops/s | p50 ms | p99 ms | p99.9 ms | max ms | errors | snapshots written during the runs (duration ms) |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, rs in rows.items():
        durations = [d for r in rs for d in r["snapshot_ms"]]
        snaps = f"{len(durations)}" + (f" ({min(durations)}–{max(durations)})" if durations else "")
        out.append(
            f"| {name} | {spread([r['ops_s'] for r in rs], lambda v: f'{v:,.0f}')} | "
            f"{spread([r['p50'] for r in rs], ms)} | {spread([r['p99'] for r in rs], ms)} | "
            f"{spread([r['p999'] for r in rs], ms)} | {spread([r['max'] for r in rs], ms)} | "
            f"{sum(r['errors'] for r in rs)} | {snaps} |"
        )
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
