"""Fixtures of the real-client compatibility suite.

COMPAT_TARGET selects the server every test in test_kazoo_recipes.py, test_zkcli.py and
test_curator.py talks to: ``ferrokeeper`` (default; binary from FERROKEEPER_BIN or
<repo>/target/release/ferrokeeper) or ``apache`` (Debian's Apache ZooKeeper 3.8), so the
tests can be validated against the reference server and then run unchanged against
Ferrokeeper; ``ferrokeeper-ensemble`` and ``apache-ensemble`` are three-server
ensembles of either kind, which clients reach through a connect string of all three.  test_differential.py starts both kinds itself.
"""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ensemble import Ensemble  # noqa: E402
from servers import Server, ServerStartError  # noqa: E402

TARGETS = ("ferrokeeper", "apache", "ferrokeeper-ensemble", "apache-ensemble")

# Servers started by fixtures, so failed tests can show their log tails.
RUNNING_SERVERS: list[Server] = []


def compat_target() -> str:
    target = os.environ.get("COMPAT_TARGET", "ferrokeeper").strip().lower()
    if target not in TARGETS:
        raise pytest.UsageError(f"COMPAT_TARGET must be one of {TARGETS}, not {target!r}")
    return target


def pytest_report_header(config):
    return f"compat target: {compat_target()} (set COMPAT_TARGET=ferrokeeper|apache)"


def launch(kind: str, workdir: Path, extra_cfg: dict | None = None) -> Server:
    """Start a server or fail the test with the server's log (never skip)."""
    server = Server(kind, workdir, extra_cfg)
    error = None
    try:
        server.start()
    except ServerStartError as e:
        error = str(e)
    if error is not None:
        pytest.fail(f"could not start the {kind} server:\n{error}", pytrace=False)
    RUNNING_SERVERS.append(server)
    return server


def shutdown(server: Server) -> None:
    if server in RUNNING_SERVERS:
        RUNNING_SERVERS.remove(server)
    server.stop()


@pytest.fixture(scope="session")
def zk_server(tmp_path_factory):
    """The server under test (COMPAT_TARGET), shared by the whole session."""
    target = compat_target()
    if target.endswith("-ensemble"):
        # Three participants; clients get all three in their connect string.
        kind = target.removesuffix("-ensemble")
        ensemble = Ensemble(kind, tmp_path_factory.mktemp(target))
        try:
            ensemble.start()
        except ServerStartError as e:
            pytest.fail(f"could not start the {kind} ensemble:\n{e}", pytrace=False)
        RUNNING_SERVERS.append(ensemble)
        yield ensemble
        RUNNING_SERVERS.remove(ensemble)
        ensemble.stop()
        return
    server = launch(target, tmp_path_factory.mktemp(f"{target}-server"))
    yield server
    shutdown(server)


@pytest.fixture(scope="module")
def server_factory(tmp_path_factory):
    """start(kind, extra_cfg=None) -> Server; every server is stopped after the module."""
    started = []

    def start(kind: str, extra_cfg: dict | None = None) -> Server:
        server = launch(kind, tmp_path_factory.mktemp(f"{kind}-server"), extra_cfg)
        started.append(server)
        return server

    yield start
    for server in started:
        shutdown(server)


@pytest.fixture(scope="session")
def zk_hosts(zk_server) -> str:
    return zk_server.hosts


@pytest.fixture
def make_client(zk_hosts):
    """Factory of started KazooClients; all of them are stopped after the test."""
    from kazoo.client import KazooClient

    clients = []

    def factory(**kwargs):
        kwargs.setdefault("timeout", 10.0)
        client = KazooClient(hosts=zk_hosts, **kwargs)
        client.start(timeout=15)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        try:
            client.stop()
        finally:
            client.close()


@pytest.fixture
def client(make_client):
    return make_client()


_counter = itertools.count()


@pytest.fixture
def base_path(request, client) -> str:
    """A fresh, empty, persistent namespace for one test."""
    name = "".join(ch if ch.isalnum() else "_" for ch in request.node.name)[:60]
    path = f"/compat/{name}_{next(_counter)}"
    client.ensure_path(path)
    return path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.when in ("setup", "call"):
        for server in RUNNING_SERVERS:
            if isinstance(server, Ensemble):
                state = server.state()
            else:
                state = "running" if server.alive() else f"exited ({server.proc.returncode})"
            report.sections.append(
                (f"{server.kind} server log tail ({state}, {server.log_path})", server.log_tail(40))
            )
