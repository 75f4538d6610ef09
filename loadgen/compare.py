#!/usr/bin/env python3
"""Ferrokeeper vs Apache ZooKeeper, side by side, with ferrokeeper-loadgen.

For every workload and every repeat the same loadgen command runs first against
a fresh Apache ZooKeeper, then against a fresh Ferrokeeper (each in its own new
data directory under one temporary directory, so on the same disk), with
``--server-pid`` (server CPU per op) and ``--json`` (results). Each server is
stopped right after its run. The result is a markdown table of throughput,
latency and server CPU per op, with the Ferrokeeper/Apache ratios (median and
min-max over the repeats, each ratio taken between the two runs of one repeat).

``--memory`` instead loads N znodes of 100 bytes into each server and reports its
resident memory (and, for Apache, the live heap after a full GC via jcmd).

Nothing is built here: run ``cargo build --release --workspace`` first.
Standard library only (Python 3.11).
"""

from __future__ import annotations

import argparse
import atexit
import datetime as _dt
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# Shared with the compatibility tests: port picking, four-letter words and the
# Debian ZooKeeper class path (tests/compat/servers.py, stdlib only).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "compat"))
import servers as compat_servers  # noqa: E402
from ensemble import Ensemble  # noqa: E402
from servers import ServerStartError as ServerError  # noqa: E402
from servers import apache_classpath  # noqa: E402
from servers import four_letter_word as four_letter  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]

ZK_JAR_DIR = Path(os.environ.get("ZK_JAR_DIR", "/usr/share/java"))
ZK_CONF_DIR = os.environ.get("ZK_CONF_DIR", "/etc/zookeeper/conf")

STOP_DEADLINE_S = 15.0
SERVER_NAMES = {"apache": "Apache ZooKeeper", "ferrokeeper": "Ferrokeeper"}


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    args: tuple[str, ...]
    # Which issue target(s) this row is checked against.
    throughput_target: float | None = None


def workloads(sessions: int, outstanding: int) -> list[Workload]:
    conc = ("--sessions", str(sessions), "--outstanding", str(outstanding))
    return [
        Workload("reads", "100% reads (getData)", ("--workload", "getset", "--reads", "100", *conc), 3.0),
        Workload("mixed", "90% reads / 10% setData", ("--workload", "getset", "--reads", "90", *conc)),
        Workload("writes", "100% writes (setData)", ("--workload", "getset", "--reads", "0", *conc), 2.0),
        Workload("churn", "create/delete churn", ("--workload", "churn", *conc)),
        Workload(
            "latency",
            "1 session x 1 outstanding, 90/10",
            ("--workload", "getset", "--reads", "90", "--sessions", "1", "--outstanding", "1"),
        ),
    ]


# --------------------------------------------------------------------------- processes

_live: list[subprocess.Popen] = []


def _kill_all_live() -> None:
    for proc in list(_live):
        _terminate(proc, grace=3.0)


atexit.register(_kill_all_live)


def _terminate(proc: subprocess.Popen, grace: float = STOP_DEADLINE_S) -> int | None:
    """SIGTERM the process (its own process group when it leads one), SIGKILL later."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                try:
                    proc.kill()
                except ProcessLookupError:
                    pass
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        except ProcessLookupError:
            pass
    if proc in _live:
        _live.remove(proc)
    return proc.returncode


def _on_sigterm(signum, _frame):
    # Turn SIGTERM/SIGHUP into an exception so the finally blocks stop the servers.
    raise KeyboardInterrupt(f"signal {signum}")


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM etc. from /proc/PID/status, in KiB."""
    out: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        m = re.match(r"(Vm\w+|Rss\w+):\s+(\d+)\s+kB", line)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out


CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU seconds all cores spent busy (user+nice+system), from /proc/stat.

    irq/softirq are left out: loopback networking lands there and is not
    attributed to any process either way."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    user, nice, system = (int(x) for x in fields[1:4])
    return (user + nice + system) / CLK_TCK


