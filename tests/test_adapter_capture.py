"""PacketCapture and FrameSender against a real bridge in throwaway network namespaces.

Topology (one per test): namespace ``<p>s`` holds ``br0`` (192.0.2.254/24, kernel
snooping on) with ports p1..p3, each a veth to ``eth0`` (192.0.2.1N/24) in host namespace
``<p>hN``. The adapters run in this process: sockets are created while the thread is
switched into a namespace (``setns`` is per thread; a socket stays in the namespace it was
created in). Hosts join through their own kernel (``IP_ADD_MEMBERSHIP``); what the switch
captures is checked against an independent packet tap on the host side.

The FrameSender tests live here too: they need the same lab, and capture is how we see
that the bridge's own outgoing frames are ignored.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import select
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from scapy.compat import raw
from scapy.layers.igmp import IGMP, IGMPv3_MQ, IGMPv3_MR, IGMPv3_MR_Group
from scapy.layers.inet import IP, UDP, IPOption_Router_Alert
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether

from snoopd.adapters.capture import (
    IGMP_PIM_FILTER,
    SKF_AD_PKTTYPE,
    SKF_AD_VLAN_TAG_PRESENT,
    TAGGED_FILTER,
    UNTAGGED_FILTER,
    PacketCapture,
)
from snoopd.adapters.sender import FrameSender
from tests.lab import netns, poll_until

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")

# --- a tiny classic-BPF interpreter: checks the program's logic without a kernel ----------


Program = tuple[tuple[int, int, int, int], ...]


def run_filter(frame: bytes, program: Program = IGMP_PIM_FILTER, *, tagged: bool = False, pkttype: int = 2) -> int:
    """Run ``program`` over ``frame`` the way the kernel does (loads past the end drop);
    ``tagged``: the skb carries an 802.1Q tag in its metadata; ``pkttype``: its sll_pkttype
    (2 PACKET_MULTICAST, 4 PACKET_OUTGOING)."""
    accumulator, pc = 0, 0
    while True:
        code, jt, jf, k = program[pc]
        if code == 0x06:
            return k
        if code == 0x20 and k in (SKF_AD_PKTTYPE, SKF_AD_VLAN_TAG_PRESENT):  # ancillary loads
            accumulator = pkttype if k == SKF_AD_PKTTYPE else int(tagged)
            pc += 1
        elif code in (0x20, 0x28, 0x30):
            size = {0x20: 4, 0x28: 2, 0x30: 1}[code]
            if k + size > len(frame):
                return 0
            accumulator = int.from_bytes(frame[k : k + size], "big")
            pc += 1
        elif code == 0x15:
            pc += 1 + (jt if accumulator == k else jf)
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")


def _ip(proto_layer: object, dst: str, proto: int | None = None) -> IP:
    ip = IP(src="192.0.2.11", dst=dst, ttl=1, options=[IPOption_Router_Alert()])
    if proto is not None:
        ip.proto = proto
    return ip / proto_layer


HOST_MAC = "02:00:00:00:00:11"
REPORT_V3 = IGMPv3_MR(records=[IGMPv3_MR_Group(rtype=4, maddr="239.1.1.1")])
QUERY_V3 = IGMPv3_MQ(mrcode=100)
PIM_HELLO = b"\x20\x00\x00\x00" + b"\x00\x01\x00\x02\x00\x69"


@pytest.mark.parametrize(
    ("payload", "accepted"),
    [
        (_ip(REPORT_V3, "224.0.0.22"), True),
        (_ip(QUERY_V3, "224.0.0.1"), True),
        (_ip(IGMP(type=0x16, gaddr="239.1.1.1"), "239.1.1.1"), True),
        (_ip(IGMP(type=0x17, gaddr="239.1.1.1"), "224.0.0.2"), True),
        (_ip(IGMP(type=0x12, gaddr="232.1.1.1"), "232.1.1.1"), True),
        (_ip(PIM_HELLO, "224.0.0.13", proto=103), True),
        (_ip(PIM_HELLO, "239.1.1.1", proto=103), False),
        (_ip(PIM_HELLO, "192.0.2.1", proto=103), False),
        (IP(src="192.0.2.11", dst="239.1.1.1") / UDP(dport=5000) / b"data", False),
        (IP(src="192.0.2.11", dst="224.0.0.13", proto=17) / (b"x" * 20), False),
        (IPv6(dst="ff02::16", nh=2) / (b"x" * 20), False),
        (ARP(pdst="192.0.2.1"), False),
    ],
)
@pytest.mark.parametrize("tag", [None, 10])
def test_filter_accepts_only_igmp_and_pim_hellos(payload: object, accepted: bool, tag: int | None) -> None:
    frame = Ether(dst="01:00:5e:00:00:16", src=HOST_MAC)
    if tag is not None:
        frame = frame / Dot1Q(vlan=tag)
    data = raw(frame / payload)
    assert (run_filter(data) > 0) == accepted
    if accepted:  # a frame cut before the field the filter needs is dropped, never misread
        assert run_filter(data[:23]) == 0


@pytest.mark.parametrize("program", [IGMP_PIM_FILTER, UNTAGGED_FILTER, TAGGED_FILTER])
def test_filter_jumps_stay_inside_the_program(program: Program) -> None:
    for index, (code, jt, jf, _) in enumerate(program):
        if code == 0x15:
            assert index + 1 + max(jt, jf) < len(program)
    assert program[-1] == (0x06, 0, 0, 0)


@pytest.mark.parametrize("pkttype", [0, 1, 2, 3, 4])  # host, broadcast, multicast, otherhost, outgoing
@pytest.mark.parametrize("tagged", [False, True])
def test_each_port_socket_takes_its_half_and_never_the_bridges_own_frames(pkttype: int, tagged: bool) -> None:
    for payload in (_ip(REPORT_V3, "224.0.0.22"), IP(src="192.0.2.11", dst="239.1.1.1") / UDP() / b"data"):
        frame = raw(Ether(dst="01:00:5e:00:00:16", src=HOST_MAC) / payload)
        wanted = run_filter(frame) if pkttype != 4 else 0
        assert run_filter(frame, UNTAGGED_FILTER, tagged=tagged, pkttype=pkttype) == (0 if tagged else wanted)
        assert run_filter(frame, TAGGED_FILTER, tagged=tagged, pkttype=pkttype) == (wanted if tagged else 0)


# --- lab: namespaces, in-thread setns, host-side taps ------------------------------------------





def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


def bridge_mdb(namespace: str) -> str:
    command = ["bridge", "-n", namespace, "-j", "mdb", "show"]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


@dataclass
class Lab:
    switch: str
    hosts: list[str]
    ports: list[str] = field(default_factory=lambda: ["p1", "p2", "p3"])

    def ifindex(self, name: str) -> int:
        return int(json.loads(ip("-n", self.switch, "-j", "link", "show", name))[0]["ifindex"])

    def mac(self, namespace: str, name: str) -> str:
        return str(json.loads(ip("-n", namespace, "-j", "link", "show", name))[0]["address"])


@pytest.fixture
def lab() -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    prefix = "snpc" + secrets.token_hex(3)
    lab = Lab(prefix + "s", [f"{prefix}h{i}" for i in (1, 2, 3)])
    created: list[str] = []
    try:
        for namespace in [lab.switch, *lab.hosts]:
            ip("netns", "add", namespace)
            created.append(namespace)
            with netns(namespace):
                for key in ("all", "default"):
                    Path(f"/proc/sys/net/ipv6/conf/{key}/disable_ipv6").write_text("1")
        ip("-n", lab.switch, "link", "add", "br0", "type", "bridge", "mcast_snooping", "1")
        ip("-n", lab.switch, "addr", "add", "192.0.2.254/24", "dev", "br0")
        ip("-n", lab.switch, "link", "set", "br0", "up")
        for number, (port, host) in enumerate(zip(lab.ports, lab.hosts, strict=True), start=1):
            ip("-n", lab.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", host)
            ip("-n", lab.switch, "link", "set", port, "master", "br0", "up")
            ip("-n", host, "addr", "add", f"192.0.2.1{number}/24", "dev", "eth0")
            ip("-n", host, "link", "set", "eth0", "up")
            ip("-n", host, "route", "add", "224.0.0.0/4", "dev", "eth0")
        yield lab
    finally:
        for namespace in created:
            subprocess.run(["ip", "netns", "del", namespace], check=False, capture_output=True)


class HostTap:
    """An independent packet socket on a host's eth0: every frame in and out."""

    def __init__(self, namespace: str) -> None:
        with netns(namespace):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
            self.sock.bind(("eth0", 0))
        self.sock.setblocking(False)
        self._frames: list[tuple[int, bytes]] = []

    @property
    def frames(self) -> list[tuple[int, bytes]]:
        """(sll_pkttype, frame) of everything seen so far."""
        while select.select([self.sock], [], [], 0)[0]:
            data, address = self.sock.recvfrom(65536)
            self._frames.append((address[2], data))
        return self._frames

    def received(self) -> list[bytes]:
        return [frame for kind, frame in self.frames if kind != socket.PACKET_OUTGOING]

    def close(self) -> None:
        self.sock.close()




