"""A stateful Hypothesis test: random reports, leaves, port flaps and clock jumps
drive the core and a small reference model of ASM membership; the fake data plane
must always match the model."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from snoopd.core.actions import FilterMode, InstallGroup, RemoveGroup
from snoopd.core.messages import GroupRecord, Leave, RecordType, Report
from snoopd.core.settings import CoreSettings, PortSettings, QuerierMode, StaticMembership, Timers
from snoopd.wire.peek import MAX_RECORDS

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


# ------------------------------------------------------------------ admit(): early installs

RECORD_TYPES = list(RecordType)
ADMIT_GROUPS = ("239.1.1.1", "239.1.1.2", "232.1.1.1", "224.0.0.251")
SOURCES = ("192.0.2.10", "192.0.2.11")

records = st.builds(
    GroupRecord,
    st.sampled_from(RECORD_TYPES),
    st.sampled_from(ADMIT_GROUPS),
    st.lists(st.sampled_from(SOURCES), max_size=2, unique=True).map(tuple),
)


class AdmitMachine(RuleBasedStateMachine):
    """``Snooper.admit`` promises that the ``receive`` that follows installs each group it
    names as EXCLUDE {}: the kernel plane writes those before ``receive`` runs. Random
    reports of every kind (several records, repeats, link-local groups), leaves, port
    events, static entries, clock jumps and a group limit small enough to be reached."""

    def __init__(self) -> None:
        super().__init__()
        timers = Timers.derive(query_interval=4.0, query_response_interval=2.0)
        settings = CoreSettings(timers=timers, querier_mode=QuerierMode.OFF, max_groups=3,
                                ports={"p1": PortSettings(fast_leave=True)})
        self.h = Harness(settings, ports=PORTS)

    def _report(self, message: Report | Leave, port: str) -> None:
        before = self.h.snooper.snapshot(self.h.now)
        pending = self.h.snooper.actions_pending
        joins, leaves = self.h.snooper.admit(message, port, self.h.now)
        if (peeked := as_peeked(message)) is not None:  # the same answer without the message
            assert self.h.snooper.admit_memberships(*peeked, port, self.h.now) == (joins, leaves), (message, port)
        # Pure (the daemon rehearses joins with it at start): nothing changed, nothing to do.
        assert self.h.snooper.snapshot(self.h.now) == before and self.h.snooper.actions_pending == pending
        self.h.snooper.receive(message, port, self.h.now)
        actions = self.h.snooper.take_actions()

        def first(group: str) -> object:
            return next((a for a in actions if getattr(a, "port", None) == port
                         and getattr(a, "group", None) == group), None)

        for group in joins:
            assert first(group) == InstallGroup(port, group, FilterMode.EXCLUDE, frozenset()), (message, actions)
        for group in leaves:
            assert first(group) == RemoveGroup(port, group), (message, port, actions)
        self.h.plane.apply(actions, self.h.now)

    @rule(port=ports, recs=st.lists(records, min_size=1, max_size=4), host=hosts)
    def v3_report(self, port: str, recs: list[GroupRecord], host: str) -> None:
        self._report(Report(3, tuple(recs), host, "224.0.0.22"), port)

    @rule(port=ports, host=hosts, changes=st.lists(st.tuples(st.sampled_from(ADMIT_GROUPS), st.sampled_from(
          [RecordType.MODE_IS_EXCLUDE, RecordType.CHANGE_TO_EXCLUDE_MODE, RecordType.CHANGE_TO_INCLUDE_MODE])),
          min_size=1, max_size=3))
    def v3_any_source(self, port: str, host: str, changes: list[tuple[str, RecordType]]) -> None:
        """The commonest joins and leaves: records without sources (wire.peek_membership's),
        a channel change among them (TO_IN {} of one group, TO_EX {} of another)."""
        records = tuple(GroupRecord(rtype, group, ()) for group, rtype in changes)
        self._report(Report(3, records, host, "224.0.0.22"), port)

    @rule(port=ports, group=st.sampled_from(ADMIT_GROUPS), host=hosts, version=st.sampled_from([1, 2]))
    def old_report(self, port: str, group: str, host: str, version: int) -> None:
        self._report(Report(version, (GroupRecord(RecordType.MODE_IS_EXCLUDE, group, ()),), host, group), port)

    @rule(port=ports, group=st.sampled_from(ADMIT_GROUPS), host=hosts)
    def v2_leave(self, port: str, group: str, host: str) -> None:
        self._report(Leave(group, host, "224.0.0.2"), port)

    @rule(port=ports, group=st.sampled_from(ADMIT_GROUPS), static=st.booleans())
    def static(self, port: str, group: str, static: bool) -> None:
        statics = (StaticMembership(group, port),) if static else ()
        self.h.snooper.reconfigure(replace(self.h.snooper.settings, static=statics), self.h.now)
        self.h.flush()

    @rule(port=ports, up=st.booleans())
    def port_state(self, port: str, up: bool) -> None:
        self.h.snooper.port_changed(port, self.h.now, up=up)
        self.h.flush()

    @rule(seconds=st.sampled_from([0.5, 2.0, 9.99, 10.01, 30.0]))
    def advance(self, seconds: float) -> None:
        self.h.advance(seconds)


ANY_SOURCE_CHANGES = {RecordType.MODE_IS_EXCLUDE: True, RecordType.CHANGE_TO_EXCLUDE_MODE: True,
                      RecordType.CHANGE_TO_INCLUDE_MODE: False}


def as_peeked(message: Report | Leave) -> tuple[str, tuple[tuple[bool, str], ...]] | None:
    """What wire.peek_membership answers for the frame of ``message`` (tests/test_wire_peek.py
    holds it to this), for IGMPv2 and v3: (host, ((join, group), ...)), or None."""
    if type(message) is Leave:
        return message.source, ((False, message.group),)
    if message.version == 1 or not 0 < len(message.records) <= MAX_RECORDS:
        return None
    if message.version == 2:
        return message.source, ((True, message.records[0].group),)
    if any(r.sources or r.record_type not in ANY_SOURCE_CHANGES for r in message.records):
        return None
    return message.source, tuple((ANY_SOURCE_CHANGES[r.record_type], r.group) for r in message.records)


TestAdmit = AdmitMachine.TestCase
TestAdmit.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)


def test_admit_names_new_any_source_joins_only() -> None:
    h = Harness(CoreSettings(querier_mode=QuerierMode.OFF), ports=PORTS)
    join = Report(3, (GroupRecord(RecordType.CHANGE_TO_EXCLUDE_MODE, "239.1.1.1", ()),
                      GroupRecord(RecordType.MODE_IS_EXCLUDE, "239.1.1.2", ("192.0.2.10",)),
                      GroupRecord(RecordType.ALLOW_NEW_SOURCES, "239.1.1.3", ("192.0.2.10",)),
                      GroupRecord(RecordType.CHANGE_TO_EXCLUDE_MODE, "224.0.0.251", ())), "192.0.2.1", "224.0.0.22")
    admit = h.snooper.admit
    assert admit(join, "p1", 0.0) == (["239.1.1.1"], [])
    assert admit(join, "p9", 0.0) == ([], [])  # an unknown port: receive() decides
    h.send(join, "p1")
    assert admit(join, "p1", 0.0) == ([], [])  # a refresh changes nothing in the kernel
    assert admit(join, "p2", 0.0) == (["239.1.1.1"], [])
    # A group's first record decides: ALLOW then TO_EX{} is not an any-source join at first.
    later = Report(3, (GroupRecord(RecordType.ALLOW_NEW_SOURCES, "239.1.1.9", ("192.0.2.10",)),
                       GroupRecord(RecordType.CHANGE_TO_EXCLUDE_MODE, "239.1.1.9", ())), "192.0.2.1", "224.0.0.22")
    assert admit(later, "p1", 0.0) == ([], [])
    h.snooper.port_changed("p2", h.now, up=False)
    assert admit(join, "p2", 0.0) == ([], [])


def test_admit_names_fast_leaves_of_the_last_host_only() -> None:
    h = Harness(CoreSettings(querier_mode=QuerierMode.OFF, ports={"p1": PortSettings(fast_leave=True)}),
                ports=PORTS)
    g = "239.1.1.1"
    to_in = Report(3, (GroupRecord(RecordType.CHANGE_TO_INCLUDE_MODE, g, ()),), "192.0.2.1", "224.0.0.22")
    h.v3("p1", RecordType.CHANGE_TO_EXCLUDE_MODE, g, host="192.0.2.1")
    h.v3("p2", RecordType.CHANGE_TO_EXCLUDE_MODE, g, host="192.0.2.1")
    assert h.snooper.admit(to_in, "p1", h.now) == ([], [g])
    assert h.snooper.admit(to_in, "p2", h.now) == ([], [])  # no fast-leave on p2
    h.v2_report(g, "p1", host="192.0.2.2")  # a second host behind p1
    assert h.snooper.admit(to_in, "p1", h.now) == ([], [])
    assert h.snooper.admit(Leave(g, "192.0.2.2", "224.0.0.2"), "p1", h.now) == ([], [])
    h.v2_leave(g, "p1", host="192.0.2.2")
    assert h.snooper.admit(to_in, "p1", h.now) == ([], [g])
    # A static entry stays: the leave prunes only what was learned, nothing changes in the kernel.
    h.snooper.reconfigure(replace(h.snooper.settings, static=(StaticMembership(g, "p1"),)), h.now)
    h.flush()
    assert h.snooper.admit(to_in, "p1", h.now) == ([], [])
    h.send(to_in, "p1")
    assert h.plane.receivers(g) == {"p1", "p2"}