def process_cpu_s(pid: int) -> float | None:
    """utime+stime of a live process, seconds."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = text[text.rindex(")") + 2 :].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def servers_cpu_s(pids: list[int]) -> float | None:
    """CPU seconds of every server process together; None if one is gone."""
    total = 0.0
    for pid in pids:
        cpu = process_cpu_s(pid)
        if cpu is None:
            return None
        total += cpu
    return total


def children_cpu_s() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def self_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def wait_quiet(limit_s: float, threshold_cores: float = 0.25) -> str:
    """Waits (up to limit_s) until the machine is idle: busy < threshold over 1 s.
    Returns '' when it is, else a note for the report."""
    deadline = time.monotonic() + limit_s
    said = False
    while True:
        b0 = machine_busy_s()
        time.sleep(1.0)
        busy = machine_busy_s() - b0
        if busy < threshold_cores:
            return ""
        if time.monotonic() >= deadline:
            return f"machine busy ({busy:.2f} cores) before the run"
        if not said:
            print(f"    (waiting for the machine to go quiet: {busy:.2f} cores busy)", flush=True)
            said = True
        time.sleep(4.0)


class Server(compat_servers.Server):
    """A fresh server with stock settings: the compatibility tests' process
    handling (free port, readiness, stop), but none of their test-only keys
    and Apache with its default JVM settings and `--apache-heap`."""

    def __init__(self, kind: str, workdir: Path, opts: argparse.Namespace, extra: dict | None = None):
        super().__init__(kind, workdir, extra)
        self.opts = opts

    def config(self) -> dict[str, str]:
        cfg = {
            "tickTime": "2000",
            "dataDir": str(self.dir / "data"),
            "clientPort": str(self.port),
            "clientPortAddress": "127.0.0.1",
            "4lw.commands.whitelist": "*",
            # 0 = no per-IP connection limit (both servers).
            "maxClientCnxns": "0",
        }
        # No AdminServer on either (its default port 8080 would collide).
        cfg["admin.enableServer"] = "false"
        # An ensemble member's server lines, limits and peerType.
        cfg.update({k: str(v) for k, v in self.extra_cfg.items()})
        return cfg

    def command_line(self) -> list[str]:
        if self.kind == "ferrokeeper":
            return [str(self.opts.ferrokeeper), str(self.cfg_path)]
        return [
            self.opts.java,
            f"-Xmx{self.opts.apache_heap}",
            "-cp",
            apache_classpath(),
            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            str(self.cfg_path),
        ]

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


class Target:
    """What one run measures: a standalone server, or with ``--ensemble P[+O]``
    an ensemble of P participants and O observers (tests/compat/ensemble.py:
    every member in a fresh dir with its myid and server lines), the load
    spread over every member's client port and the CPU summed over them."""

    def __init__(self, kind: str, workdir: Path, opts: argparse.Namespace):
        self.kind = kind
        self.ensemble: Ensemble | None = None
        self.server: Server | None = None
        if opts.ensemble:
            participants, _, observers = opts.ensemble.partition("+")
            self.ensemble = Ensemble(
                kind,
                workdir,
                participants=int(participants),
                observers=int(observers or 0),
                member_factory=lambda k, d, extra: Server(k, d, opts, extra),
            )
        else:
            self.server = Server(kind, workdir, opts)

    @property
    def members(self) -> list[Server]:
        return self.ensemble.members if self.ensemble else [self.server]

    def start(self) -> None:
        if self.ensemble:
            self.ensemble.start()
        else:
            self.server.start()

    @property
    def connect(self) -> str:
        return ",".join(m.hosts for m in self.members)

    @property
    def pids(self) -> list[int]:
        return [m.pid for m in self.members]

    def alive(self) -> bool:
        return all(m.alive() for m in self.members)

    def exit_codes(self) -> list[int | None]:
        return [m.proc.returncode if m.proc else None for m in self.members]

    def stop(self) -> list[int | None]:
        return [m.stop() for m in self.members]

    @property
    def log_path(self) -> str:
        return ", ".join(str(m.log_path) for m in self.members)


