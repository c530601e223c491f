"""A stateful Hypothesis test: random reports, leaves, port flaps and clock jumps
drive the core and a small reference model of ASM membership; the fake data plane
must always match the model."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from snoopd.core.actions import FilterMode
from snoopd.core.settings import CoreSettings, PortSettings, QuerierMode, Timers

from .fakeplane import Harness

PORTS = ("p1", "p2")  # p1 has fast-leave
GROUPS = ("239.1.1.1", "232.1.1.1")
HOSTS = ("192.0.2.1", "192.0.2.2")

ports = st.sampled_from(PORTS)
groups = st.sampled_from(GROUPS)
hosts = st.sampled_from(HOSTS)


class MembershipMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # Short timers (GMI 10 s) so that expiries and silent hosts are common.
        timers = Timers.derive(query_interval=4.0, query_response_interval=2.0)
        settings = CoreSettings(timers=timers, querier_mode=QuerierMode.OFF,
                                ports={"p1": PortSettings(fast_leave=True)})
        self.h = Harness(settings, ports=PORTS)
        self.gmi = self.h.timers.membership_interval
        # model: (port, group) -> [expires_at, {host: (version, last_seen)}]
        self.model: dict[tuple[str, str], tuple[float, dict[str, tuple[int, float]]]] = {}

    def _join(self, port: str, group: str, host: str, version: int) -> None:
        now = self.h.now
        _, hs = self.model.get((port, group), (0.0, {}))
        hs[host] = (version, now)
        self.model[(port, group)] = (now + self.gmi, hs)

    def _leave(self, port: str, group: str, host: str) -> None:
        entry = self.model.get((port, group))
        if entry is None:
            return
        entry[1].pop(host, None)
        now = self.h.now
        active = [h for h, (v, seen) in entry[1].items() if v < 3 or seen + self.gmi > now]
        if port == "p1" and not active:
            del self.model[(port, group)]

    @rule(port=ports, group=groups, host=hosts)
    def v2_report(self, port: str, group: str, host: str) -> None:
        self.h.v2_report(group, port, host=host)
        self._join(port, group, host, 2)

    @rule(port=ports, group=groups, host=hosts)
    def v3_join(self, port: str, group: str, host: str) -> None:
        from snoopd.core.messages import RecordType

        self.h.v3(port, RecordType.CHANGE_TO_EXCLUDE_MODE, group, host=host)
        self._join(port, group, host, 3)

    @rule(port=ports, group=groups, host=hosts)
    def v2_leave(self, port: str, group: str, host: str) -> None:
        self.h.v2_leave(group, port, host=host)
        self._leave(port, group, host)

    @rule(port=ports, group=groups, host=hosts)
    def v3_leave(self, port: str, group: str, host: str) -> None:
        from snoopd.core.messages import RecordType

        self.h.v3(port, RecordType.CHANGE_TO_INCLUDE_MODE, group, host=host)
        self._leave(port, group, host)

    @rule(seconds=st.one_of(st.sampled_from([0.5, 3.0, 6.0, 9.99, 10.0, 10.01, 15.0]), st.floats(0, 15)))
    def advance(self, seconds: float) -> None:
        self.h.advance(seconds)
        now = self.h.now
        self.model = {k: v for k, v in self.model.items() if v[0] > now}

    @rule(port=ports)
    def port_flap(self, port: str) -> None:
        self.h.snooper.port_changed(port, self.h.now, up=False)
        self.h.snooper.port_changed(port, self.h.now, up=True)
        self.h.flush()
        self.model = {k: v for k, v in self.model.items() if k[0] != port}

    @invariant()
    def plane_matches_model(self) -> None:
        assert set(self.h.plane.entries) == set(self.model)
        assert all(v == (FilterMode.EXCLUDE, frozenset()) for v in self.h.plane.entries.values())

    @invariant()
    def hosts_match_model(self) -> None:
        snap = {(e.port, e.group): set(e.hosts) for e in self.h.snooper.snapshot(self.h.now).entries}
        assert snap == {k: set(v[1]) for k, v in self.model.items()}


TestMembership = MembershipMachine.TestCase
TestMembership.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