@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    event_loop = asyncio.new_event_loop()
    yield event_loop
    event_loop.close()


@dataclass
class Captured:
    frames: list[tuple[str, bytes, int | None]] = field(default_factory=list)

    def __call__(self, port: str, frame: bytes, vlan: int | None) -> None:  # on_frame
        self.frames.append((port, frame, vlan))

    def on(self, port: str) -> list[bytes]:
        return [frame for name, frame, _ in self.frames if name == port]


def start_capture(lab: Lab, loop: asyncio.AbstractEventLoop, **kwargs: int) -> tuple[PacketCapture, Captured]:
    captured = Captured()
    capture = PacketCapture(captured, **kwargs)
    with netns(lab.switch):
        for port in lab.ports:
            capture.add_port(port, lab.ifindex(port), loop)
    return capture, captured


def join(namespace: str, group: str) -> socket.socket:
    """Join ``group`` on eth0 through the host's own kernel; closing the socket leaves."""
    with netns(namespace):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        mreqn = socket.inet_aton(group) + socket.inet_aton("0.0.0.0") + struct.pack("i", socket.if_nametoindex("eth0"))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
    return sock


def send_raw(namespace: str, *frames: bytes) -> None:
    with netns(namespace):
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    with sock:
        for frame in frames:
            sock.sendto(frame, ("eth0", 0))