def ensure_apache(opts: argparse.Namespace) -> None:
    if os.environ.get("ZK_CLASSPATH") or (ZK_JAR_DIR / "zookeeper.jar").exists():
        if shutil.which(opts.java) is None:
            sys.exit(f"error: '{opts.java}' not found (needed for Apache ZooKeeper)")
        return
    if os.geteuid() != 0:
        sys.exit(
            f"error: {ZK_JAR_DIR / 'zookeeper.jar'} is missing; install Apache ZooKeeper "
            "with: sudo apt-get install -y zookeeper"
        )
    print("Apache ZooKeeper is missing; running apt-get install -y zookeeper", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    r = subprocess.run(["apt-get", "install", "-y", "zookeeper"], env=env)
    if r.returncode != 0 or not (ZK_JAR_DIR / "zookeeper.jar").exists():
        sys.exit("error: apt-get install -y zookeeper failed")


# --------------------------------------------------------------------------- runs


@dataclass
class RunResult:
    server: str
    workload: str
    repeat: int
    ok: bool
    throughput: float = 0.0
    ops: int = 0
    errors: int = 0
    errors_by_code: dict = field(default_factory=dict)
    p50_us: float = 0.0
    p99_us: float = 0.0
    p999_us: float = 0.0
    server_cpu_us_per_op: float | None = None
    server_cores: float | None = None
    loadgen_cpu_us_per_op: float | None = None
    # Cores used by everything else on the machine during the loadgen run
    # (busy CPU minus server, loadgen and this script); high = disturbed run.
    other_cores: float | None = None
    note: str = ""


def populate(loadgen: Path, hosts: str, znodes: int) -> None:
    """Loads `znodes` znodes of 100 bytes through the loadgen's setup (one short
    getset run, whose key creation is the point)."""
    subprocess.run(
        [str(loadgen), "--connect", hosts, "--keys", str(znodes),
         "--value-size", "100", "--progress", "never", "--workload", "getset",
         "--reads", "100", "--sessions", "1", "--outstanding", "1", "--warmup", "0",
         "--duration", "1"],
        check=True, capture_output=True, timeout=1800,
    )


def loadgen_command(opts, wl: Workload, connect: str, pids: list[int], json_path: Path) -> list[str]:
    return [
        str(opts.loadgen),
        "--connect",
        connect,
        *wl.args,
        "--value-size",
        str(opts.value_size),
        "--warmup",
        f"{opts.warmup:g}",
        "--duration",
        f"{opts.duration:g}",
        "--progress",
        "never",
        "--json",
        str(json_path),
        *(arg for pid in pids for arg in ("--server-pid", str(pid))),
    ]


def display_command(opts, wl: Workload) -> str:
    members = 1
    if opts.ensemble:
        p, _, o = opts.ensemble.partition("+")
        members = int(p) + int(o or 0)
    connect = ",".join(["127.0.0.1:PORT"] * members)
    cmd = loadgen_command(opts, wl, connect, [0] * members, Path("RUN.json"))
    cmd[0] = "ferrokeeper-loadgen"
    return shlex.join(cmd).replace("--server-pid 0", "--server-pid PID")


def run_one(opts, wl: Workload, kind: str, repeat: int, workroot: Path, json_dir: Path) -> RunResult:
    tag = f"{wl.key}-r{repeat}-{kind}"
    sdir = Path(tempfile.mkdtemp(prefix=f"{tag}-", dir=workroot))
    server = Target(kind, sdir, opts)
    json_path = json_dir / f"{tag}.json"
    out_path = json_dir / f"{tag}.out"
    res = RunResult(kind, wl.key, repeat, ok=False)
    lg: subprocess.Popen | None = None
    try:
        t0 = time.monotonic()
        server.start()
        start_s = time.monotonic() - t0
        cmd = loadgen_command(opts, wl, server.connect, server.pids, json_path)
        busy0, srv0, kids0, me0 = machine_busy_s(), servers_cpu_s(server.pids), children_cpu_s(), self_cpu_s()
        t_run = time.monotonic()
        with open(out_path, "wb") as out:
            out.write(f"$ {shlex.join(cmd)}\n".encode())
            out.flush()
            lg = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
            _live.append(lg)
            limit = opts.warmup + opts.duration + 120
            try:
                rc = lg.wait(timeout=limit)
            except subprocess.TimeoutExpired:
                _terminate(lg, grace=5)
                res.note = f"loadgen did not finish within {limit:.0f}s"
                return res
            finally:
                if lg in _live:
                    _live.remove(lg)
        srv1 = servers_cpu_s(server.pids)
        if None not in (srv0, srv1):
            wall = time.monotonic() - t_run
            ours = (srv1 - srv0) + (children_cpu_s() - kids0) + (self_cpu_s() - me0)
            res.other_cores = max(0.0, (machine_busy_s() - busy0 - ours) / wall)
        if not server.alive():
            res.note = f"server died during the run (exit {server.exit_codes()})"
        if rc != 0 or not json_path.exists():
            res.note = (res.note + f"; loadgen exit {rc}").lstrip("; ")
            tail = "\n".join(out_path.read_text(errors="replace").splitlines()[-8:])
            print(f"    ! {tag}: loadgen exit {rc}\n{tail}", flush=True)
            return res
        j = json.loads(json_path.read_text())
        lat = j.get("latency_us", {})
        res.ok = True
        res.throughput = float(j.get("throughput_ops_per_s", 0.0))
        res.ops = int(j.get("ops", 0))
        res.errors = int(j.get("errors", 0))
        res.errors_by_code = dict(j.get("errors_by_code", {}))
        res.p50_us = float(lat.get("p50", 0))
        res.p99_us = float(lat.get("p99", 0))
        res.p999_us = float(lat.get("p99_9", 0))
        for c in j.get("cpu", []):
            if c.get("what") == "server":
                res.server_cpu_us_per_op = float(c.get("us_per_op", 0.0))
                res.server_cores = float(c.get("cores", 0.0))
            elif c.get("what") == "loadgen":
                res.loadgen_cpu_us_per_op = float(c.get("us_per_op", 0.0))
        if res.errors:
            res.note = (res.note + f"; {res.errors} errors {res.errors_by_code}").lstrip("; ")
        if res.other_cores is not None and res.other_cores > opts.other_cores_max:
            res.note = (res.note + f"; other processes used {res.other_cores:.2f} cores").lstrip("; ")
        cpu = "n/a" if res.server_cpu_us_per_op is None else f"{res.server_cpu_us_per_op:.1f}"
        print(
            f"    {SERVER_NAMES[kind]:<17} {res.throughput:>10.0f} ops/s  p50 {res.p50_us/1000:.3f} ms  "
            f"p99 {res.p99_us/1000:.3f} ms  server cpu {cpu} us/op  (start {start_s:.1f}s)"
            + (f"  other {res.other_cores:.2f} cores" if res.other_cores is not None else "")
            + (f"  [{res.note}]" if res.note else ""),
            flush=True,
        )
        return res
    finally:
        if lg is not None and lg.poll() is None:
            _terminate(lg, grace=5)
        codes = server.stop()
        if any(code not in (0, None, -signal.SIGTERM, 143) for code in codes):
            # Apache exits with 143 (SIGTERM) or 0; anything else is worth a look.
            print(f"    ! {kind} exit codes {codes} on stop (log {server.log_path})", flush=True)
        if not opts.keep:
            for m in server.members:
                shutil.rmtree(m.dir / "data", ignore_errors=True)


# --------------------------------------------------------------------------- table


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def fmt_num(x: float, digits: int = 0) -> str:
    if x != x:  # nan
        return "n/a"
    return f"{x:,.{digits}f}"


def fmt_ratio(xs: list[float]) -> str:
    xs = [x for x in xs if x == x]
    if not xs:
        return "n/a"
    if len(xs) == 1:
        return f"{xs[0]:.2f}x"
    return f"**{med(xs):.2f}x** ({min(xs):.2f}–{max(xs):.2f})"


def fmt_spread(xs: list[float], digits: int = 0, scale: float = 1.0) -> str:
    xs = [x / scale for x in xs]
    if not xs:
        return "n/a"
    if len(xs) == 1:
        return fmt_num(xs[0], digits)
    return f"{fmt_num(med(xs), digits)} ({fmt_num(min(xs), digits)}–{fmt_num(max(xs), digits)})"


def pairs(results: list[RunResult], wl: str) -> list[tuple[RunResult, RunResult]]:
    by = {(r.server, r.repeat): r for r in results if r.workload == wl}
    out = []
    for (server, rep), a in sorted(by.items()):
        if server != "apache":
            continue
        f = by.get(("ferrokeeper", rep))
        if f is not None and a.ok and f.ok:
            out.append((a, f))
    return out


def ratio(num: float | None, den: float | None) -> float:
    if num is None or den is None or den == 0:
        return float("nan")
    return num / den


def build_table(results: list[RunResult], wls: list[Workload]) -> tuple[str, list[str]]:
    lines = [
        "| workload | Apache ops/s | Ferrokeeper ops/s | throughput FK/Apache | "
        "Apache p50 / p99 ms | Ferrokeeper p50 / p99 ms | p99 FK/Apache | "
        "Apache CPU µs/op | Ferrokeeper CPU µs/op | CPU/op FK/Apache |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    verdicts: list[str] = []
    for wl in wls:
        ps = pairs(results, wl.key)
        if not ps:
            lines.append(f"| {wl.title} | (no successful pair of runs) |||||||||")
            continue
        a_tp = [a.throughput for a, _ in ps]
        f_tp = [f.throughput for _, f in ps]
        tp_r = [ratio(f.throughput, a.throughput) for a, f in ps]
        p99_r = [ratio(f.p99_us, a.p99_us) for a, f in ps]
        cpu_r = [ratio(f.server_cpu_us_per_op, a.server_cpu_us_per_op) for a, f in ps]
        a_cpu = [a.server_cpu_us_per_op for a, _ in ps if a.server_cpu_us_per_op is not None]
        f_cpu = [f.server_cpu_us_per_op for _, f in ps if f.server_cpu_us_per_op is not None]
        lines.append(
            f"| {wl.title} | {fmt_spread(a_tp)} | {fmt_spread(f_tp)} | {fmt_ratio(tp_r)} | "
            f"{med([a.p50_us for a, _ in ps])/1000:.3f} / {med([a.p99_us for a, _ in ps])/1000:.3f} | "
            f"{med([f.p50_us for _, f in ps])/1000:.3f} / {med([f.p99_us for _, f in ps])/1000:.3f} | "
            f"{fmt_ratio(p99_r)} | {fmt_spread(a_cpu, 1)} | {fmt_spread(f_cpu, 1)} | {fmt_ratio(cpu_r)} |"
        )
        if wl.throughput_target is not None:
            m = med(tp_r)
            verdicts.append(
                f"- {wl.title}: throughput {m:.2f}x Apache (target ≥ {wl.throughput_target:g}x): "
                + ("met" if m >= wl.throughput_target else "missed")
            )
        m = med(p99_r)
        verdicts.append(
            f"- {wl.title}: p99 {m:.2f}x Apache (target ≤ 0.5x): " + ("met" if m <= 0.5 else "missed")
        )
        m = med([x for x in cpu_r if x == x])
        verdicts.append(
            f"- {wl.title}: server CPU/op {m:.2f}x Apache (target ≤ 0.2x): "
            + ("met" if m <= 0.2 else "missed")
        )
    n_rep = max((r.repeat for r in results), default=0)
    lines.append("")
    lines.append(
        f"Absolute columns: median (min–max) over {n_rep} repeat(s); p50/p99: medians. Ratios are "
        "Ferrokeeper divided by Apache, taken per repeat (the two runs of one repeat ran back to back), "
        "**median** (min–max). Throughput: higher is better; p99 and CPU/op: lower is better."
    )
    return "\n".join(lines), verdicts


def errors_summary(results: list[RunResult]) -> list[str]:
    out = []
    for r in results:
        if not r.ok or r.errors or r.note:
            what = "FAILED" if not r.ok else "note"
            out.append(f"- {r.workload} repeat {r.repeat} {SERVER_NAMES[r.server]}: {what}: {r.note}")
    return out


# --------------------------------------------------------------------------- machine


def machine_info(data_dir: Path) -> list[str]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    df = subprocess.run(["df", "-hT", str(data_dir)], capture_output=True, text=True).stdout.strip()
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()
    return [
        f"- cores (nproc): {os.cpu_count()}; CPU: {model}; RAM: {mem}",
        f"- kernel: {platform.release()}",
        f"- java: {java[0] if java else '?'}",
        f"- data dir filesystem (`df -hT {data_dir}`):",
        "",
        "```",
        df,
        "```",
    ]


# --------------------------------------------------------------------------- memory


def jcmd(pid: int, *args: str) -> str | None:
    exe = shutil.which("jcmd")
    if exe is None:
        return None
    r = subprocess.run([exe, str(pid), *args], capture_output=True, text=True, timeout=120)
    return r.stdout + r.stderr


def apache_live_heap_kib(pid: int) -> tuple[int | None, str]:
    out = jcmd(pid, "GC.run")
    if out is None:
        return None, "jcmd not found; live heap not measured"
    time.sleep(1.0)
    info = jcmd(pid, "GC.heap_info") or ""
    m = re.search(r"heap\s+total\s+(\d+)K,\s+used\s+(\d+)K", info)
    if not m:
        return None, f"could not parse jcmd GC.heap_info output: {info.strip()[:300]!r}"
    return int(m.group(2)), f"heap committed {int(m.group(1)) / 1024:.0f} MiB"


def run_memory(opts, workroot: Path, json_dir: Path) -> str:
    n = opts.memory_znodes
    rows = []
    notes = []
    cmd_shown = None
    for kind in ("apache", "ferrokeeper"):
        sdir = Path(tempfile.mkdtemp(prefix=f"memory-{kind}-", dir=workroot))
        server = Server(kind, sdir, opts)
        try:
            server.start()
            time.sleep(1.0)
            idle = proc_status(server.pid)
            json_path = json_dir / f"memory-{kind}.json"
            # The loadgen's setup creates --keys nodes of --value-size bytes,
            # pipelined 1000 at a time on one session; the 1 s getData run after it
            # only proves the nodes are readable.
            cmd = [
                str(opts.loadgen), "--connect", f"127.0.0.1:{server.port}",
                "--workload", "getset", "--reads", "100", "--keys", str(n),
                "--value-size", str(opts.value_size), "--sessions", "1", "--outstanding", "1",
                "--warmup", "0", "--duration", "1", "--progress", "never",
                "--json", str(json_path),
            ]
            cmd_shown = shlex.join(["ferrokeeper-loadgen", *cmd[1:]]).replace(
                f"127.0.0.1:{server.port}", "127.0.0.1:PORT"
            ).replace(str(json_path), "memory.json")
            t0 = time.monotonic()
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=opts.memory_timeout)
            load_s = time.monotonic() - t0
            (json_dir / f"memory-{kind}.out").write_text(r.stdout + r.stderr)
            setup_line = next((l for l in r.stderr.splitlines() if l.startswith("setup:")), "")
            if r.returncode != 0:
                raise ServerError(f"loadgen exit {r.returncode}: {(r.stdout + r.stderr)[-800:]}")
            if not server.alive():
                raise ServerError(f"{kind} died while loading")
            count = "?"
            try:
                mntr = four_letter(server.port, "mntr")
                m = re.search(r"zk_znode_count\s+(\d+)", mntr)
                count = m.group(1) if m else "?"
            except OSError:
                pass
            time.sleep(2.0)
            loaded = proc_status(server.pid)
            heap = ""
            after_gc = {}
            if kind == "apache":
                live, note = apache_live_heap_kib(server.pid)
                after_gc = proc_status(server.pid)
                heap = "n/a" if live is None else f"{live / 1024:.0f} MiB"
                notes.append(f"- Apache: {note}")
            rows.append(
                f"| {SERVER_NAMES[kind]} | {count} | {load_s:.1f} | {idle.get('VmRSS', 0) / 1024:.0f} | "
                f"{loaded.get('VmRSS', 0) / 1024:.0f} | {loaded.get('VmHWM', 0) / 1024:.0f} | "
                + (f"{after_gc.get('VmRSS', 0) / 1024:.0f} | {heap} |" if kind == "apache" else "– | – |")
            )
            print(f"    {rows[-1]}", flush=True)
            if setup_line:
                notes.append(f"- {SERVER_NAMES[kind]}: {setup_line}")
        except (ServerError, subprocess.TimeoutExpired) as e:
            rows.append(f"| {SERVER_NAMES[kind]} | FAILED: {str(e).splitlines()[0]} |||||||")
            print(f"    ! {kind}: {e}", flush=True)
        finally:
            server.stop()
            if not opts.keep:
                shutil.rmtree(sdir / "data", ignore_errors=True)
    mb = "MiB"
    text = [
        f"Memory after loading {n:,} znodes of {opts.value_size} bytes (command: `{cmd_shown}`):",
        "",
        f"| server | zk_znode_count | load s | idle RSS {mb} | RSS loaded {mb} | peak RSS (VmHWM) {mb} | "
        f"RSS after full GC {mb} | live heap after full GC |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        *notes,
        f"- Apache runs with -Xmx{opts.apache_heap} (JVM default collector); its RSS mostly "
        "reflects how much heap the JVM has committed, the live heap is what the data needs.",
    ]
    return "\n".join(text)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Compare Ferrokeeper with Apache ZooKeeper using ferrokeeper-loadgen.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=float, default=2)
    p.add_argument("--duration", type=float, default=8)
    p.add_argument("--sessions", type=int, default=16)
    p.add_argument("--outstanding", type=int, default=8)
    p.add_argument("--value-size", type=int, default=100)
    p.add_argument(
        "--workloads",
        default="reads,mixed,writes,churn,latency",
        help="comma-separated subset of reads,mixed,writes,churn,latency",
    )
    p.add_argument("--out", type=Path, help="also write the markdown report to this file")
    p.add_argument("--json-dir", type=Path, help="keep every run's loadgen JSON and output here")
    p.add_argument("--workdir", type=Path, help="parent of the temporary data dirs (default: $TMPDIR)")
    p.add_argument("--keep", action="store_true", help="keep the servers' data dirs and logs")
    p.add_argument(
        "--ensemble",
        default="",
        help="P or P+O: measure P-participant ensembles (with O observers) instead of "
        "standalone servers; the load is spread over every member",
    )
    p.add_argument("--memory", action="store_true", help="memory mode: load znodes, report RSS")
    p.add_argument("--memory-znodes", type=int, default=1_000_000)
    p.add_argument("--memory-timeout", type=float, default=900, help="seconds allowed per load")
    p.add_argument("--ferrokeeper", type=Path, default=REPO_ROOT / "target/release/ferrokeeper")
    p.add_argument("--loadgen", type=Path, default=REPO_ROOT / "target/release/ferrokeeper-loadgen")
    p.add_argument("--java", default=os.environ.get("JAVA", "java"))
    p.add_argument("--apache-heap", default="1g", help="Apache's -Xmx")
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=120,
        help="before each pair of runs wait up to this many seconds for the machine to be "
        "idle (< 0.25 cores busy); 0 = don't wait",
    )
    p.add_argument(
        "--retry-disturbed",
        type=int,
        default=2,
        help="run a pair again (at most this many times) when other processes disturbed it",
    )
    p.add_argument(
        "--other-cores-max",
        type=float,
        default=0.2,
        help="flag runs during which other processes used more than this many cores",
    )
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    opts = parse_args(argv)
    missing = [str(b) for b in (opts.ferrokeeper, opts.loadgen) if not os.access(b, os.X_OK)]
    if missing:
        print(
            "error: missing binaries: " + ", ".join(missing)
            + "\nbuild them first: cargo build --release --workspace",
            file=sys.stderr,
        )
        return 2
    ensure_apache(opts)
    all_wls = workloads(opts.sessions, opts.outstanding)
    keys = [k.strip() for k in opts.workloads.split(",") if k.strip()]
    unknown = set(keys) - {w.key for w in all_wls}
    if unknown:
        print(f"error: unknown workload(s) {sorted(unknown)}", file=sys.stderr)
        return 2
    wls = [w for w in all_wls if w.key in keys]

    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGHUP, _on_sigterm)

    load1 = os.getloadavg()[0]
    if load1 > 0.5:
        print(f"warning: load average is {load1:.2f}; other work on the machine skews the results",
              flush=True)

    base = opts.workdir or Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    workroot = Path(tempfile.mkdtemp(prefix="fk-compare-", dir=base))
    json_dir = opts.json_dir or workroot / "results"
    json_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    report: list[str] = []
    results: list[RunResult] = []
    interrupted = False
    try:
        report.append(f"# Ferrokeeper vs Apache ZooKeeper ({_dt.datetime.now().strftime('%Y-%m-%d %H:%M')})")
        report.append("")
        report += machine_info(workroot)
        report.append("")
        if opts.memory:
            print(f"memory: loading {opts.memory_znodes:,} znodes into each server", flush=True)
            report.append(run_memory(opts, workroot, json_dir))
        else:
            for rep in range(1, opts.repeats + 1):
                for wl in wls:
                    print(f"[repeat {rep}/{opts.repeats}] {wl.title}", flush=True)
                    for attempt in range(1 + max(0, opts.retry_disturbed)):
                        busy_note = wait_quiet(opts.quiet_wait) if opts.quiet_wait > 0 else ""
                        if busy_note:
                            print(f"    ! {busy_note}; running anyway", flush=True)
                        pair: list[RunResult] = []
                        for kind in ("apache", "ferrokeeper"):
                            try:
                                r = run_one(opts, wl, kind, rep, workroot, json_dir)
                            except ServerError as e:
                                print(f"    ! {kind} failed to start: {e}", flush=True)
                                r = RunResult(kind, wl.key, rep, ok=False, note=str(e).splitlines()[0])
                            if busy_note:
                                r.note = (r.note + "; " + busy_note).lstrip("; ")
                            if attempt:
                                r.note = (r.note + f"; attempt {attempt + 1}").lstrip("; ")
                            pair.append(r)
                        disturbed = any(
                            (r.other_cores or 0.0) > opts.other_cores_max for r in pair
                        )
                        if not disturbed or attempt == opts.retry_disturbed:
                            break
                        print("    (other processes disturbed this pair; running it again)", flush=True)
                    results += pair
            table, verdicts = build_table(results, wls)
            report.append(
                f"Loadgen commands (`--warmup {opts.warmup:g} --duration {opts.duration:g}`, "
                f"{opts.repeats} repeat(s), fresh server and data dir per run, Apache first):"
            )
            report.append("")
            report.append("```")
            report += [display_command(opts, wl) for wl in wls]
            report.append("```")
            report.append("")
            report.append(table)
            report.append("")
            report.append("Targets (median ratio):")
            report.append("")
            report += verdicts
            errs = errors_summary(results)
            if errs:
                report.append("")
                report.append("Runs with errors or notes:")
                report.append("")
                report += errs
            (json_dir / "summary.json").write_text(
                json.dumps([r.__dict__ for r in results], indent=1)
            )
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted; stopping servers", file=sys.stderr, flush=True)
    finally:
        _kill_all_live()
        if not opts.keep:
            # Data dirs and server logs; --json-dir results live elsewhere.
            shutil.rmtree(workroot, ignore_errors=True)
    if interrupted:
        return 130
    report.append("")
    report.append(f"(total time {time.monotonic() - started:.0f} s)")
    text = "\n".join(report) + "\n"
    print()
    print(text)
    if opts.out:
        opts.out.write_text(text)
        print(f"written to {opts.out}")
    if opts.json_dir:
        print(f"raw loadgen JSON and output in {opts.json_dir}")
    elif opts.keep:
        print(f"work dir kept: {workroot}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
