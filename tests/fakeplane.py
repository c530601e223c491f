"""A fake data plane for core tests: applies the core's actions to plain sets, so
tests assert behaviour ("receivers of G are {p2, p3}") rather than action lists."""

from __future__ import annotations

from dataclasses import dataclass, field

from snoopd.core.actions import (
    Action,
    FilterMode,
    ForwardControl,
    InstallGroup,
    Notice,
    RemoveGroup,
    SendQuery,
    SetRouterPort,
)
from snoopd.core.messages import GroupRecord, Leave, Query, RecordType, Report
from snoopd.core.settings import CoreSettings, QuerierMode, Timers
from snoopd.core.snooper import Snooper


@dataclass
class FakePlane:
    entries: dict[tuple[str, str], tuple[FilterMode, frozenset[str]]] = field(default_factory=dict)
    routers: set[str] = field(default_factory=set)
    queries: list[tuple[float, SendQuery]] = field(default_factory=list)
    forwarded: list[ForwardControl] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)

    def apply(self, actions: list[Action], now: float) -> None:
        for a in actions:
            if isinstance(a, InstallGroup):
                self.entries[(a.port, a.group)] = (a.mode, a.sources)
            elif isinstance(a, RemoveGroup):
                assert (a.port, a.group) in self.entries, f"remove of absent {a}"
                del self.entries[(a.port, a.group)]
            elif isinstance(a, SetRouterPort):
                (self.routers.add if a.is_router else self.routers.discard)(a.port)
            elif isinstance(a, SendQuery):
                self.queries.append((now, a))
            elif isinstance(a, ForwardControl):
                self.forwarded.append(a)
            elif isinstance(a, Notice):
                self.notices.append(a)

    def receivers(self, group: str, source: str = "192.0.2.99") -> set[str]:
        """Ports that get ``source``'s traffic to ``group`` (RFC 3376 §6.3)."""
        out = set()
        for (port, g), (mode, sources) in self.entries.items():
            if g != group:
                continue
            if (mode is FilterMode.INCLUDE) == (source in sources):
                out.add(port)
        return out


class Harness:
    """A Snooper with a float clock and a fake plane."""

    def __init__(self, settings: CoreSettings | None = None, ports: tuple[str, ...] = ("p1", "p2", "p3"),
                 address: str | None = "192.0.2.254", **kw: object) -> None:
        if settings is None:
            settings = CoreSettings(querier_mode=QuerierMode.OFF, **kw)  # type: ignore[arg-type]
        self.now = 0.0
        self.plane = FakePlane()
        self.snooper = Snooper(settings, self.now, our_address=address)
        for p in ports:
            self.snooper.port_changed(p, self.now, up=True)
        self.flush()

    @property
    def timers(self) -> Timers:
        return self.snooper.settings.timers

    def flush(self) -> None:
        self.plane.apply(self.snooper.take_actions(), self.now)

    def advance(self, seconds: float) -> None:
        """Move the clock, firing every deadline on the way exactly when due."""
        end = self.now + seconds
        while True:
            d = self.snooper.next_deadline()
            if d is None or d > end:
                break
            self.now = max(self.now, d)
            self.snooper.handle_timers(self.now)
            self.flush()
        self.now = end
        self.snooper.handle_timers(self.now)
        self.flush()

    def send(self, message: object, port: str, frame: bytes = b"") -> None:
        self.snooper.receive(message, port, self.now, frame)  # type: ignore[arg-type]
        self.flush()

    def v2_report(self, group: str, port: str, host: str = "192.0.2.1", version: int = 2) -> None:
        rec = GroupRecord(RecordType.MODE_IS_EXCLUDE, group, ())
        self.send(Report(version, (rec,), host, group), port)

    def v2_leave(self, group: str, port: str, host: str = "192.0.2.1") -> None:
        self.send(Leave(group, host, "224.0.0.2"), port)

    def v3(self, port: str, rtype: RecordType, group: str, sources: tuple[str, ...] = (),
           host: str = "192.0.2.1") -> None:
        self.send(Report(3, (GroupRecord(rtype, group, sources),), host, "224.0.0.22"), port)

    def query(self, port: str, source: str, group: str = "0.0.0.0", version: int = 3, mrt: float = 10.0,
              sources: tuple[str, ...] = (), s_flag: bool = False) -> None:
        dst = "224.0.0.1" if group == "0.0.0.0" else group
        self.send(Query(version, group, source, dst, mrt, sources, s_flag, 2, 125.0), port)
