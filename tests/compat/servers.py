"""Launchers for the servers the compatibility suite talks to.

Two kinds of server are supported:

* ``ferrokeeper``: the binary under test, started as ``FERROKEEPER_BIN <dir>/zoo.cfg``.
* ``apache``: the real Apache ZooKeeper (Debian package ``zookeeper``, 3.8), started
  with ``java ... org.apache.zookeeper.server.quorum.QuorumPeerMain <dir>/zoo.cfg``.

Both get the same zoo.cfg in a private temporary directory, a free loopback port
picked at start time, and are considered ready once ``ruok`` answers ``imok``.
Every process started here is remembered and killed at interpreter exit should a
test run be interrupted before the fixtures could stop it.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FERROKEEPER_BIN = REPO_ROOT / "target/release/ferrokeeper"

JAVA = os.environ.get("JAVA", "java")
ZK_JAR_DIR = Path(os.environ.get("ZK_JAR_DIR", "/usr/share/java"))
ZK_CONF_DIR = os.environ.get("ZK_CONF_DIR", "/etc/zookeeper/conf")

READY_DEADLINE = {"ferrokeeper": 20.0, "apache": 60.0}
STOP_DEADLINE = 10.0

# JVM system properties Apache reads *without* the "zookeeper." prefix, so a zoo.cfg
# key cannot set them (unknown zoo.cfg keys become "zookeeper.<key>").  When a test
# puts one of these keys into the config, the Apache launcher also passes it as -D.
APACHE_JVM_ONLY_PROPERTIES = {
    "znode.container.checkIntervalMs",
    "znode.container.maxPerMinute",
    "znode.container.maxNeverUsedIntervalMs",
}

_live_processes: list[subprocess.Popen] = []


def _kill_leftovers() -> None:
    for proc in list(_live_processes):
        if proc.poll() is None:
            try:
                proc.kill()
                proc.wait(timeout=5)
            except Exception:
                pass


atexit.register(_kill_leftovers)


class ServerStartError(RuntimeError):
    pass


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def four_letter_word(port: int, word: str, timeout: float = 5.0) -> str:
    """Send a four-letter word to 127.0.0.1:port and return the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(word.encode("ascii"))
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode("utf-8", "replace")


def apache_classpath(logging: str = "simple") -> str:
    """Class path for the Debian ZooKeeper jars.

    zookeeper.jar's manifest lists its dependencies, so the jar plus exactly one
    SLF4J binding is enough: ``simple`` logs to stderr (server logs), ``nop`` is
    silent (zkCli, whose answers would otherwise drown in log lines).
    """
    override = os.environ.get("ZK_CLASSPATH")
    if override:
        return override
    zk_jar = ZK_JAR_DIR / "zookeeper.jar"
    binding = ZK_JAR_DIR / f"slf4j-{logging}.jar"
    if zk_jar.exists() and binding.exists():
        # Debian's manifest leaves out Netty's codec and resolver jars, which
        # the Netty connection factory and client socket (TLS) need, and the
        # servlet API, without which Jetty (the AdminServer) does not load.
        netty = [
            str(ZK_JAR_DIR / jar)
            for jar in ("netty-codec.jar", "netty-resolver.jar", "servlet-api.jar")
            if (ZK_JAR_DIR / jar).exists()
        ]
        return os.pathsep.join([ZK_CONF_DIR, str(zk_jar), str(binding), *netty])
    return os.pathsep.join([ZK_CONF_DIR, str(ZK_JAR_DIR / "*")])


def ferrokeeper_bin() -> Path:
    return Path(os.environ.get("FERROKEEPER_BIN", str(DEFAULT_FERROKEEPER_BIN)))