def send_udp(namespace: str, group: str, payloads: list[bytes]) -> None:
    with netns(namespace):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        for payload in payloads:
            sock.sendto(payload, (group, 5000))


def is_igmp(frame: bytes) -> bool:
    return frame[12:14] == b"\x08\x00" and frame[23] == 2


def igmp_query(source_mac: str, mrcode: int = 100) -> bytes:
    return raw(
        Ether(src=source_mac, dst="01:00:5e:00:00:01")
        / IP(src="192.0.2.254", dst="224.0.0.1", ttl=1, options=[IPOption_Router_Alert()])
        / IGMPv3_MQ(mrcode=mrcode)
    )


# --- capture -----------------------------------------------------------------------------------


@needs_root
@pytest.mark.netns
@pytest.mark.parametrize("version", [2, 3])
def test_report_from_host_kernel_is_captured_on_its_port_byte_for_byte(
    lab: Lab, loop: asyncio.AbstractEventLoop, version: int
) -> None:
    ip("netns", "exec", lab.hosts[1], "sysctl", "-qw", f"net.ipv4.conf.eth0.force_igmp_version={version}")
    capture, captured = start_capture(lab, loop)
    tap = HostTap(lab.hosts[1])
    member = join(lab.hosts[1], "239.1.1.1")
    try:
        assert poll_until(loop, lambda: bool(captured.on("p2")))
        port, frame, vlan = captured.frames[0]
        assert (port, vlan) == ("p2", None)
        sent = [f for kind, f in tap.frames if kind == socket.PACKET_OUTGOING and is_igmp(f)]
        assert frame == sent[0]
        assert socket.inet_ntoa(frame[26:30]) == "192.0.2.12"
        igmp = frame[14 + 4 * (frame[14] & 0x0F) :]
        if version == 3:  # RFC 3376 §4.2: type 0x22, first record's group at offset 12
            assert socket.inet_ntoa(frame[30:34]) == "224.0.0.22"
            assert (igmp[0], socket.inet_ntoa(igmp[12:16])) == (0x22, "239.1.1.1")
        else:  # RFC 2236 §2: type 0x16, group at offset 4, sent to the group
            assert socket.inet_ntoa(frame[30:34]) == "239.1.1.1"
            assert (igmp[0], socket.inet_ntoa(igmp[4:8])) == (0x16, "239.1.1.1")
        # The kernel floods the report to p1 and p3 (outgoing there): never captured.
        assert {port for port, _, _ in captured.frames} == {"p2"}
        assert capture.stats()["p2"][0] == len(captured.on("p2"))
    finally:
        member.close()
        tap.close()
        capture.close()


