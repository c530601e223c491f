"""A lab of network namespaces for integration tests: switches, hosts and routers with real kernels.

    with Lab("snp") as lab:
        sw = lab.switch("sw", querier=True)                 # namespace with bridge br0, snooping on
        h1 = lab.host("h1", "p1", "192.0.2.1", force_igmp_version=2)
        h2 = lab.host("h2", "p2", "192.0.2.2")
        tx = lab.host("tx", "p9", "192.0.2.9")
        h1.join("239.1.1.1")
        stream = tx.stream("239.1.1.1", rate=100)
        wait_until(lambda: h1.received("239.1.1.1") > 0, 5, "h1 receives")
        assert sw.members("239.1.1.1") == {"p1"}

Everything created (namespaces, and with them their veths and bridges; processes) is tracked
and removed on ``close()``, also after exceptions; processes are ended by PID. Namespace names
are ``<prefix>-<random>-<name>``; addresses come from 192.0.2.0/24 only (hosts .1-.99, routers
.200 and up, the switch bridge .254), groups from 239/8, 232/8 and 224.0.0.x.

Hosts act through their own kernel by way of an agent (tests/nshost.py) in their namespace:
joins are real IP_ADD_MEMBERSHIP / IP_ADD_SOURCE_MEMBERSHIP calls, so the reports on the
wire are the kernel's own. Synchronise with ``wait_until`` (polling with a deadline), never
with sleeps.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import ipaddress
import json
import os
import secrets
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[1]
NSHOST = Path(__file__).resolve().with_name("nshost.py")
REGISTRY = Path("/run/snoopd-lab")  # one file per live lab namespace: the owner's PID
LAB_NET = ipaddress.ip_network("192.0.2.0/24")
ALLOWED_GROUPS = (ipaddress.ip_network("239.0.0.0/8"), ipaddress.ip_network("232.0.0.0/8"),
                  ipaddress.ip_network("224.0.0.0/24"))
DEFAULT_PORT = 5000
SWITCH_ADDRESS = "192.0.2.254"


class LabError(RuntimeError):
    """A lab operation failed (a command, an agent call, a wait)."""


# --- small helpers ----------------------------------------------------------------------------


def wait_until(predicate: Callable[[], T], timeout: float = 5.0, message: str = "",
               interval: float = 0.02) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that; fail at the deadline.

    The failure message includes the last value the predicate returned (or raised)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            value = predicate()
        except AssertionError as e:
            value, last = None, e
        else:
            last = value
            if value:
                return value
        if time.monotonic() >= deadline:
            what = message or getattr(predicate, "__name__", "condition")
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def wait_receiving(host: Host, group: str, more: int = 1, timeout: float = 5.0, wire: bool = False) -> int:
    """Wait until ``host`` gets ``more`` further datagrams of ``group`` (delivered to its
    member socket, or with ``wire=True`` seen on its interface); returns the new count."""
    count = host.seen if wire else host.received
    target = count(group) + more
    return wait_until(lambda: (n := count(group)) >= target and n, timeout,
                      f"{host.short} to receive {more} more of {group}")


def wait_not_receiving(host: Host, group: str, stream: Stream, packets: int = 20,
                       timeout: float = 10.0) -> float:
    """Wait until none of ``packets`` consecutive datagrams of ``stream`` reaches ``host``'s
    interface (its sniffer counts frames whether or not it joined); returns the seconds it took."""
    start = time.monotonic()

    def quiet() -> bool:
        before = host.seen(group)
        stream.wait_sent(packets)
        return host.seen(group) == before

    wait_until(quiet, timeout, f"{host.short} to stop seeing {group}")
    return time.monotonic() - start


def run(argv: Sequence[str], check: bool = True, timeout: float = 30.0) -> str:
    """Run a command, return its stdout; raise LabError with stderr when it fails."""
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(argv)} -> exit {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def centiseconds(seconds: float) -> str:
    """Bridge timer options are in USER_HZ (1/100 s)."""
    return str(round(seconds * 100))


def check_group(group: str) -> str:
    addr = ipaddress.ip_address(group)
    if not any(addr in net for net in ALLOWED_GROUPS):
        raise ValueError(f"lab groups come from 239/8, 232/8 or 224.0.0.x, not {group}")
    return group


def check_address(addr: str) -> str:
    if ipaddress.ip_address(addr) not in LAB_NET:
        raise ValueError(f"lab addresses come from {LAB_NET}, not {addr}")
    return addr


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def have_netns() -> str | None:
    """None when this process can build labs, else the reason why not."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if shutil.which("ip") is None or shutil.which("bridge") is None:
        return "needs iproute2 (ip, bridge)"
    return None


