"""The stock ZooKeeper command line client (zkCli, Java ZooKeeperMain) against COMPAT_TARGET.

One JVM runs one scripted, non-interactive session: ZooKeeperMain without a command
argument and without a terminal reads commands line by line from stdin ("JLine support is
disabled") and executes them synchronously, printing results on stdout and errors on
stderr; both go to the same pipe so their order is kept.  Before every step the script
runs ``ls /__zkcli_step_<name>``, whose "Node does not exist" line marks where the
step's output begins.  Asynchronous watcher notices and log lines are filtered out.
The session ends with ``close`` + ``connect`` to check what survives a new session
(ephemerals must be gone, auth must not be carried over).
"""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess

import pytest

from servers import zkcli_command

USER, PASSWORD = "alice", "secret"
DIGEST = base64.b64encode(hashlib.sha1(f"{USER}:{PASSWORD}".encode()).digest()).decode()
DIGEST_ID = f"{USER}:{DIGEST}"

MARK = "/__zkcli_step_"

STEPS = [
    (
        "create",
        [
            "create /zkcli",
            "create /zkcli/data hello",
            "create /zkcli/data again",
            "create /zkcli/empty",
            "create -s -e /zkcli/eph- tmp",
            "create -s /zkcli/seq- s",
            "create /zkcli/missing/child x",
        ],
    ),
    ("ls", ["ls /zkcli"]),
    ("ls_s", ["ls -s /zkcli"]),
    ("get_s", ["get -s /zkcli/data"]),
    ("get_null", ["get /zkcli/empty"]),
    (
        "set",
        [
            "set /zkcli/data world",
            "get /zkcli/data",
            "set -v 7 /zkcli/data x",
            "set -s -v 1 /zkcli/data world2",
            "get /zkcli/data",
        ],
    ),
    ("stat", ["stat /zkcli/data", "stat /zkcli/eph-0000000002", "stat /zkcli/nope"]),
    (
        "delete",
        [
            "delete /zkcli/nope",
            "delete /zkcli",
            "delete -v 3 /zkcli/empty",
            "delete /zkcli/empty",
            "delete /zkcli/data",
            "ls /zkcli",
        ],
    ),
    (
        "deleteall",
        [
            "create /zkcli/tree",
            "create /zkcli/tree/a",
            "create /zkcli/tree/a/b",
            "create /zkcli/tree/c",
            "ls -R /zkcli/tree",
            "deleteall /zkcli/tree",
            "ls /zkcli/tree",
        ],
    ),
    ("extended", ["create -c /zkcli/cont", "create -t 600000 /zkcli/ttl", "sync /zkcli"]),
    (
        "acl_noauth",
        [
            "create /zkcli/sec secret",
            f"setAcl /zkcli/sec digest:{DIGEST_ID}:cdrwa",
            "get /zkcli/sec",
            "getAcl /zkcli/sec",
            "set /zkcli/sec x",
            "create /zkcli/sec/child c",
        ],
    ),
    (
        "addauth",
        [
            f"addauth digest {USER}:{PASSWORD}",
            "get /zkcli/sec",
            "getAcl /zkcli/sec",
            "create /zkcli/sec/child c",
        ],
    ),
    (
        "setacl_world",
        [
            "create /zkcli/sec2 s2",
            f"setAcl /zkcli/sec2 digest:{DIGEST_ID}:cdrwa",
            "setAcl /zkcli/sec world:anyone:r",
            "getAcl /zkcli/sec",
            "set /zkcli/sec x",
            "getAcl /zkcli",
        ],
    ),
    ("whoami", ["whoami"]),
    ("reconnect", ["close", "connect {hosts}"]),
    (
        "new_session",
        ["ls /zkcli", "get /zkcli/sec", "get /zkcli/sec2", "getAcl /zkcli/sec2", "whoami"],
    ),
]

