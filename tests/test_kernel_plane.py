"""KernelPlane on a namespace bridge, in process: the bookkeeping of joins and fast leaves
carried out early (``apply_now`` then the confirming ``apply``), checked against the MDB."""

from __future__ import annotations

import json
import socket
from collections import Counter
from collections.abc import Iterator

import pytest

from snoopd.core.actions import FilterMode, InstallGroup, RemoveGroup
from snoopd.kernel_plane import KernelPlane

from .lab import Lab, Switch, lab_session, netns, run

pytestmark = pytest.mark.netns
G1, G2, G3 = "239.1.1.1", "239.1.1.2", "239.1.1.3"
S1 = "192.0.2.10"


@pytest.fixture
def lab() -> Iterator[Lab]:
    yield from lab_session("snkp")


def entries(sw: Switch) -> dict[tuple[str, str], tuple[str, frozenset[str]]]:
    out = run(["bridge", "-n", sw.name, "-j", "-d", "mdb", "show", "dev", "br0"])
    return {(e["port"], e["grp"]): (e.get("filter_mode", ""), frozenset(s["address"] for s in e.get("source_list", [])))
            for block in json.loads(out or "[]") for e in block.get("mdb", []) if "src" not in e}


def test_early_install_is_confirmed_once_and_undone_when_unconfirmed(lab: Lab) -> None:
    sw = lab.switch()
    lab.host("h1", "p1", "192.0.2.1")
    counters: Counter[str] = Counter()
    with netns(sw.name):
        plane = KernelPlane("br0", max_groups=100, take_over_querier=True, counters=counters)
        try:
            plane.start()
            p1 = socket.if_nametoindex("p1")
            plane.add_port("p1", p1)
            # The port's join request is encoded before its first join (a cold path).
            assert set(plane.mdb._install_templates) == {p1}
            # Written at once, then confirmed by the core's InstallGroup: no second write.
            plane.apply_now("p1", [G1], [])
            assert entries(sw) == {("p1", G1): ("exclude", frozenset())}
            ops = counters["mdb.ops"]
            plane.apply([InstallGroup("p1", G1, FilterMode.EXCLUDE, frozenset())])
            assert counters["mdb.ops"] == ops and counters["mdb.early_installs"] == 1
            # Confirmed by something else first (never expected; handled): that is written.
            plane.apply_now("p1", [G2], [])
            plane.apply([InstallGroup("p1", G2, FilterMode.EXCLUDE, frozenset({S1}))])
            assert entries(sw)[("p1", G2)] == ("exclude", frozenset({S1}))
            # Not confirmed at all (the core failed on the report): taken back.
            plane.apply_now("p1", [G3], [])
            plane.apply([RemoveGroup("p1", G1)])
            assert counters["mdb.early_unconfirmed"] == 1
            assert set(entries(sw)) == {("p1", G2)}
            # An unknown port is ignored; a refused group is left to the core's InstallGroup.
            plane.apply_now("p9", [G1], [G2])
            plane.apply_now("p1", ["192.0.2.1"], [])
            assert counters["mdb.failures"] == 1 and counters["mdb.early_installs"] == 3
            plane.apply([])
            assert counters["mdb.early_unconfirmed"] == 1
            # A fast leave removed at once, then confirmed by the core's RemoveGroup.
            plane.apply([InstallGroup("p1", G3, FilterMode.EXCLUDE, frozenset())])
            plane.apply_now("p1", [], [G3])
            assert set(entries(sw)) == {("p1", G2)} and counters["mdb.early_removes"] == 1
            ops = counters["mdb.ops"]
            plane.apply([RemoveGroup("p1", G3)])
            assert counters["mdb.ops"] == ops
            # ... and put back when nothing confirms it.
            plane.apply([InstallGroup("p1", G1, FilterMode.EXCLUDE, frozenset())])
            plane.apply_now("p1", [], [G1])
            plane.apply([])
            assert counters["mdb.early_unconfirmed"] == 2
            assert entries(sw) == {("p1", G1): ("exclude", frozenset()), ("p1", G2): ("exclude", frozenset({S1}))}
            plane.remove_port("p1", still_exists=True)
            assert plane.mdb._install_templates == {}
        finally:
            plane.stop()
    assert entries(sw) == {}