def skip_or_fail(reason: str) -> None:
    """Skip the test, unless SNOOPD_REQUIRE_LAB=1 (set by scripts/test): then fail it."""
    if os.environ.get("SNOOPD_REQUIRE_LAB") == "1":
        pytest.fail(f"{reason} (SNOOPD_REQUIRE_LAB=1: nothing may be skipped)")
    pytest.skip(reason)


# --- processes --------------------------------------------------------------------------------


class Process:
    """A child process, tracked by the lab and ended by its PID."""

    def __init__(self, lab: Lab, name: str, argv: Sequence[str], log: Path | None,
                 stdin: int | None = subprocess.DEVNULL, stdout: int | None = None) -> None:
        self.lab = lab
        self.name = name
        self.argv = list(argv)
        self.log = log
        logf = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.popen = subprocess.Popen(self.argv, stdin=stdin,
                                          stdout=stdout if stdout is not None else logf,
                                          stderr=logf, start_new_session=True)
        finally:
            if log is not None:
                logf.close()  # type: ignore[union-attr]
        self.pid = self.popen.pid
        self.killed = False  # True if SIGTERM was not enough
        lab.processes.append(self)

    def alive(self) -> bool:
        return self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM by PID, wait, SIGKILL if needed; returns the exit status."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.killed = True
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.popen.wait(5.0)
        for f in (self.popen.stdin, self.popen.stdout):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()
        return self.popen.returncode

    def log_text(self) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return self.log.read_text(errors="replace")

    def __repr__(self) -> str:
        return f"<Process {self.name} pid={self.pid} rc={self.popen.poll()}>"


