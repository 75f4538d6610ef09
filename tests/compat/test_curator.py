"""Apache Curator 5.4 (Debian's libcurator-recipes-java) against the server under test.

CuratorCache runs on a persistent recursive watch (addWatch) and Curator's
EnsembleTracker reads /zookeeper/config on every connect: the Java client reads
reply bodies strictly, so a missing addWatch body or null config data breaks it
(the connection drops and reconnects in a loop). Two CPU-hogging processes run
meanwhile, as on a busy machine, where such retries stop winning their races.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

JARS = Path("/usr/share/java")
CLASSPATH = ":".join(
    str(JARS / f"{name}.jar")
    for name in (
        "curator-recipes", "curator-framework", "curator-client", "zookeeper",
        "guava", "slf4j-api", "slf4j-nop",
    )
)
CHECK = Path(__file__).resolve().parent / "curator" / "CuratorCacheCheck.java"
NODES = 100
HOGS = 2


@pytest.fixture
def cpu_hogs():
    hogs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(HOGS)
    ]
    yield
    for hog in hogs:
        hog.kill()
        hog.wait()


def test_curator_cache_sees_every_change_on_a_busy_machine(zk_server, cpu_hogs):
    missing = [jar for jar in CLASSPATH.split(":") if not Path(jar).exists()]
    assert not missing, f"Curator jars missing (apt-get install libcurator-recipes-java): {missing}"
    # A single-file source program: `java` compiles it in memory (needs a JDK).
    run = subprocess.run(
        ["java", "-cp", CLASSPATH, str(CHECK), zk_server.hosts, str(NODES)],
        capture_output=True, text=True, timeout=300,
    )
    output = (run.stdout + run.stderr)[-4000:]
    assert run.returncode == 0, output
    assert f"OK {2 + 3 * NODES} events" in run.stdout, output