@needs_root
@pytest.mark.netns
def test_data_traffic_never_reaches_python(lab: Lab, loop: asyncio.AbstractEventLoop) -> None:
    capture, captured = start_capture(lab, loop)
    receiver = HostTap(lab.hosts[2])
    try:
        payloads = [b"data-%d" % i for i in range(200)]
        send_udp(lab.hosts[0], "239.1.2.3", payloads)
        pim_elsewhere = raw(Ether(src=HOST_MAC, dst="01:00:5e:01:02:03") / _ip(PIM_HELLO, "239.1.2.3", proto=103))
        pim_hello = raw(Ether(src=HOST_MAC, dst="01:00:5e:00:00:0d") / _ip(PIM_HELLO, "224.0.0.13", proto=103))
        send_raw(lab.hosts[0], pim_elsewhere, pim_hello)  # the hello is the last frame: a marker
        assert poll_until(loop, lambda: len(captured.on("p1")) >= 1)
        assert captured.on("p1") == [pim_hello]
        # The data did cross p1: the bridge flooded it to h3 (no querier yet).
        assert poll_until(loop, lambda: sum(f.endswith(b"data-199") for f in receiver.received()) == 1)
        assert capture.stats()["p1"] == (1, 0)  # the kernel counts only what the filter passed
    finally:
        receiver.close()
        capture.close()


@needs_root
@pytest.mark.netns
def test_vlan_comes_from_auxdata(lab: Lab, loop: asyncio.AbstractEventLoop) -> None:
    capture, captured = start_capture(lab, loop)
    try:
        report = IP(src="192.0.2.11", dst="239.1.1.2", ttl=1) / IGMP(type=0x16, gaddr="239.1.1.2")
        head = Ether(dst="01:00:5e:01:01:02", src=HOST_MAC)
        send_raw(
            lab.hosts[0],
            raw(head / Dot1Q(vlan=10, prio=5) / report),
            raw(head / Dot1Q(vlan=10) / IP(dst="239.1.1.2") / UDP() / b"data"),
            raw(head / Dot1Q(vlan=0, prio=3) / report),
        )
        assert poll_until(loop, lambda: len(captured.frames) >= 2)
        untagged = raw(head / report)  # the kernel strips the tag before the taps run
        assert captured.frames == [("p1", untagged, 10), ("p1", untagged, None)]
    finally:
        capture.close()