class Agent:
    """Client of tests/nshost.py running in one namespace (JSON lines over a pipe)."""

    def __init__(self, ns: Netns) -> None:
        self.ns = ns
        self.process = Process(ns.lab, f"{ns.short}/agent",
                               ["ip", "netns", "exec", ns.name, sys.executable, "-u", str(NSHOST)],
                               log=ns.lab.logfile(f"{ns.short}.agent.log"),
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.lock = threading.Lock()
        self.buffer = b""
        self.next_id = 0
        hello = self._read_line(10.0)
        if not hello.get("ready"):
            raise LabError(f"agent in {ns.name} did not start: {hello}")

    def _read_line(self, timeout: float) -> dict[str, Any]:
        stdout = self.process.popen.stdout
        assert stdout is not None
        fd = stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise LabError(f"agent in {self.ns.name}: no answer within {timeout}s; "
                               f"log: {self.process.log_text()[-2000:]}")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise LabError(f"agent in {self.ns.name} exited: {self.process.log_text()[-2000:]}")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        result: dict[str, Any] = json.loads(line)
        return result

    def call(self, cmd: str, timeout: float = 10.0, **args: Any) -> Any:
        with self.lock:
            self.next_id += 1
            if "id" in args or "cmd" in args:
                raise ValueError("agent arguments may not be called id or cmd")
            request = {"id": self.next_id, "cmd": cmd, **args}
            stdin = self.process.popen.stdin
            assert stdin is not None
            stdin.write((json.dumps(request) + "\n").encode())
            stdin.flush()
            while True:
                reply = self._read_line(timeout)
                if reply.get("id") == self.next_id:
                    break
        if not reply.get("ok"):
            raise LabError(f"{self.ns.short}: {cmd}({args}) failed: {reply.get('error')}")
        return reply.get("result")

    def close(self) -> None:
        stdin = self.process.popen.stdin
        if stdin is not None and self.process.alive():
            with contextlib.suppress(OSError):
                stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.popen.wait(2.0)
        self.process.stop()


# --- IGMP frames as seen on the wire (an independent decoder, not snoopd.wire) --------------


def inet_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def igmp_time(code: int) -> float:
    """RFC 3376 §4.1.1/§4.1.7: codes >= 128 are floating point (mant | 0x10) << (exp + 3)."""
    if code < 128:
        return float(code)
    return float(((code & 0x0F) | 0x10) << (((code >> 4) & 0x07) + 3))


IGMP_TYPES = {0x11: "query", 0x12: "v1-report", 0x16: "v2-report", 0x17: "leave", 0x22: "v3-report",
              0x13: "dvmrp", 0x14: "pim-v1", 0x30: "mrd-advertisement"}


@dataclass
class Captured:
    """One IGMP or PIM frame captured by a sniffer."""

    t: float  # CLOCK_MONOTONIC when the agent read it
    ts: float | None  # kernel receive time (CLOCK_REALTIME)
    iface: str
    pkttype: int  # 0 host, 1 broadcast, 2 multicast, 4 outgoing
    frame: bytes
    src: str = ""
    dst: str = ""
    ttl: int = 0
    protocol: int = 0
    ip_checksum_ok: bool = False
    router_alert: bool = False
    payload: bytes = b""
    checksum_ok: bool = False  # IGMP (or PIM) checksum over the payload
    type: int = 0
    kind: str = ""
    version: int = 0  # for queries and reports: 1, 2 or 3
    max_resp: float = 0.0  # seconds (queries)
    group: str = ""
    s_flag: bool = False
    qrv: int = 0
    qqi: float = 0.0
    sources: list[str] = field(default_factory=list)
    records: list[tuple[int, str, list[str]]] = field(default_factory=list)  # v3 report records

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Captured:
        frame = bytes.fromhex(raw["frame"])
        c = cls(t=raw["t"], ts=raw["ts"], iface=raw["iface"], pkttype=raw["pkttype"], frame=frame)
        off = 14
        if frame[12:14] == b"\x81\x00":
            off += 4
        ihl = (frame[off] & 0x0F) * 4
        header = frame[off:off + ihl]
        total_length = int.from_bytes(frame[off + 2:off + 4], "big")
        c.ttl, c.protocol = header[8], header[9]
        c.src, c.dst = socket.inet_ntoa(header[12:16]), socket.inet_ntoa(header[16:20])
        c.ip_checksum_ok = inet_checksum(header) == 0
        c.router_alert = b"\x94\x04" in header[20:]
        c.payload = frame[off + ihl:off + total_length]
        c.checksum_ok = len(c.payload) >= 4 and inet_checksum(c.payload) == 0
        if c.protocol == 2 and len(c.payload) >= 8:
            c._parse_igmp(c.payload)
        elif c.protocol == 103:
            c.kind = "pim"
        return c

    def _parse_igmp(self, p: bytes) -> None:
        self.type = p[0]
        self.kind = IGMP_TYPES.get(p[0], f"type-{p[0]:#x}")
        self.group = socket.inet_ntoa(p[4:8])
        if p[0] == 0x11:
            if len(p) >= 12:  # RFC 3376 §7.1: length >= 12 is an IGMPv3 query
                self.version = 3
                self.max_resp = igmp_time(p[1]) / 10
                self.s_flag = bool(p[8] & 0x08)
                self.qrv = p[8] & 0x07
                self.qqi = igmp_time(p[9])
                n = int.from_bytes(p[10:12], "big")
                self.sources = [socket.inet_ntoa(p[12 + 4 * i:16 + 4 * i]) for i in range(n)]
            else:
                self.version = 2 if p[1] else 1
                self.max_resp = p[1] / 10 if p[1] else 10.0
        elif p[0] in (0x12, 0x16, 0x17):
            self.version = {0x12: 1, 0x16: 2, 0x17: 2}[p[0]]
        elif p[0] == 0x22:
            self.version = 3
            n = int.from_bytes(p[6:8], "big")
            off = 8
            for _ in range(n):
                rtype, aux, nsrc = p[off], p[off + 1], int.from_bytes(p[off + 2:off + 4], "big")
                group = socket.inet_ntoa(p[off + 4:off + 8])
                srcs = [socket.inet_ntoa(p[off + 8 + 4 * i:off + 12 + 4 * i]) for i in range(nsrc)]
                self.records.append((rtype, group, srcs))
                off += 8 + 4 * nsrc + 4 * aux

    @property
    def incoming(self) -> bool:
        return self.pkttype != 4

    def describe(self) -> str:
        if self.kind == "query":
            what = "general" if self.group == "0.0.0.0" else f"group {self.group}"
            extra = f" S={int(self.s_flag)} QRV={self.qrv} QQI={self.qqi:g}s" if self.version == 3 else ""
            return (f"IGMPv{self.version} {what} query from {self.src} to {self.dst}, max resp "
                    f"{self.max_resp:g}s{extra}, checksum {'ok' if self.checksum_ok else 'BAD'}")
        if self.kind == "v3-report":
            names = {1: "IS_IN", 2: "IS_EX", 3: "TO_IN", 4: "TO_EX", 5: "ALLOW", 6: "BLOCK"}
            records = ", ".join(f"{names.get(t, t)} {g} {{{' '.join(s)}}}" for t, g, s in self.records)
            return f"IGMPv3 report from {self.src}: {records}"
        if self.kind == "pim":
            return f"PIM from {self.src} to {self.dst}"
        return f"{self.kind} from {self.src} to {self.dst} group {self.group}"


# --- namespaces ------------------------------------------------------------------------------


class Netns:
    """One network namespace of the lab."""

    def __init__(self, lab: Lab, short: str) -> None:
        self.lab = lab
        self.short = short
        self.name = f"{lab.prefix}-{lab.suffix}-{short}"
        self._agent: Agent | None = None
        self.sniffing: set[str] = set()
        self.deleted = False
        run(["ip", "netns", "add", self.name])
        lab.namespaces.append(self)
        REGISTRY.mkdir(parents=True, exist_ok=True)
        (REGISTRY / self.name).write_text(f"{os.getpid()}\n")
        self.ip("link", "set", "lo", "up")
        # IPv4 only, no stray MLD/ND traffic; defaults before any interface is created here.
        self.sysctl({"net.ipv6.conf.all.disable_ipv6": 1, "net.ipv6.conf.default.disable_ipv6": 1,
                     "net.ipv4.conf.all.rp_filter": 0, "net.ipv4.conf.default.rp_filter": 0,
                     "net.ipv4.igmp_max_memberships": 1024, "net.ipv4.igmp_max_msf": 1024})

    def ip(self, *args: str, check: bool = True) -> str:
        return run(["ip", "-n", self.name, *args], check=check)

    def exec(self, *args: str, check: bool = True, timeout: float = 30.0) -> str:
        return run(["ip", "netns", "exec", self.name, *args], check=check, timeout=timeout)

    def sysctl(self, values: dict[str, object]) -> None:
        self.exec("sysctl", "-q", "-w", *(f"{k}={v}" for k, v in values.items()))

    def spawn(self, name: str, argv: Sequence[str], shell: bool = False) -> Process:
        """Start a process in this namespace (``ip netns exec`` execs it: its PID is ours to end).

        With ``shell=True``, ``argv`` is one shell command (``sh -c``) that should ``exec`` the
        program at the end, so the PID stays the program's."""
        command = ["sh", "-c", argv[0]] if shell else list(argv)
        return Process(self.lab, f"{self.short}/{name}", ["ip", "netns", "exec", self.name, *command],
                       log=self.lab.logfile(f"{self.short}.{name}.log"))

    @property
    def agent(self) -> Agent:
        if self._agent is None:
            self._agent = Agent(self)
        return self._agent

    def pids(self) -> list[int]:
        """PIDs of every process in this namespace."""
        if self.deleted:
            return []
        return [int(p) for p in run(["ip", "netns", "pids", self.name], check=False).split()]

    def link_exists(self, name: str) -> bool:
        return not self.deleted and bool(self.ip("-o", "link", "show", "dev", name, check=False).strip())

    def sniff(self, iface: str = "*") -> None:
        """Start recording IGMP/PIM frames and counting multicast UDP frames on ``iface``
        (default: every interface of the namespace, including ones created later)."""
        self.agent.call("sniff", iface=iface)
        self.sniffing.add(iface)

    def captured(self, iface: str, since: int = 0) -> list[Captured]:
        """IGMP and PIM frames recorded on ``iface`` (both directions; see Captured.incoming),
        by its own sniffer or the all-interfaces one."""
        key = iface if iface in self.sniffing or "*" not in self.sniffing else "*"
        result = self.agent.call("captured", iface=key, since=since)
        return [Captured.parse(raw) for raw in result["frames"] if raw["iface"] == iface or iface == "*"]

    def queries(self, iface: str, src: str | None = None) -> list[Captured]:
        """Incoming IGMP queries on ``iface`` (optionally from ``src``)."""
        return [c for c in self.captured(iface)
                if c.incoming and c.kind == "query" and (src is None or c.src == src)]

    def delete(self) -> None:
        """End every process in the namespace (all were started by this lab), then delete it."""
        if self.deleted:
            return
        if self._agent is not None:
            self._agent.close()
        for process in self.lab.processes:
            if process.argv[:4] == ["ip", "netns", "exec", self.name]:
                process.stop()
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        run(["ip", "netns", "del", self.name], check=False)
        with contextlib.suppress(FileNotFoundError):
            (REGISTRY / self.name).unlink()
        self.deleted = True

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class Switch(Netns):
    """A namespace with a bridge ``br0`` (IGMP snooping on unless asked otherwise)."""

    bridge = "br0"

    def __init__(self, lab: Lab, short: str, addr: str | None, options: dict[str, object]) -> None:
        super().__init__(lab, short)
        self.addr = addr
        self.ip("link", "add", self.bridge, "type", "bridge", *(f"{a}" for kv in options.items() for a in kv))
        if addr is not None:
            self.ip("addr", "add", f"{check_address(addr)}/24", "dev", self.bridge)
        self.ip("link", "set", self.bridge, "up")

    def set_bridge(self, **options: object) -> None:
        """``ip link set br0 type bridge KEY VALUE...`` (kernel units: timers in 1/100 s)."""
        self.ip("link", "set", self.bridge, "type", "bridge", *(f"{a}" for kv in options.items() for a in kv))

    def bridge_options(self) -> dict[str, Any]:
        info = json.loads(self.ip("-j", "-d", "link", "show", "dev", self.bridge))
        data: dict[str, Any] = info[0]["linkinfo"]["info_data"]
        return data

    def add_port(self, port: str, peer: Netns, peer_iface: str) -> None:
        """A veth pair: ``port`` on this bridge, ``peer_iface`` in ``peer`` (left down there)."""
        self.ip("link", "add", port, "type", "veth", "peer", "name", peer_iface, "netns", peer.name)
        self.ip("link", "set", port, "master", self.bridge)
        self.ip("link", "set", port, "up")

    def ports(self) -> list[str]:
        links = json.loads(self.ip("-j", "link", "show", "master", self.bridge))
        return [link["ifname"] for link in links]

    def mdb(self) -> list[dict[str, Any]]:
        """The kernel MDB entries of br0 (``bridge -j -d mdb show``), one dict per entry."""
        out = run(["bridge", "-n", self.name, "-j", "-d", "mdb", "show", "dev", self.bridge])
        entries: list[dict[str, Any]] = []
        for block in json.loads(out or "[]"):
            entries.extend(block.get("mdb", []))
        return entries

    def members(self, group: str, source: str | None = None) -> set[str]:
        """Ports the kernel MDB lists for ``group`` (its (*,G) entries, or (S,G) with source)."""
        return {e["port"] for e in self.mdb()
                if e.get("grp") == group and e.get("src") == source and e.get("port") != self.bridge}

    def router_ports(self) -> set[str]:
        """Ports the kernel considers multicast-router ports (learned or configured)."""
        out = run(["bridge", "-n", self.name, "-j", "-d", "mdb", "show", "dev", self.bridge])
        ports: set[str] = set()
        for block in json.loads(out or "[]"):
            for entries in (block.get("router") or {}).values():  # {"br0": [{"port": "p1", ...}]}
                ports.update(e["port"] if isinstance(e, dict) else e for e in entries)
        return ports


class Host(Netns):
    """A host namespace with one interface ``eth0`` on a switch port; acts through its kernel."""

    iface = "eth0"

    def __init__(self, lab: Lab, short: str, switch: Switch, port: str, addr: str,
                 force_igmp_version: int | None, sniff: bool) -> None:
        super().__init__(lab, short)
        self.switch, self.port, self.addr = switch, port, check_address(addr)
        switch.add_port(port, self, self.iface)
        self.ip("addr", "add", f"{addr}/24", "dev", self.iface)
        self.ip("link", "set", self.iface, "up")
        self.ip("route", "add", "224.0.0.0/4", "dev", self.iface)
        self.sysctl({f"net.ipv4.conf.{self.iface}.rp_filter": 0})
        if force_igmp_version is not None:
            self.force_igmp_version(force_igmp_version)
        if sniff:
            self.sniff(self.iface)

    @property
    def mac(self) -> str:
        info = json.loads(self.ip("-j", "link", "show", "dev", self.iface))
        mac: str = info[0]["address"]
        return mac

    def force_igmp_version(self, version: int) -> None:
        """/proc/sys/net/ipv4/conf/eth0/force_igmp_version. 1 and 2 force that version; 0 and 3
        both mean "no enforcement": such a host still falls back to IGMPv2 (and v2 report
        suppression) when it hears a v2 query, so keep the querier at v3 for v3 hosts."""
        self.sysctl({f"net.ipv4.conf.{self.iface}.force_igmp_version": version})

    def add_address(self, addr: str) -> None:
        """A secondary address (e.g. a second stream source)."""
        self.ip("addr", "add", f"{check_address(addr)}/24", "dev", self.iface)

    def join(self, group: str, source: str | None = None, port: int = DEFAULT_PORT) -> None:
        """Join through the kernel: IP_ADD_MEMBERSHIP, or IP_ADD_SOURCE_MEMBERSHIP with ``source``."""
        self.agent.call("join", group=check_group(group), source=source, iface=self.iface, port=port)

    def leave(self, group: str, port: int = DEFAULT_PORT) -> None:
        """Drop every membership of ``group`` (the socket is closed)."""
        self.agent.call("leave", group=group, iface=self.iface, port=port)

    def drop_source(self, group: str, source: str, port: int = DEFAULT_PORT) -> None:
        self.agent.call("drop_source", group=group, source=source, iface=self.iface, port=port)

    def block(self, group: str, source: str, port: int = DEFAULT_PORT) -> None:
        self.agent.call("block", group=group, source=source, iface=self.iface, port=port)

    def unblock(self, group: str, source: str, port: int = DEFAULT_PORT) -> None:
        self.agent.call("unblock", group=group, source=source, iface=self.iface, port=port)

    def counts(self) -> dict[str, Any]:
        result: dict[str, Any] = self.agent.call("counts")
        return result

    def received(self, group: str, source: str | None = None) -> int:
        """UDP datagrams of ``group`` delivered to this host's member socket(s)."""
        by_source: dict[str, int] = self.counts()["received"].get(group, {})
        return by_source.get(source, 0) if source is not None else sum(by_source.values())

    def seen(self, group: str, source: str | None = None) -> int:
        """UDP frames to ``group`` arriving at eth0 (sniffer; counts even without a join)."""
        by_source: dict[str, int] = self.counts()["seen"].get(self.iface, {}).get(group, {})
        return by_source.get(source, 0) if source is not None else sum(by_source.values())

    def reset(self, group: str | None = None) -> None:
        self.agent.call("reset", group=group)

    def stream(self, group: str, port: int = DEFAULT_PORT, rate: float = 100.0, count: int | None = None,
               duration: float | None = None, size: int = 64, ttl: int = 1,
               source: str | None = None) -> Stream:
        """Start a paced UDP stream to ``group`` (until ``count``/``duration``, or ``stop()``)."""
        stream_id = self.agent.call("send", group=check_group(group), port=port, rate=rate, count=count,
                                    duration=duration, size=size, ttl=ttl, source=source,
                                    iface=self.iface)
        return Stream(self, int(stream_id), group)

    def send(self, group: str, count: int = 10, rate: float = 1000.0, **kw: Any) -> int:
        """Send ``count`` datagrams and wait until they are out; returns the number sent."""
        stream = self.stream(group, count=count, rate=rate, **kw)
        return stream.wait(timeout=count / rate + 5.0)

    def igmp(self) -> list[Captured]:
        """IGMP frames on eth0, both directions (needs the sniffer, on by default)."""
        return [c for c in self.captured(self.iface) if c.protocol == 2]


@dataclass
class Stream:
    host: Host
    stream_id: int
    group: str

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self.host.agent.call("stream", stream=self.stream_id)
        return result

    @property
    def sent(self) -> int:
        return int(self.status()["sent"])

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for a finite stream to end; returns the number sent."""
        def ended() -> dict[str, Any]:
            status = self.status()
            return {} if status["running"] else status

        return int(wait_until(ended, timeout, f"stream {self.stream_id} of {self.host.short} to end")["sent"])

    def stop(self) -> int:
        return int(self.host.agent.call("stop", stream=self.stream_id)["sent"])

    def wait_sent(self, more: int, timeout: float = 10.0) -> int:
        """Wait until ``more`` further datagrams have left; returns the new total."""
        target = self.sent + more
        return int(wait_until(lambda: (n := self.sent) >= target and n, timeout,
                              f"{more} more datagrams from {self.host.short}"))


class Router(Netns):
    """A router namespace: ``eth0`` (address ``addr``/24) on a switch port."""

    iface = "eth0"

    def __init__(self, lab: Lab, short: str, switch: Switch, port: str, addr: str) -> None:
        super().__init__(lab, short)
        self.switch, self.port, self.addr = switch, port, check_address(addr)
        self.sysctl({"net.ipv4.ip_forward": 1})
        switch.add_port(port, self, self.iface)

    def address_iface(self, iface: str | None = None) -> None:
        iface = iface or self.iface
        self.ip("addr", "add", f"{self.addr}/24", "dev", iface)
        self.ip("link", "set", iface, "up")
        self.sysctl({f"net.ipv4.conf.{iface}.rp_filter": 0})

    def add_internal_veth(self, a: str = "up0", b: str = "up1", addr: str | None = "198.51.100.1/24") -> None:
        """A veth pair with both ends in this namespace: an upstream / second interface for
        routers that need one (igmpproxy, mrouted). 198.51.100.0/24 never leaves the namespace."""
        self.ip("link", "add", a, "type", "veth", "peer", "name", b)
        if addr is not None:
            self.ip("addr", "add", addr, "dev", a)
        self.ip("link", "set", a, "up")
        self.ip("link", "set", b, "up")


class KernelQuerier(Router):
    """A router namespace whose own bridge ``br0`` (with ``eth0`` as its port) runs the kernel
    bridge querier from ``addr``. Its group table is its bridge's MDB."""

    bridge = "br0"

    def __init__(self, lab: Lab, short: str, switch: Switch, port: str, addr: str, version: int,
                 query_interval: float, query_response_interval: float,
                 last_member_interval: float) -> None:
        super().__init__(lab, short, switch, port, addr)
        self.version = version
        self.query_interval = query_interval
        self.query_response_interval = query_response_interval
        self.ip("link", "add", self.bridge, "type", "bridge", "mcast_snooping", "1",
                "mcast_igmp_version", str(version), "mcast_query_use_ifaddr", "1",
                "mcast_query_interval", centiseconds(query_interval),
                "mcast_query_response_interval", centiseconds(query_response_interval),
                "mcast_startup_query_interval", centiseconds(query_interval / 4),
                "mcast_last_member_interval", centiseconds(last_member_interval))
        self.ip("link", "set", self.iface, "master", self.bridge)
        self.ip("link", "set", self.iface, "up")
        self.address_iface(self.bridge)
        # Separately from the timers: mcast_querier set in the same command as a new
        # response interval would still use the old one.
        self.ip("link", "set", self.bridge, "type", "bridge", "mcast_querier", "1")

    def mdb(self) -> list[dict[str, Any]]:
        out = run(["bridge", "-n", self.name, "-j", "-d", "mdb", "show", "dev", self.bridge])
        return [e for block in json.loads(out or "[]") for e in block.get("mdb", [])]

    def groups(self) -> set[str]:
        return {e["grp"] for e in self.mdb() if e.get("port") != self.bridge}

    def stop(self) -> None:
        self.delete()


# --- the lab ---------------------------------------------------------------------------------

_open_labs: weakref.WeakSet[Lab] = weakref.WeakSet()


def sweep_stale(prefix: str = "") -> list[str]:
    """Delete lab namespaces whose owning process is gone (after a SIGKILLed test run)."""
    swept: list[str] = []
    if not REGISTRY.is_dir():
        return swept
    existing = set(run(["ip", "netns", "list"], check=False).split())
    for entry in REGISTRY.iterdir():
        if not entry.name.startswith(prefix):
            continue
        try:
            owner = int(entry.read_text().split()[0])
        except (ValueError, IndexError, OSError):
            owner = 0
        if owner and pid_alive(owner):
            continue
        if entry.name in existing:
            for pid in run(["ip", "netns", "pids", entry.name], check=False).split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            run(["ip", "netns", "del", entry.name], check=False)
            swept.append(entry.name)
        with contextlib.suppress(FileNotFoundError):
            entry.unlink()
    return swept


class Lab:
    """Owns every namespace and process of one test; ``close()`` removes them all."""

    def __init__(self, prefix: str = "snp", keep_logs: bool | None = None) -> None:
        if (reason := have_netns()) is not None:
            raise LabError(reason)
        if not prefix or len(prefix) > 8 or not prefix.replace("-", "").isalnum():
            raise ValueError("prefix: 1-8 letters, digits or dashes")
        self.prefix = prefix
        self.suffix = secrets.token_hex(3)
        self.namespaces: list[Netns] = []
        self.processes: list[Process] = []
        self.keep_logs = os.environ.get("SNOOPD_LAB_KEEP") == "1" if keep_logs is None else keep_logs
        self.dir = Path(tempfile.mkdtemp(prefix=f"{prefix}-{self.suffix}-", dir="/tmp"))
        self.dir.chmod(0o755)  # daemons that drop privileges (FRR) keep their files below
        self.closed = False
        self.default_switch: Switch | None = None
        sweep_stale(prefix)
        _open_labs.add(self)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def logfile(self, name: str) -> Path:
        return self.dir / name.replace("/", ".")

    # --- building -------------------------------------------------------------------------

    def netns(self, name: str) -> Netns:
        return Netns(self, name)

    def switch(self, name: str = "sw", *, addr: str | None = None, querier: bool = False,
               snooping: bool = True, igmp_version: int | None = None,
               query_interval: float | None = None, query_response_interval: float | None = None,
               last_member_interval: float | None = None, last_member_count: int | None = None,
               **bridge_options: object) -> Switch:
        """A switch namespace with bridge ``br0``; the first switch becomes the lab's default.

        Timer arguments are seconds; ``bridge_options`` go to ``ip link add br0 type bridge``
        as they are (kernel units). ``querier=True`` runs the kernel querier on br0 from
        ``addr`` (default 192.0.2.254), with the timers given (defaults: query interval 2 s,
        response interval 1 s)."""
        options: dict[str, object] = {"mcast_snooping": 1 if snooping else 0}
        if querier:
            addr = addr or SWITCH_ADDRESS
            query_interval = query_interval or 2.0
            query_response_interval = query_response_interval or 1.0
            options["mcast_query_use_ifaddr"] = 1
            options["mcast_startup_query_interval"] = centiseconds(query_interval / 4)
        if igmp_version is not None:
            options["mcast_igmp_version"] = igmp_version
        for key, seconds in (("mcast_query_interval", query_interval),
                             ("mcast_query_response_interval", query_response_interval),
                             ("mcast_last_member_interval", last_member_interval)):
            if seconds is not None:
                options[key] = centiseconds(seconds)
        if last_member_count is not None:
            options["mcast_last_member_count"] = last_member_count
        options.update(bridge_options)
        sw = Switch(self, name, addr, options)
        if querier:
            sw.set_bridge(mcast_querier=1)  # its own command: see KernelQuerier
        if self.default_switch is None:
            self.default_switch = sw
        return sw

    def hub(self, name: str, port_name: str, switch: Switch | None = None, uplink: str = "uplink") -> Switch:
        """A small bridge (snooping off) in its own namespace behind ``port_name`` of ``switch``:
        attach several hosts with ``lab.host(..., switch=hub)`` to put them behind one port."""
        sw = self._switch(switch)
        hub = Switch(self, name, None, {"mcast_snooping": 0})
        sw.add_port(port_name, hub, uplink)
        hub.ip("link", "set", uplink, "master", hub.bridge)
        hub.ip("link", "set", uplink, "up")
        return hub

    def host(self, name: str, port_name: str, addr: str, force_igmp_version: int | None = None, *,
             switch: Switch | None = None, sniff: bool = True) -> Host:
        """A host namespace: ``eth0`` with ``addr``/24, joined to ``switch`` (default: the first
        switch) through a veth whose switch end is ``port_name``. The sniffer on eth0 is on
        unless ``sniff=False``."""
        return Host(self, name, self._switch(switch), port_name, addr, force_igmp_version, sniff)

    def router(self, name: str, port_name: str, addr: str = "192.0.2.200", *,
               switch: Switch | None = None) -> Router:
        """A bare router namespace with ``eth0`` on ``port_name`` (not yet addressed: call
        ``address_iface()``); tests/peers.py starts the routing daemons in such namespaces."""
        return Router(self, name, self._switch(switch), port_name, addr)

    def router_kernel_querier(self, name: str = "rq", port_name: str = "pq", addr: str = "192.0.2.200", *,
                              version: int = 3, query_interval: float = 2.0,
                              query_response_interval: float = 1.0, last_member_interval: float = 0.5,
                              switch: Switch | None = None) -> KernelQuerier:
        """A router namespace whose bridge runs the kernel querier (from ``addr``)."""
        return KernelQuerier(self, name, self._switch(switch), port_name, addr, version, query_interval,
                             query_response_interval, last_member_interval)

    def _switch(self, switch: Switch | None) -> Switch:
        if switch is not None:
            return switch
        if self.default_switch is None:
            raise LabError("create a switch first (lab.switch(...))")
        return self.default_switch

    # --- inspection and teardown ----------------------------------------------------------

    def live_namespaces(self) -> list[str]:
        """This lab's namespaces that exist in the kernel right now."""
        names = set(run(["ip", "netns", "list"], check=False).split())
        return [ns.name for ns in self.namespaces if ns.name in names]

    def live_processes(self) -> list[Process]:
        return [p for p in self.processes if pid_alive(p.pid)]

    def close(self) -> None:
        """Remove everything: agents, processes (by PID), namespaces (and so their links)."""
        if self.closed:
            return
        self.closed = True
        errors: list[str] = []
        for ns in reversed(self.namespaces):
            if ns._agent is not None:
                try:
                    ns._agent.close()
                except Exception as e:
                    errors.append(f"agent {ns.name}: {e}")
        for process in reversed(self.processes):
            try:
                process.stop()
            except Exception as e:
                errors.append(f"{process}: {e}")
        for ns in reversed(self.namespaces):
            try:
                ns.delete()
            except Exception as e:
                errors.append(f"{ns.name}: {e}")
        _open_labs.discard(self)
        if not self.keep_logs:
            shutil.rmtree(self.dir, ignore_errors=True)
        if errors:
            raise LabError("lab cleanup: " + "; ".join(errors))

    def dump_logs(self, tail: int = 40) -> str:
        """The last lines of every log of this lab (for failure messages)."""
        parts = []
        for path in sorted(self.dir.rglob("*.log")):
            lines = path.read_text(errors="replace").splitlines()[-tail:]
            if lines:
                parts.append(f"--- {path.relative_to(self.dir)}\n" + "\n".join(lines))
        return "\n".join(parts)


def _close_open_labs() -> None:
    for lab in list(_open_labs):
        with contextlib.suppress(Exception):
            lab.close()


atexit.register(_close_open_labs)


_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


@contextlib.contextmanager
def netns(name: str) -> Iterator[None]:
    """Run the block with this thread in namespace ``name`` (setns is per thread); always
    switch back. For adapter tests that open sockets inside a namespace in-process."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {name}")
        try:
            yield
        finally:
            if _libc.setns(home, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back home")
    finally:
        os.close(target)
        os.close(home)


def poll_until(loop: asyncio.AbstractEventLoop, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Run the event loop in short slices until ``predicate()`` holds or the deadline passes."""

    async def wait() -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.002)
        return True

    return loop.run_until_complete(wait())


def lab_session(prefix: str = "snp") -> Iterator[Lab]:
    """The body of a ``lab`` fixture: a Lab for one test, skipped without root (failed instead
    under SNOOPD_REQUIRE_LAB=1, as scripts/test sets). Its logs are printed at teardown, which
    pytest shows for failed tests only.

        @pytest.fixture
        def lab() -> Iterator[Lab]:
            yield from lab_session("snpx")
    """
    if (reason := have_netns()) is not None:
        skip_or_fail(reason)
    with Lab(prefix) as the_lab:
        try:
            yield the_lab
        finally:
            print(the_lab.dump_logs())


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A Lab for one test (import it into tests/conftest.py to share it)."""
    yield from lab_session(os.environ.get("SNOOPD_LAB_PREFIX", "snp"))