NOISE = [
    re.compile(r"^WATCHER::$"),
    re.compile(r"^WatchedEvent state:"),
    re.compile(r"^Connecting to "),
    re.compile(r"^Welcome to ZooKeeper!$"),
    re.compile(r"^JLine support is (disabled|enabled)$"),
    re.compile(r"^SLF4J: "),
    re.compile(r"^log4j:"),
    re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d"),  # log4j/logback timestamps
    re.compile(r"^\[[^\]]+\] (TRACE|DEBUG|INFO|WARN|ERROR) "),  # slf4j-simple
    re.compile(r"^\s+at [\w.$]+\("),  # stack trace frames
]

STAT_KEYS = [
    "cZxid",
    "ctime",
    "mZxid",
    "mtime",
    "pZxid",
    "cversion",
    "dataVersion",
    "aclVersion",
    "ephemeralOwner",
    "dataLength",
    "numChildren",
]


def build_script(hosts: str) -> str:
    lines = []
    for name, commands in STEPS:
        lines.append(f"ls {MARK}{name}")
        lines.extend(c.format(hosts=hosts) for c in commands)
    lines.append(f"ls {MARK}end")
    lines.append("quit")
    return "\n".join(lines) + "\n"


def meaningful(output: str) -> list[str]:
    return [
        line.rstrip()
        for line in output.splitlines()
        if line.strip() and not any(p.search(line) for p in NOISE)
    ]


def split_steps(lines: list[str]) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = None
    marker = re.compile(rf"^Node does not exist: {re.escape(MARK)}(\w+)$")
    for line in lines:
        m = marker.match(line)
        if m:
            current = m.group(1)
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    return sections


def parse_stat(lines: list[str]) -> dict[str, str]:
    """The 11 'key = value' lines of a printed Stat, in zkCli's order."""
    stat = {}
    for line in lines:
        key, sep, value = line.partition(" = ")
        assert sep, f"not a stat line: {line!r}"
        stat[key] = value
    assert list(stat) == STAT_KEYS, f"unexpected stat layout: {lines}"
    return stat


def parse_list(line: str) -> list[str]:
    assert line.startswith("[") and line.endswith("]"), f"not a child list: {line!r}"
    inner = line[1:-1].strip()
    return sorted(part.strip() for part in inner.split(",")) if inner else []


@pytest.fixture(scope="module")
def session(zk_server):
    script = build_script(zk_server.hosts)
    try:
        proc = subprocess.run(
            zkcli_command(zk_server.hosts),
            input=script,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=90,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"zkCli did not finish within 90s; output so far:\n{e.output}")
    sections = split_steps(meaningful(proc.stdout))
    missing = [name for name, _ in STEPS if name not in sections] + (
        [] if "end" in sections else ["end"]
    )
    if missing:
        pytest.fail(
            f"zkCli output lacks the markers of steps {missing} (exit code "
            f"{proc.returncode}); full output:\n{proc.stdout}"
        )
    sections["__raw__"] = proc.stdout
    return sections


def step(session, name):
    return session[name]


def test_create(session):
    assert step(session, "create") == [
        "Created /zkcli",
        "Created /zkcli/data",
        "Node already exists: /zkcli/data",
        "Created /zkcli/empty",
        "Created /zkcli/eph-0000000002",
        "Created /zkcli/seq-0000000003",
        "Node does not exist: /zkcli/missing/child",
    ]


def test_ls(session):
    (line,) = step(session, "ls")
    assert parse_list(line) == ["data", "empty", "eph-0000000002", "seq-0000000003"]


def test_ls_with_stat(session):
    children, *stat_lines = step(session, "ls_s")
    assert parse_list(children) == ["data", "empty", "eph-0000000002", "seq-0000000003"]
    stat = parse_stat(stat_lines)
    assert stat["numChildren"] == "4"
    assert stat["cversion"] == "4"
    assert stat["dataVersion"] == "0"
    assert stat["ephemeralOwner"] == "0x0"
    assert re.fullmatch(r"0x[0-9a-f]+", stat["pZxid"])


def test_get_with_stat(session):
    data, *stat_lines = step(session, "get_s")
    assert data == "hello"
    stat = parse_stat(stat_lines)
    assert (stat["dataVersion"], stat["dataLength"], stat["numChildren"]) == ("0", "5", "0")
    assert (stat["cversion"], stat["aclVersion"], stat["ephemeralOwner"]) == ("0", "0", "0x0")
    assert stat["cZxid"] == stat["mZxid"]
    assert re.fullmatch(r"\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \w+ \d{4}", stat["ctime"])