@needs_root
@pytest.mark.netns
def test_capture_survives_port_down_up_and_vanished_ports(lab: Lab, loop: asyncio.AbstractEventLoop) -> None:
    ip("-n", lab.switch, "link", "set", "p2", "down")
    capture, captured = start_capture(lab, loop)  # capturing on a port that is down works
    try:
        ip("-n", lab.switch, "link", "set", "p2", "up")
        member = join(lab.hosts[1], "239.1.1.3")
        assert poll_until(loop, lambda: bool(captured.on("p2")))
        member.close()
        errors_before = capture.receive_errors

        ip("-n", lab.switch, "link", "set", "p1", "down")
        assert poll_until(loop, lambda: capture.receive_errors > errors_before)  # ENETDOWN, once
        ip("-n", lab.switch, "link", "set", "p1", "up")
        member = join(lab.hosts[0], "239.1.1.3")
        assert poll_until(loop, lambda: bool(captured.on("p1")))
        member.close()

        ip("-n", lab.switch, "link", "del", "p3")
        capture.remove_port("p3")  # vanished: no error
        capture.remove_port("no-such-port")
        assert set(capture.stats()) == {"p1", "p2"}
        with netns(lab.switch), pytest.raises(OSError):
            capture.add_port("ghost", 999_999, loop)
        assert set(capture.ports) == {"p1", "p2"}
    finally:
        capture.close()
    assert capture.ports == {}


# --- drops and throughput ---------------------------------------------------------------------

BLASTER_C = r"""
/* blast IFNAME COUNT RATE HEXFRAME: send COUNT copies of a frame, RATE frames/s (0: flat out) */
#define _GNU_SOURCE
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#define BATCH 32
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(int argc, char **argv) {
    if (argc != 5) return 2;
    long count = atol(argv[2]), sent = 0; double rate = atof(argv[3]);
    unsigned char frame[2048]; size_t len = strlen(argv[4]) / 2;
    for (size_t i = 0; i < len && i < sizeof frame; i++) sscanf(argv[4] + 2 * i, "%2hhx", &frame[i]);
    int fd = socket(AF_PACKET, SOCK_RAW, 0);
    struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_ifindex = if_nametoindex(argv[1])};
    if (fd < 0 || bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) { perror("socket"); return 1; }
    struct iovec iov = {frame, len}; struct mmsghdr msgs[BATCH]; memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < BATCH; i++) { msgs[i].msg_hdr.msg_iov = &iov; msgs[i].msg_hdr.msg_iovlen = 1; }
    double start = now();
    while (sent < count) {
        int n = count - sent < BATCH ? count - sent : BATCH, r;
        if (rate > 0) while (now() < start + sent / rate) ;
        if ((r = sendmmsg(fd, msgs, n, 0)) > 0) sent += r;
    }
    printf("%ld %.6f\n", sent, now() - start);
    return 0;
}
"""


