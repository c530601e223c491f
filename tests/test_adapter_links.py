"""LinkWatcher against a real bridge in throwaway network namespaces.

Namespace ``<p>s`` holds ``br0`` (192.0.2.254/24) with ports p1, p2, each a veth to
``eth0`` in host namespace ``<p>h1``/``<p>h2``. The watcher's sockets are opened while
this thread is switched into the switch namespace (``setns`` is per thread; a socket
stays in the namespace it was created in); changes are made with ``ip``/``bridge``.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from snoopd.adapters.links import BridgeError, LinkWatcher, PortState
from tests.lab import netns, poll_until

pytestmark = pytest.mark.netns





def ip(*args: str, stdin: str | None = None) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True, input=stdin).stdout


@dataclass
class Lab:
    switch: str
    hosts: list[str]

    def sw(self, *args: str) -> str:
        return ip("-n", self.switch, *args)

    def ifindex(self, name: str) -> int:
        return int(json.loads(self.sw("-j", "link", "show", name))[0]["ifindex"])


@pytest.fixture
def lab() -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    prefix = "snpc" + secrets.token_hex(3)
    lab = Lab(prefix + "s", [f"{prefix}h1", f"{prefix}h2"])
    created: list[str] = []
    try:
        for namespace in [lab.switch, *lab.hosts]:
            ip("netns", "add", namespace)
            created.append(namespace)
        lab.sw("link", "add", "br0", "type", "bridge")
        lab.sw("addr", "add", "192.0.2.254/24", "dev", "br0")
        lab.sw("link", "set", "br0", "up")
        for port, host in zip(["p1", "p2"], lab.hosts, strict=True):
            lab.sw("link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", host)
            lab.sw("link", "set", port, "master", "br0", "up")
            ip("-n", host, "link", "set", "eth0", "up")
        # Carrier reaches the operational state through linkwatch, up to a second later.
        deadline = time.monotonic() + 5
        while not all(link["operstate"] == "UP" for link in json.loads(lab.sw("-j", "link", "show", "master", "br0"))):
            assert time.monotonic() < deadline, "ports did not come up"
            time.sleep(0.01)
        yield lab
    finally:
        for namespace in created:
            subprocess.run(["ip", "netns", "del", namespace], check=False, capture_output=True)


@dataclass
class Events:
    log: list[tuple[Any, ...]] = field(default_factory=list)

    def on_port(self, name: str, ifindex: int, up: bool, present: bool) -> None:
        self.log.append(("port", name, ifindex, up, present))

    def on_address(self, addresses: list[str]) -> None:
        self.log.append(("address", addresses))

    def on_bridge_gone(self) -> None:
        self.log.append(("gone",))

    def take(self) -> list[tuple[Any, ...]]:
        taken, self.log = self.log, []
        return taken


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    event_loop = asyncio.new_event_loop()
    yield event_loop
    event_loop.close()




def start(lab: Lab, loop: asyncio.AbstractEventLoop, bridge: str = "br0", **kwargs: int) -> tuple[LinkWatcher, Events]:
    events = Events()
    watcher = LinkWatcher(bridge, events.on_port, events.on_address, events.on_bridge_gone, **kwargs)
    with netns(lab.switch):
        watcher.start(loop)
    return watcher, events


def wait_for(loop: asyncio.AbstractEventLoop, events: Events, count: int) -> list[tuple[Any, ...]]:
    """The next ``count`` events (fails on timeout); checks nothing more arrives first."""
    assert poll_until(loop, lambda: len(events.log) >= count), events.log
    return events.take()


def test_start_reports_ports_and_addresses(lab: Lab, loop: asyncio.AbstractEventLoop) -> None:
    watcher, events = start(lab, loop)
    try:
        p1, p2 = lab.ifindex("p1"), lab.ifindex("p2")
        assert events.take() == [
            ("port", "p1", p1, True, True),
            ("port", "p2", p2, True, True),
            ("address", ["192.0.2.254"]),
        ]
        assert watcher.ports == {p1: PortState("p1", p1, True), p2: PortState("p2", p2, True)}
        assert watcher.addresses == ["192.0.2.254"]
        assert watcher.bridge_ifindex == lab.ifindex("br0")
        assert watcher.running
    finally:
        watcher.close()
    assert not watcher.running
    watcher.close()  # idempotent


def test_missing_bridge_or_not_a_bridge_is_a_clear_error(lab: Lab, loop: asyncio.AbstractEventLoop) -> None:
    with pytest.raises(BridgeError, match="bridge 'br9' does not exist"):
        start(lab, loop, bridge="br9")
    with pytest.raises(BridgeError, match="'p1' is not a bridge"):
        start(lab, loop, bridge="p1")


def test_port_up_and_down(lab: Lab, loop: asyncio.AbstractEventLoop) -> None:
    watcher, events = start(lab, loop)
    events.take()
    p1, p2 = lab.ifindex("p1"), lab.ifindex("p2")
    try:
        lab.sw("link", "set", "p1", "down")  # administratively down
        assert wait_for(loop, events, 1) == [("port", "p1", p1, False, True)]
        lab.sw("link", "set", "p1", "up")
        assert wait_for(loop, events, 1) == [("port", "p1", p1, True, True)]
        ip("-n", lab.hosts[1], "link", "set", "eth0", "down")  # carrier lost on p2
        assert wait_for(loop, events, 1) == [("port", "p2", p2, False, True)]
        ip("-n", lab.hosts[1], "link", "set", "eth0", "up")
        assert wait_for(loop, events, 1) == [("port", "p2", p2, True, True)]
        assert watcher.ports[p2].up
    finally:
        watcher.close()


def test_port_added_removed_renamed_deleted(lab: Lab, loop: asyncio.AbstractEventLoop) -> None:
    watcher, events = start(lab, loop)
    events.take()
    try:
        lab.sw("link", "add", "p3", "type", "veth", "peer", "name", "p3peer")
        p3 = lab.ifindex("p3")
        lab.sw("link", "set", "p3", "master", "br0")
        assert wait_for(loop, events, 1) == [("port", "p3", p3, False, True)]
        lab.sw("link", "set", "p3peer", "up")
        lab.sw("link", "set", "p3", "up")
        assert wait_for(loop, events, 1) == [("port", "p3", p3, True, True)]
        lab.sw("link", "set", "p3", "nomaster")
        assert wait_for(loop, events, 1) == [("port", "p3", p3, False, False)]
        lab.sw("link", "set", "p3", "master", "br0")
        assert wait_for(loop, events, 1) == [("port", "p3", p3, True, True)]
        lab.sw("link", "set", "p3", "down")
        lab.sw("link", "set", "p3", "name", "uplink3")
        assert wait_for(loop, events, 3) == [
            ("port", "p3", p3, False, True),
            ("port", "p3", p3, False, False),
            ("port", "uplink3", p3, False, True),
        ]
        lab.sw("link", "del", "uplink3")
        assert wait_for(loop, events, 1) == [("port", "uplink3", p3, False, False)]
        assert set(watcher.ports) == {lab.ifindex("p1"), lab.ifindex("p2")}
        # Interfaces that are not ports come and go unnoticed.
        lab.sw("link", "add", "other0", "type", "veth", "peer", "name", "other1")
        lab.sw("link", "set", "other0", "up")
        lab.sw("link", "set", "p1", "down")  # a marker: events are delivered in order
        assert wait_for(loop, events, 1) == [("port", "p1", lab.ifindex("p1"), False, True)]
    finally:
        watcher.close()


def test_bridge_addresses(lab: Lab, loop: asyncio.AbstractEventLoop) -> None:
    watcher, events = start(lab, loop)
    events.take()
    try:
        lab.sw("addr", "add", "192.0.2.253/24", "dev", "br0")  # secondary of 192.0.2.254/24
        assert wait_for(loop, events, 1) == [("address", ["192.0.2.254", "192.0.2.253"])]
        lab.sw("addr", "add", "192.0.2.1/25", "dev", "br0")  # another primary: before secondaries
        assert wait_for(loop, events, 1) == [("address", ["192.0.2.254", "192.0.2.1", "192.0.2.253"])]
        lab.sw("addr", "del", "192.0.2.1/25", "dev", "br0")
        assert wait_for(loop, events, 1) == [("address", ["192.0.2.254", "192.0.2.253"])]
        lab.sw("addr", "add", "192.0.2.9/24", "dev", "p1")  # not the bridge: ignored
        lab.sw("addr", "flush", "dev", "br0")
        assert poll_until(loop, lambda: bool(events.log) and events.log[-1] == ("address", []))
        assert watcher.addresses == []
    finally:
        watcher.close()


def test_bridge_deleted(lab: Lab, loop: asyncio.AbstractEventLoop) -> None:
    watcher, events = start(lab, loop)
    events.take()
    p1, p2 = lab.ifindex("p1"), lab.ifindex("p2")
    lab.sw("link", "del", "br0")
    assert poll_until(loop, lambda: ("gone",) in events.log)
    log = events.take()
    assert log[-1] == ("gone",)
    ports = sorted(entry for entry in log if entry[0] == "port")
    assert ports == [("port", "p1", p1, False, False), ("port", "p2", p2, False, False)]
    assert watcher.ports == {}
    assert not watcher.running  # it stopped: no reader left on the loop
    watcher.close()


def test_lost_notifications_are_recovered_by_a_new_dump(lab: Lab, loop: asyncio.AbstractEventLoop) -> None:
    watcher, events = start(lab, loop, receive_buffer_bytes=4096)
    events.take()
    p1 = lab.ifindex("p1")
    # While the loop is not running, far more notifications than the tiny buffer holds.
    ip("-n", lab.switch, "-batch", "-", stdin="link set p1 down\nlink set p1 up\n" * 100 + "link set p1 down\n")
    lab.sw("addr", "add", "192.0.2.250/24", "dev", "br0")
    try:
        assert poll_until(loop, lambda: watcher.resyncs > 0 and not watcher.ports[p1].up)
        assert poll_until(loop, lambda: "192.0.2.250" in watcher.addresses)
        log = events.take()
        assert [entry for entry in log if entry[:2] == ("port", "p1")][-1] == ("port", "p1", p1, False, True)
        assert log.count(("address", ["192.0.2.254", "192.0.2.250"])) == 1
        lab.sw("link", "set", "p1", "up")  # and it keeps following events afterwards
        assert wait_for(loop, events, 1) == [("port", "p1", p1, True, True)]
    finally:
        watcher.close()