def test_get_of_node_without_data_prints_null(session):
    assert step(session, "get_null") == ["null"]


def test_set(session):
    world, bad_version, *rest = step(session, "set")
    assert world == "world"
    assert bad_version == "version No is not valid : /zkcli/data"
    *stat_lines, final = rest
    stat = parse_stat(stat_lines)
    assert (stat["dataVersion"], stat["dataLength"]) == ("2", "6")
    assert stat["mZxid"] != stat["cZxid"]
    assert final == "world2"


def test_stat(session):
    lines = step(session, "stat")
    assert len(lines) == 2 * len(STAT_KEYS) + 1
    data_stat = parse_stat(lines[: len(STAT_KEYS)])
    eph_stat = parse_stat(lines[len(STAT_KEYS) : 2 * len(STAT_KEYS)])
    assert (data_stat["dataVersion"], data_stat["ephemeralOwner"]) == ("2", "0x0")
    assert eph_stat["ephemeralOwner"] != "0x0"
    assert re.fullmatch(r"0x[0-9a-f]+", eph_stat["ephemeralOwner"])
    assert eph_stat["dataLength"] == "3"
    assert lines[-1] == "Node does not exist: /zkcli/nope"


def test_delete(session):
    *messages, listing = step(session, "delete")
    assert messages == [
        "Node does not exist: /zkcli/nope",
        "Node not empty: /zkcli",
        "version No is not valid : /zkcli/empty",
    ]
    assert parse_list(listing) == ["eph-0000000002", "seq-0000000003"]


def test_deleteall(session):
    lines = step(session, "deleteall")
    assert lines[:4] == [
        "Created /zkcli/tree",
        "Created /zkcli/tree/a",
        "Created /zkcli/tree/a/b",
        "Created /zkcli/tree/c",
    ]
    assert sorted(lines[4:8]) == [
        "/zkcli/tree",
        "/zkcli/tree/a",
        "/zkcli/tree/a/b",
        "/zkcli/tree/c",
    ]
    assert lines[8:] == ["Node does not exist: /zkcli/tree"]


def test_container_ttl_and_sync(session):
    assert step(session, "extended") == [
        "Created /zkcli/cont",
        "Created /zkcli/ttl",
        "Sync is OK",
    ]


def test_noauth_messages(session):
    assert step(session, "acl_noauth") == [
        "Created /zkcli/sec",
        "Insufficient permission : /zkcli/sec",  # get
        "Insufficient permission : /zkcli/sec",  # getAcl (needs READ or ADMIN)
        "Insufficient permission : /zkcli/sec",  # set
        "Insufficient permission : /zkcli/sec/child",  # create needs CREATE on the parent
    ]


def test_addauth_then_access(session):
    assert step(session, "addauth") == [
        "secret",
        f"'digest,'{DIGEST_ID}",
        ": cdrwa",
        "Created /zkcli/sec/child",
    ]


def test_setacl_getacl(session):
    assert step(session, "setacl_world") == [
        "Created /zkcli/sec2",
        "'world,'anyone",
        ": r",
        "Insufficient permission : /zkcli/sec",
        "'world,'anyone",
        ": cdrwa",
    ]


def test_whoami(session):
    lines = step(session, "whoami")
    assert lines[0] == "Auth scheme: User"
    assert sorted(lines[1:]) == [f"digest: {USER}", "ip: 127.0.0.1"]


def test_close_and_connect(session):
    assert step(session, "reconnect") == []


def test_new_session_state(session):
    listing, *rest = step(session, "new_session")
    # The ephemeral node died with the first session.
    assert parse_list(listing) == ["cont", "sec", "sec2", "seq-0000000003", "ttl"]
    assert rest == [
        "secret",  # world-readable now
        "Insufficient permission : /zkcli/sec2",  # get: alice's auth died with the session
        "Insufficient permission : /zkcli/sec2",  # getAcl
        "Auth scheme: User",  # whoami
        "ip: 127.0.0.1",
    ]
