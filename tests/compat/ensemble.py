"""A replicated ensemble of servers of one kind (Ferrokeeper or Apache ZooKeeper) on
127.0.0.1, for the compatibility suite's ``COMPAT_TARGET=ferrokeeper-ensemble`` (and
``apache-ensemble`` to validate the tests against the reference): each member is a
``servers.Server`` with its own directory, ``myid``, client port, and the ensemble's
``server.N`` lines; the ensemble is ready once every member reports a ``Mode:`` of
leader, follower or observer in ``srvr``.

Clients get every member in their connect string (``hosts``), as users run them.
"""

from __future__ import annotations

import time
from pathlib import Path

from servers import Server, ServerStartError, four_letter_word, free_port

READY_DEADLINE_S = {"ferrokeeper": 30.0, "apache": 90.0}
ROLES = ("leader", "follower", "observer")


class Ensemble:
    def __init__(
        self,
        kind: str,
        workdir: Path,
        participants: int = 3,
        observers: int = 0,
        extra_cfg: dict | None = None,
        member_factory=Server,
    ):
        self.kind = kind
        self.dir = Path(workdir)
        count = participants + observers
        ports = [(free_port(), free_port()) for _ in range(count)]
        lines = {}
        for i, (quorum, election) in enumerate(ports, start=1):
            role = ":observer" if i > participants else ""
            lines[f"server.{i}"] = f"127.0.0.1:{quorum}:{election}{role}"
        common = {"initLimit": "10", "syncLimit": "5", **(extra_cfg or {}), **lines}
        self.members: list[Server] = []
        for i in range(1, count + 1):
            extra = dict(common)
            if i > participants:
                extra["peerType"] = "observer"
            # member_factory(kind, dir, cfg): loadgen/compare.py passes its own
            # stock-settings server class.
            member = member_factory(kind, self.dir / f"server{i}", extra)
            member.myid = i
            self.members.append(member)

    # The interface the fixtures use for a single server.
    @property
    def hosts(self) -> str:
        return ",".join(m.hosts for m in self.members)

    @property
    def port(self) -> int:
        return self.members[0].port

    def four_letter(self, word: str) -> str:
        return self.members[0].four_letter(word)

    @property
    def log_path(self) -> str:
        return ", ".join(str(m.log_path) for m in self.members)

    def alive(self) -> bool:
        return all(m.alive() for m in self.members)

    def state(self) -> str:
        """'running', or which members exited with which code."""
        gone = [
            f"member {i} exited ({m.proc.returncode if m.proc else None})"
            for i, m in enumerate(self.members, 1)
            if not m.alive()
        ]
        return ", ".join(gone) or "running"

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(
            f"--- member {i} ---\n{m.log_tail(lines)}" for i, m in enumerate(self.members, 1)
        )

    def start(self) -> "Ensemble":
        for member in self.members:
            (member.dir / "data").mkdir(parents=True, exist_ok=True)
            (member.dir / "data" / "myid").write_text(f"{member.myid}\n")
            member.start(wait=False)
        try:
            self._wait_for_roles(READY_DEADLINE_S[self.kind])
        except ServerStartError:
            self.stop()
            raise
        return self

    def modes(self) -> list[str | None]:
        out = []
        for member in self.members:
            try:
                srvr = four_letter_word(member.port, "srvr", timeout=1.0)
            except OSError:
                out.append(None)
                continue
            mode = [line[6:].strip() for line in srvr.splitlines() if line.startswith("Mode: ")]
            out.append(mode[0] if mode else None)
        return out

    def _wait_for_roles(self, deadline_s: float) -> None:
        deadline = time.monotonic() + deadline_s
        modes: list[str | None] = []
        while time.monotonic() < deadline:
            modes = self.modes()
            if all(m in ROLES for m in modes) and modes.count("leader") == 1:
                return
            time.sleep(0.1)
        raise ServerStartError(
            f"the {self.kind} ensemble did not elect a leader within {deadline_s:.0f}s "
            f"(modes {modes})\n{self.log_tail()}"
        )

    def stop(self) -> None:
        for member in self.members:
            member.stop()

    def __repr__(self) -> str:
        return f"<{self.kind} ensemble {self.hosts}>"