@pytest.fixture(scope="module")
def blaster(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc to build the frame blaster")
    directory = tmp_path_factory.mktemp("blaster")
    (directory / "blast.c").write_text(BLASTER_C)
    subprocess.run(["gcc", "-O2", "-o", directory / "blast", directory / "blast.c"], check=True)
    return directory / "blast"


REPORT_FRAME = raw(Ether(src=HOST_MAC, dst="01:00:5e:00:00:16") / _ip(REPORT_V3, "224.0.0.22"))


def blast(blaster: Path, namespace: str, count: int, rate: int = 0) -> subprocess.Popen[str]:
    command = ["ip", "netns", "exec", namespace, str(blaster), "eth0", str(count), str(rate), REPORT_FRAME.hex()]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


@needs_root
@pytest.mark.netns
def test_drops_are_counted_and_accumulated(lab: Lab, loop: asyncio.AbstractEventLoop, blaster: Path) -> None:
    capture, captured = start_capture(lab, loop, receive_buffer_bytes=256 * 1024)
    try:
        sent = 20_000
        assert blast(blaster, lab.hosts[0], sent).wait(timeout=30) == 0  # loop idle: queue overflows
        assert poll_until(loop, lambda: len(captured.on("p1")) + capture.stats()["p1"][1] >= sent)
        packets, drops = capture.stats()["p1"]
        assert packets == sent
        assert drops > 0
        assert len(captured.on("p1")) + drops == sent
        assert capture.stats()["p1"] == (packets, drops)  # reading again does not reset
        assert capture.total_drops == drops
        capture.remove_port("p1")  # drops of removed ports stay in the total
        assert capture.total_drops == drops and capture.total_packets == sent
    finally:
        capture.close()


@needs_root
@pytest.mark.netns
@pytest.mark.parametrize(("sent", "rate"), [(50_000, 0), (20_000, 20_000)])
def test_capture_throughput(lab: Lab, loop: asyncio.AbstractEventLoop, blaster: Path, sent: int, rate: int) -> None:
    """IGMPv3 reports blasted from one host: every one is received or counted as a drop.

    ``rate`` 0 sends flat out (the veth and bridge path sets the pace); 20,000/s is a
    paced rate comfortably inside what Python keeps up with, where no frame may be lost.
    """
    count = 0
    first_at = last_at = 0.0

    def on_frame(port: str, frame: bytes, vlan: int | None) -> None:
        nonlocal count, first_at, last_at
        last_at = time.perf_counter()
        if count == 0:
            first_at = last_at
        count += 1

    capture = PacketCapture(on_frame)
    with netns(lab.switch):
        capture.add_port("p1", lab.ifindex("p1"), loop)
    try:
        process = blast(blaster, lab.hosts[0], sent, rate)
        assert poll_until(loop, lambda: count + capture.total_drops >= sent, timeout=60)
        output, _ = process.communicate(timeout=30)
        sender_seconds = float(output.split()[1])
        drops = capture.total_drops
        assert count + drops == sent and capture.stats()["p1"][0] == sent
        received_rate = count / max(last_at - first_at, 1e-9)
        print(
            f"\ncapture: sent {sent} at {sent / sender_seconds:,.0f}/s (target {rate or 'max'}),"
            f" python received {count} at {received_rate:,.0f}/s, drops {drops}"
        )
        if rate:
            assert drops == 0
    finally:
        capture.close()


# --- sending -----------------------------------------------------------------------------------


@needs_root
@pytest.mark.netns
def test_frame_sent_to_a_port_arrives_at_that_host_only(lab: Lab) -> None:
    taps = [HostTap(host) for host in lab.hosts]
    with netns(lab.switch):
        sender = FrameSender()
    try:
        frame = raw(Ether(src="02:00:00:00:00:fe", dst="01:00:5e:00:00:16") / _ip(REPORT_V3, "224.0.0.22"))
        marker = raw(Ether(src="02:00:00:00:00:fe", dst="ff:ff:ff:ff:ff:ff") / ARP(pdst="192.0.2.99"))
        assert sender.send(lab.ifindex("p2"), frame)
        assert sender.send(lab.ifindex("br0"), marker)  # flooded to all: later than frame everywhere
        deadline = time.monotonic() + 5
        while not all(marker in tap.received() for tap in taps):
            assert time.monotonic() < deadline
            time.sleep(0.002)
        assert [frame in tap.received() for tap in taps] == [False, True, False]
        assert sender.sent == 2 and not sender.errors
    finally:
        sender.close()
        for tap in taps:
            tap.close()


@needs_root
@pytest.mark.netns
def test_send_errors_are_counted_not_raised(lab: Lab) -> None:
    with netns(lab.switch):
        sender = FrameSender()
    try:
        frame = raw(Ether(src=HOST_MAC, dst="01:00:5e:00:00:16") / _ip(REPORT_V3, "224.0.0.22"))
        ip("-n", lab.switch, "link", "set", "p3", "down")
        assert not sender.send(999_999, frame)
        assert not sender.send(lab.ifindex("p3"), frame)
        assert not sender.send(lab.ifindex("p2"), frame + bytes(2000))
        assert sender.send_many([lab.ifindex("p1"), lab.ifindex("p3")], frame) == 1
        assert sender.errors == {"ENXIO": 1, "ENETDOWN": 2, "EMSGSIZE": 1}
        assert sender.sent == 1
    finally:
        sender.close()
    with pytest.raises(ValueError):
        sender.send(1, frame)


def querier_state(namespace: str, bridge_ifindex: int) -> dict[int, bytes]:
    """IFLA_LINKINFO/IFLA_INFO_DATA/IFLA_BR_MCAST_QUERIER_STATE of the bridge, raw, by type.

    iproute2 6.1 does not print this attribute, and pyroute2 0.9 does not decode it.
    """
    with netns(namespace):
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    with sock:
        body = struct.pack("=BxHiII", 0, 0, bridge_ifindex, 0, 0)  # struct ifinfomsg
        sock.send(struct.pack("=IHHII", 16 + len(body), 18, 1, 1, 0) + body)  # RTM_GETLINK
        data = sock.recv(1 << 16)

    def attributes(start: int, end: int) -> Iterator[tuple[int, int, int]]:
        while start + 4 <= end:
            length, kind = struct.unpack_from("=HH", data, start)
            if length < 4:
                return
            yield kind & 0x3FFF, start + 4, start + length
            start += (length + 3) & ~3

    span = (32, struct.unpack_from("=I", data)[0])
    for wanted in (18, 2, 47):  # IFLA_LINKINFO, IFLA_INFO_DATA, IFLA_BR_MCAST_QUERIER_STATE
        found = [(a, b) for kind, a, b in attributes(*span) if kind == wanted]
        if not found:
            return {}
        span = found[0]
    return {kind: data[a:b] for kind, a, b in attributes(*span)}


@needs_root
@pytest.mark.netns
def test_query_sent_through_the_bridge_reaches_every_host_and_makes_a_querier(
    lab: Lab, loop: asyncio.AbstractEventLoop
) -> None:
    """The bridge's multicast code takes a query sent out of br0 as a querier's query.

    Checked twice: the bridge reports the querier (IFLA_BR_MCAST_QUERIER_STATE), and it
    starts forwarding by its MDB (until then it floods): one max response time after the
    query, data for a group joined only behind p2 no longer reaches h3.
    """
    capture, captured = start_capture(lab, loop)
    taps = [HostTap(host) for host in lab.hosts]
    with netns(lab.switch):
        sender = FrameSender()
    member = join(lab.hosts[1], "239.1.1.1")
    try:
        bridge = lab.ifindex("br0")
        assert querier_state(lab.switch, bridge) == {}
        assert poll_until(loop, lambda: "239.1.1.1" in bridge_mdb(lab.switch))

        def h3_gets_group_data() -> bool:
            """Send data for 239.1.1.1, then a broadcast marker; did h3 get the data?"""
            token = secrets.token_bytes(8)
            send_udp(lab.hosts[0], "239.1.1.1", [b"data" + token])
            send_raw(lab.hosts[0], raw(Ether(src=HOST_MAC, dst="ff:ff:ff:ff:ff:ff", type=0x88B5) / (b"mark" + token)))
            # One path h1 -> p1 -> br0 -> p3 -> h3, in order: once the marker is in, so is the data.
            assert poll_until(loop, lambda: any(f.endswith(b"mark" + token) for f in taps[2].received()))
            return any(f.endswith(b"data" + token) for f in taps[2].received())

        assert h3_gets_group_data()  # no querier: the bridge floods

        query = igmp_query(lab.mac(lab.switch, "br0"), mrcode=5)  # max response time 0.5 s
        assert sender.send(bridge, query)
        assert poll_until(loop, lambda: all(query in tap.received() for tap in taps))
        state = querier_state(lab.switch, bridge)
        assert state[1] == socket.inet_aton("192.0.2.254")  # BRIDGE_QUERIER_IP_ADDRESS
        assert 2 not in state  # no BRIDGE_QUERIER_IP_PORT: the query came from the bridge itself

        deadline = time.monotonic() + 5
        while h3_gets_group_data():
            assert time.monotonic() < deadline, "the bridge kept flooding after our query"
        # The query left through every port as an outgoing frame: the capture never saw it.
        assert query not in [frame for _, frame, _ in captured.frames]
    finally:
        member.close()
        sender.close()
        capture.close()
        for tap in taps:
            tap.close()