class Server:
    """One server process (either kind) with its own directory and port."""

    def __init__(self, kind: str, workdir: Path, extra_cfg: dict | None = None):
        if kind not in READY_DEADLINE:
            raise ValueError(f"unknown server kind {kind!r} (ferrokeeper or apache)")
        self.kind = kind
        self.dir = Path(workdir)
        self.extra_cfg = dict(extra_cfg or {})
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.log_path = self.dir / "server.log"
        self.cfg_path = self.dir / "zoo.cfg"

    # -- configuration -------------------------------------------------------------
    def config(self) -> dict:
        cfg = {
            "tickTime": "2000",
            "dataDir": str(self.dir / "data"),
            "clientPort": str(self.port),
            "clientPortAddress": "127.0.0.1",
            "4lw.commands.whitelist": "*",
            "extendedTypesEnabled": "true",
        }
        # No AdminServer on either (its default port 8080 would collide).
        cfg["admin.enableServer"] = "false"
        if self.kind != "apache":
            # Two shards even on small machines (whose default is one), so the
            # tests cover sessions and watches spread over shards.
            cfg["ferrokeeper.shards"] = "2"
        cfg.update({k: str(v) for k, v in self.extra_cfg.items()})
        return cfg

    def _write_config(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "data").mkdir(exist_ok=True)
        lines = [f"{k}={v}" for k, v in self.config().items()]
        self.cfg_path.write_text("\n".join(lines) + "\n")

    def command_line(self) -> list[str]:
        if self.kind == "ferrokeeper":
            binary = ferrokeeper_bin()
            if not binary.is_file() or not os.access(binary, os.X_OK):
                raise ServerStartError(
                    f"Ferrokeeper binary not found or not executable: {binary}\n"
                    "build it (cargo build --release) or point FERROKEEPER_BIN at it"
                )
            return [str(binary), str(self.cfg_path)]
        heap = os.environ.get("APACHE_ZK_HEAP", "256m")
        props = [
            f"-D{k}={v}" for k, v in self.extra_cfg.items() if k in APACHE_JVM_ONLY_PROPERTIES
        ]
        return [
            JAVA,
            f"-Xms{heap}",
            f"-Xmx{heap}",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            *props,
            "-cp",
            apache_classpath("simple"),
            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            str(self.cfg_path),
        ]

    # -- lifecycle -------------------------------------------------------------------
    @property
    def hosts(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, attempts: int = 3, wait: bool = True) -> "Server":
        """Starts the process; with ``wait``, until it answers (an ensemble member
        cannot serve before its peers run, so ensembles wait for all at once)."""
        last_error = None
        for _ in range(attempts):
            self.port = free_port()
            self._write_config()
            cmd = self.command_line()
            with open(self.log_path, "ab") as log:
                log.write(f"=== starting: {' '.join(cmd)}\n".encode())
                log.flush()
                self.proc = subprocess.Popen(
                    cmd,
                    cwd=self.dir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            _live_processes.append(self.proc)
            if not wait:
                return self
            try:
                self._wait_ready(READY_DEADLINE[self.kind])
                return self
            except ServerStartError as e:
                last_error = e
                self.stop()
                # Another process may have grabbed the port between free_port() and
                # bind(); only then is a retry on a fresh port worthwhile.
                if "already in use" not in self.log_tail(200).lower():
                    break
        raise last_error

    def _wait_ready(self, deadline_s: float) -> None:
        deadline = time.monotonic() + deadline_s
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerStartError(
                    f"{self.kind} server exited with code {self.proc.returncode} before "
                    f"answering ruok\n--- log tail ({self.log_path}) ---\n{self.log_tail()}"
                )
            try:
                last = four_letter_word(self.port, "ruok", timeout=1.0)
                if last.strip() == "imok":
                    if self.kind != "apache":
                        return
                    # Apache answers imok as soon as it listens, before its request
                    # pipeline runs; srvr tells when it really serves clients.
                    last = four_letter_word(self.port, "srvr", timeout=1.0)
                    if "Mode: " in last:
                        return
            except OSError as e:
                last = repr(e)
            time.sleep(0.1)
        raise ServerStartError(
            f"{self.kind} server on port {self.port} did not answer ruok with imok within "
            f"{deadline_s:.0f}s (last answer: {last!r})\n"
            f"--- log tail ({self.log_path}) ---\n{self.log_tail()}"
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after STOP_DEADLINE seconds. Returns the exit code."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=STOP_DEADLINE)
            except subprocess.TimeoutExpired:
                # Started with start_new_session=True: its process group is its own.
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=STOP_DEADLINE)
            except ProcessLookupError:
                pass
        if proc in _live_processes:
            _live_processes.remove(proc)
        return proc.returncode

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def four_letter(self, word: str) -> str:
        return four_letter_word(self.port, word)

    def __repr__(self) -> str:
        return f"<{self.kind} server 127.0.0.1:{self.port} in {self.dir}>"


def start_server(kind: str, workdir: Path, extra_cfg: dict | None = None) -> Server:
    return Server(kind, workdir, extra_cfg).start()


def zkcli_command(port: int | str) -> list[str]:
    """Command line for a non-interactive zkCli session (commands on stdin) to
    127.0.0.1:port, or to a connect string."""
    server = port if isinstance(port, str) else f"127.0.0.1:{port}"
    return [
        JAVA,
        "-Xmx128m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-cp",
        apache_classpath("nop"),
        "org.apache.zookeeper.ZooKeeperMain",
        "-server",
        server,
    ]
