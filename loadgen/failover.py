#!/usr/bin/env python3
"""How long a client waits for a write when an ensemble's leader fails, measured as a
user's client sees it, for Ferrokeeper and Apache ZooKeeper side by side.

Each trial starts a fresh 3-server ensemble (tests/compat/ensemble.py: fresh data
dirs, free ports, 127.0.0.1) and two ``ferrokeeper-loadgen probe`` sessions writing
back to back: one on a follower (it survives), one on the leader. Once both write,
the leader is SIGKILLed (``--fault kill``) or SIGSTOPped (``--fault pause``: its
connections stay open and nothing is delivered, as in a silent partition), and the
probes go on writing. From their acknowledgement times:

- survivor gap: the longest wait for a write on the surviving server's session after
  the fault (lost connections are counted: Apache drops them while electing);
- leader client, after reconnect: from the moment that session is connected to another
  server to its first acknowledged write (the client's own time to notice the loss and
  its reconnect pause are the client's, so they are reported apart as "total").

Usage: python3 loadgen/failover.py [--trials 10] [--kinds ferrokeeper,apache]
       [--fault kill|pause] [--cfg key=value ...] [--json out.json]
Nothing is built here: run ``cargo build --release --workspace`` first.
Standard library only (Python 3.11).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests" / "compat"))
from ensemble import Ensemble  # noqa: E402

LOADGEN = REPO_ROOT / "target" / "release" / "ferrokeeper-loadgen"
# Writes flow this long before the fault, and the probes stop this long after it
# (longer for a pause: a silent leader is noticed after syncLimit x tickTime).
BEFORE_FAULT_S = 1.0
AFTER_FAULT_S = {"kill": 3.0, "pause": 25.0}
FIRST_ACK_DEADLINE_S = 30.0


class Probe:
    """One probe process; its JSON lines are collected by a reader thread."""

    def __init__(self, loadgen: Path, servers: list[str], duration_s: float, path: str):
        self.events: list[dict] = []
        self.first_ack = threading.Event()
        self.proc = subprocess.Popen(
            [
                str(loadgen),
                "probe",
                "--connect",
                ",".join(servers),
                "--duration",
                f"{duration_s:.3f}",
                "--path",
                path,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except json.JSONDecodeError:
                continue
            self.events.append(ev)
            if ev.get("ev") == "first_ack":
                self.first_ack.set()

    def finish(self, timeout_s: float) -> None:
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=5)

    def acks_s(self) -> list[float]:
        done = [e for e in self.events if e.get("ev") == "done"]
        return [t / 1e6 for t in done[-1]["acks_us"]] if done else []

    def after(self, kind: str, t_s: float) -> list[dict]:
        return [e for e in self.events if e.get("ev") == kind and e["t_us"] / 1e6 >= t_s]


def longest_wait(acks: list[float], since: float, until: float) -> float:
    """The longest stretch after ``since`` without an acknowledgement (to ``until``
    if none came after the last one)."""
    later = [t for t in acks if t > since]
    if not later:
        return until - since
    prev = max([t for t in acks if t <= since], default=since)
    gaps = []
    for t in later:
        gaps.append(t - max(prev, since))
        prev = t
    return max(gaps)


def leader_of(ens: Ensemble) -> int:
    modes = ens.modes()
    return modes.index("leader")


def one_trial(kind: str, fault: str, workdir: Path, cfg: dict, loadgen: Path) -> dict:
    ens = Ensemble(kind, workdir, participants=3, extra_cfg=cfg).start()
    probes: list[Probe] = []
    try:
        leader = leader_of(ens)
        others = [i for i in range(3) if i != leader]
        hosts = [m.hosts for m in ens.members]
        duration = BEFORE_FAULT_S + AFTER_FAULT_S[fault] + 5.0
        survivor = Probe(loadgen, [hosts[others[0]], hosts[others[1]]], duration, "/probe-a")
        on_leader = Probe(loadgen, [hosts[leader], *(hosts[i] for i in others)], duration, "/probe-b")
        probes = [survivor, on_leader]
        for p in probes:
            if not p.first_ack.wait(FIRST_ACK_DEADLINE_S):
                raise RuntimeError(f"{kind}: a probe never wrote\n{ens.log_tail(30)}")
        time.sleep(BEFORE_FAULT_S)  # writes flowing on both sessions before the fault
        pid = ens.members[leader].proc.pid
        t_fault = time.time()
        os.kill(pid, signal.SIGKILL if fault == "kill" else signal.SIGSTOP)
        for p in probes:
            p.finish(duration + 30)
        t_end = time.time()
        if fault == "pause":
            os.kill(pid, signal.SIGCONT)
        a_acks, b_acks = survivor.acks_s(), on_leader.acks_s()
        reconnected = on_leader.after("connected", t_fault)
        r = reconnected[0]["t_us"] / 1e6 if reconnected else None
        b_first = min([t for t in b_acks if r is not None and t >= r], default=None)
        return {
            "kind": kind,
            "fault": fault,
            "survivor_gap_ms": 1000 * longest_wait(a_acks, t_fault, t_end),
            "survivor_lost": len(survivor.after("lost", t_fault)),
            "leader_client_after_reconnect_ms": (
                1000 * (b_first - r) if b_first is not None else None
            ),
            "leader_client_total_ms": (1000 * (b_first - t_fault) if b_first else None),
            "acks": len(a_acks) + len(b_acks),
        }
    finally:
        for p in probes:
            if p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait()
        for m in ens.members:
            if m.proc is not None and m.proc.poll() is None:
                try:
                    os.kill(m.proc.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
        ens.stop()


def summarise(rows: list[dict]) -> str:
    def stat(values: list[float | None]) -> str:
        vals = [v for v in values if v is not None]
        if not vals:
            return "n/a"
        missing = len(values) - len(vals)
        text = f"{statistics.median(vals):.0f} / {max(vals):.0f}"
        return text + (f" ({missing} never)" if missing else "")

    lines = [
        "| server | fault | trials | survivor's write gap ms, median / worst | survivor's lost connections | "
        "leader's client after reconnect ms, median / worst | leader's client from the fault ms, median / worst |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    keys = sorted({(r["kind"], r["fault"]) for r in rows})
    for kind, fault in keys:
        rs = [r for r in rows if (r["kind"], r["fault"]) == (kind, fault)]
        lines.append(
            f"| {kind} | {fault} | {len(rs)} | {stat([r['survivor_gap_ms'] for r in rs])} | "
            f"{sum(r['survivor_lost'] for r in rs)} | "
            f"{stat([r['leader_client_after_reconnect_ms'] for r in rs])} | "
            f"{stat([r['leader_client_total_ms'] for r in rs])} |"
        )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--kinds", default="ferrokeeper,apache")
    ap.add_argument("--fault", choices=["kill", "pause"], default="kill")
    ap.add_argument("--cfg", action="append", default=[], help="zoo.cfg key=value for every server")
    ap.add_argument("--loadgen", type=Path, default=LOADGEN)
    ap.add_argument("--json", type=Path, help="write every trial's figures here")
    args = ap.parse_args()
    cfg = dict(kv.split("=", 1) for kv in args.cfg)
    if not args.loadgen.is_file():
        print(f"{args.loadgen} not found: cargo build --release --workspace", file=sys.stderr)
        return 2
    rows = []
    top = Path(tempfile.mkdtemp(prefix="fk-failover-"))
    try:
        for trial in range(args.trials):
            for kind in args.kinds.split(","):
                row = one_trial(kind, args.fault, top / f"{kind}-{trial}", cfg, args.loadgen)
                print(json.dumps(row), flush=True)
                rows.append(row)
    finally:
        shutil.rmtree(top, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    print(summarise(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
