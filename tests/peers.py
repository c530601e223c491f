"""Real multicast routers and queriers, each in its own router namespace of a Lab.

    from tests.lab import Lab
    from tests.peers import start_peer, require_peer

    require_peer("frr")                                  # skip (or fail under scripts/test)
    with Lab("snp") as lab:
        sw = lab.switch("sw")
        frr = start_peer(lab, "frr", port_name="pr")    # eth0 192.0.2.200 on switch port "pr"
        ...
        assert "239.1.1.1" in frr.groups()
        frr.stop()                                       # ends its processes, deletes its namespace

Kinds: "kernel" (the kernel bridge querier), "frr" (zebra + pimd 8.4), "pimd" (2.3.2,
extracted by scripts/install-peers), "igmpproxy" (0.3), "mrouted" (4.6, built by
scripts/install-peers). See ../shared/reference/peers.md for what each one sends.

What they sent here (general queries from 192.0.2.200 to 224.0.0.1, TTL 1, Router Alert,
with start_peer's defaults query_interval=2, query_response_interval=1):

    kernel     v3, max resp 1 s, QQI 2 s; at 0 s, QI/4 later, then every 2.02 s
    frr        v3 with the S flag set, max resp 1 s, QQI 2 s; first ~1.1 s after start, +1 s,
               then every 2 s; PIM hellos at start and every 30 s
    pimd       v3, max resp fixed 10 s, QQI 2 s but sent about every 5 s (its timer tick);
               the FIRST QUERY HAS A BAD IGMP CHECKSUM, the next one (~5.5 s) is good
    igmpproxy  v2, max resp 10 s, at start then every 6-11 s (not configurable)
    mrouted    v3, max resp 1 s, QQI 2 s; three queries and three DVMRP probes at start, then
               a query every 2 s and a probe every 10 s

Every peer runs in the foreground as a child of the test, in its namespace, ended by PID.
Routers that need a second interface (igmpproxy upstream, mrouted's second vif) get a veth
pair inside their namespace addressed from 198.51.100.0/24, which never leaves it.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.lab import REPO, KernelQuerier, Lab, LabError, Process, Router, Switch, skip_or_fail, wait_until

PEERS_DIR = Path(os.environ.get("SNOOPD_PEERS_DIR", REPO / ".lab" / "peers"))
FRR_DIR = Path("/usr/lib/frr")
GROUP_RE = re.compile(r"\b(2(?:2[4-9]|3\d)\.\d{1,3}\.\d{1,3}\.\d{1,3})\b")


# MRT_INIT from linux/mroute.h; ENOPROTOOPT when the kernel is built without CONFIG_IP_MROUTE.
MRT_INIT = 200
_MRT_PROBE = ("import errno, socket, sys\n"
              "s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_IGMP)\n"
              "try:\n"
              f"    s.setsockopt(socket.IPPROTO_IP, {MRT_INIT}, 1)\n"
              "except OSError as e:\n"
              "    sys.exit(3 if e.errno == errno.ENOPROTOOPT else 4)\n")


@functools.cache
def kernel_multicast_routing() -> str | None:
    """None if this kernel can route multicast (MRT_INIT works), else why not.

    Probed in a throwaway network namespace (``unshare --net``), so the machine's own
    namespace never gets a multicast routing table."""
    probe = subprocess.run(["unshare", "--net", sys.executable, "-c", _MRT_PROBE],
                           capture_output=True, text=True, timeout=20)
    if probe.returncode == 3:
        return ("this kernel has no IPv4 multicast routing (CONFIG_IP_MROUTE is not set: "
                "MRT_INIT fails with ENOPROTOOPT), which every multicast router needs")
    if probe.returncode != 0:
        raise LabError(f"multicast routing probe failed ({probe.returncode}): {probe.stderr.strip()}")
    return None


def find_binary(name: str, *candidates: Path) -> Path | None:
    """The first executable candidate, else ``name`` on PATH."""
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    found = shutil.which(name)
    return Path(found) if found else None


def routable_groups(groups: set[str]) -> set[str]:
    """Drop the 224.0.0.x groups every router joins itself."""
    return {g for g in groups if not g.startswith("224.0.0.")}


class Peer:
    """A running peer: ``kind``, ``address`` (on ``iface`` = eth0), ``ns`` (its namespace),
    ``processes``; ``groups()`` reads its group table; ``stop()`` ends it and deletes the
    namespace (and so its switch port)."""

    kind: ClassVar[str] = ""
    # A multicast router opens the kernel's multicast routing socket (MRT_INIT) to run at all.
    multicast_router: ClassVar[bool] = True
    # Measured defaults (see peers.md); a test waits at most a little longer than this for a query.
    first_good_query_within: ClassVar[float] = 5.0

    def __init__(self, lab: Lab, name: str, port_name: str, addr: str, switch: Switch | None,
                 query_interval: float, query_response_interval: float) -> None:
        self.lab = lab
        self.query_interval = query_interval
        self.query_response_interval = query_response_interval
        self.router: Router = self.make_router(lab, name, port_name, addr, switch)
        self.ns = self.router
        self.address = addr
        self.iface = self.router.iface
        self.port = port_name
        self.processes: list[Process] = []
        self.dir = lab.dir / name
        self.dir.mkdir(mode=0o755, exist_ok=True)
        try:
            self.start()
        except Exception:
            self.stop()
            raise

    def make_router(self, lab: Lab, name: str, port_name: str, addr: str, switch: Switch | None) -> Router:
        router = lab.router(name, port_name, addr, switch=switch)
        router.address_iface()
        return router

    def start(self) -> None:
        raise NotImplementedError

    def groups(self) -> set[str]:
        """Multicast groups (outside 224.0.0.x) in the peer's own table."""
        raise NotImplementedError

    @classmethod
    def unavailable(cls) -> str | None:
        """None if this peer can run here, else the reason."""
        return None

    def spawn(self, name: str, argv: list[str], shell: bool = False) -> Process:
        process = self.ns.spawn(name, argv, shell=shell)
        self.processes.append(process)
        return process

    def check_running(self) -> bool:
        """Raise if a process of the peer has exited; else False (for use in wait predicates)."""
        for p in self.processes:
            if not p.alive():
                raise LabError(f"{self.kind}: {p.name} exited with {p.returncode}:\n{p.log_text()[-3000:]}")
        return False

    def log_text(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.log_text()}" for p in self.processes)

    def stop(self) -> dict[str, int | None]:
        """End the processes (SIGTERM by PID, newest first), then delete the namespace.
        Returns each process's exit status; ``killed`` on a process says SIGTERM was not enough."""
        statuses = {p.name: p.stop() for p in reversed(self.processes)}
        self.ns.delete()
        return statuses

    def write(self, name: str, text: str) -> Path:
        path = self.dir / name
        path.write_text(text)
        return path


class KernelQuerierPeer(Peer):
    """The kernel bridge querier in a router namespace (v3 by default, from ``address``)."""

    kind = "kernel"
    multicast_router = False
    first_good_query_within = 2.0

    def make_router(self, lab: Lab, name: str, port_name: str, addr: str, switch: Switch | None) -> Router:
        return lab.router_kernel_querier(name, port_name, addr, query_interval=self.query_interval,
                                         query_response_interval=self.query_response_interval,
                                         switch=switch)

    def start(self) -> None:
        pass

    def groups(self) -> set[str]:
        assert isinstance(self.router, KernelQuerier)
        return routable_groups(self.router.groups())


class FrrPeer(Peer):
    """FRR zebra + pimd, no watchfrr; private state directory owned by frr."""

    kind = "frr"
    first_good_query_within = 6.0

    @classmethod
    def unavailable(cls) -> str | None:
        for binary in (FRR_DIR / "zebra", FRR_DIR / "pimd"):
            if not os.access(binary, os.X_OK):
                return f"FRR not installed ({binary} missing; apt-get install frr)"
        if shutil.which("vtysh") is None:
            return "vtysh missing (apt-get install frr)"
        try:
            import pwd

            pwd.getpwnam("frr")
        except KeyError:
            return "no frr user (apt-get install frr)"
        return None

    def start(self) -> None:
        shutil.chown(self.dir, "frr", "frr")
        self.dir.chmod(0o770)
        self.write("zebra.conf", f"hostname {self.ns.short}\n")
        self.write("pimd.conf", "\n".join([
            f"hostname {self.ns.short}",
            f"interface {self.iface}",
            " ip pim",
            " ip igmp",
            " ip igmp version 3",
            # Response time first: FRR checks query-interval * 10 >= query-max-response-time (ds)
            # as each line is read, against the default 100 ds until the response time is set.
            f" ip igmp query-max-response-time {max(1, round(self.query_response_interval * 10))}",
            f" ip igmp query-interval {max(1, round(self.query_interval))}",
            "",
        ]))
        for f in self.dir.iterdir():
            shutil.chown(f, "frr", "frr")
        for daemon in ("zebra", "pimd"):
            self.spawn(daemon, [str(FRR_DIR / daemon), "-f", str(self.dir / f"{daemon}.conf"),
                                "-i", str(self.dir / f"{daemon}.pid"), "-z", str(self.dir / "zserv.api"),
                                "--vty_socket", str(self.dir), "-u", "frr", "-g", "frr", "-P", "0",
                                "--log", f"file:{self.dir / daemon}.log"])
            vty = self.dir / f"{daemon}.vty"
            wait_until(lambda: self.check_running() or vty.exists(), 10, f"FRR {daemon} vty socket")  # noqa: B023

    def vtysh(self, command: str) -> str:
        return self.ns.exec("vtysh", "--vty_socket", str(self.dir), "-c", command)

    def table(self) -> dict[str, Any]:
        out = self.vtysh("show ip igmp groups json")
        result: dict[str, Any] = json.loads(out) if out.strip() else {}
        return result

    def groups(self) -> set[str]:
        found: set[str] = set()

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                if isinstance(node.get("group"), str):
                    found.add(node["group"])
                for value in node.values():
                    walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)

        walk(self.table())
        return routable_groups(found)

    def log_text(self) -> str:
        logs = [self.dir / "zebra.log", self.dir / "pimd.log"]
        return super().log_text() + "".join(f"--- {p}\n{p.read_text()}" for p in logs if p.exists())


class PimdPeer(Peer):
    """pimd 2.3.2 (extracted, not installed) with a private tmpfs /run and an RP configured."""

    kind = "pimd"
    first_good_query_within = 8.0  # its first query has a bad checksum; the next comes one QI later
    binary = find_binary("pimd", PEERS_DIR / "pimd" / "usr" / "sbin" / "pimd")
    JOIN_RE = re.compile(r"[Gg]roup order from\s+(\S+)\s+\(\*,\s*(\S+?)\)")

    @classmethod
    def unavailable(cls) -> str | None:
        if cls.binary is None:
            return f"pimd not found (scripts/install-peers extracts it to {PEERS_DIR / 'pimd'})"
        return None

    def start(self) -> None:
        assert self.binary is not None
        conf = self.write("pimd.conf", "\n".join([
            f"igmp-query-interval {max(1, round(self.query_interval))}",
            f"phyint {self.iface} enable igmpv3",
            f"rp-address {self.address}",
            "",
        ]))
        self.spawn("pimd", [f"mount -t tmpfs none /run && mkdir -p /run/pimd && exec {self.binary} -f -N "
                            f"-c {conf} -s debug --debug=igmp"], shell=True)

    def groups(self) -> set[str]:
        """Groups pimd logged a join for (it has no query tool of its own)."""
        text = "\n".join(p.log_text() for p in self.processes)
        return routable_groups({m.group(2) for m in self.JOIN_RE.finditer(text)})


class IgmpproxyPeer(Peer):
    """igmpproxy 0.3: downstream eth0, upstream a veth inside the namespace (up0)."""

    kind = "igmpproxy"
    first_good_query_within = 12.0  # v2 queries every 6-10 s, not configurable
    binary = find_binary("igmpproxy", Path("/usr/sbin/igmpproxy"))
    upstream = "up0"

    @classmethod
    def unavailable(cls) -> str | None:
        return None if cls.binary is not None else "igmpproxy not installed (apt-get install igmpproxy)"

    def start(self) -> None:
        assert self.binary is not None
        self.router.add_internal_veth(self.upstream, "up1", "198.51.100.1/24")
        conf = self.write("igmpproxy.conf", "\n".join([
            "quickleave",
            f"phyint {self.upstream} upstream ratelimit 0 threshold 1",
            "  altnet 0.0.0.0/0",
            f"phyint {self.iface} downstream ratelimit 0 threshold 1",
            "phyint up1 disabled",
            "phyint lo disabled",
            "",
        ]))
        self.spawn("igmpproxy", [str(self.binary), "-d", "-v", "-v", str(conf)])

    def groups(self) -> set[str]:
        """What it joined upstream on behalf of its downstream members."""
        return routable_groups(set(GROUP_RE.findall(self.ns.ip("maddr", "show", "dev", self.upstream))))


class MroutedPeer(Peer):
    """mrouted 4.6 (built by scripts/install-peers), eth0 plus a second vif up0."""

    kind = "mrouted"
    first_good_query_within = 5.0
    binary = find_binary("mrouted", PEERS_DIR / "mrouted" / "bin" / "mrouted")
    ctl = find_binary("mroutectl", PEERS_DIR / "mrouted" / "bin" / "mroutectl")

    @classmethod
    def unavailable(cls) -> str | None:
        if cls.binary is None or cls.ctl is None:
            return f"mrouted not built (scripts/install-peers builds it into {PEERS_DIR / 'mrouted'})"
        return None

    def start(self) -> None:
        assert self.binary is not None
        self.router.add_internal_veth("up0", "up1", "198.51.100.1/24")
        conf = self.write("mrouted.conf", "\n".join([
            f"igmp-query-interval {max(1, round(self.query_interval))}",
            # sic: the 4.6 parser's spelling; the man page's "response" is a syntax error
            f"igmp-query-reponse-interval {max(1, round(self.query_response_interval))}",
            f"phyint {self.iface} enable igmpv3",
            "phyint up0 enable",
            "phyint up1 disable",
            "",
        ]))
        self.sock = self.dir / "mrouted.sock"
        # It keeps its generation id in /var/lib/misc/<ident>.genid: give it a private tmpfs there.
        self.spawn("mrouted", [f"mount -t tmpfs none /var/lib/misc && exec {self.binary} -n -f {conf} "
                               f"-i mrouted -p {self.dir / 'mrouted.pid'} -u {self.sock} -l debug"], shell=True)
        wait_until(lambda: self.check_running() or self.sock.exists(), 10, "mrouted control socket")

    def table_text(self) -> str:
        assert self.ctl is not None
        return self.ns.exec(str(self.ctl), "-u", str(self.sock), "-p", "show", "igmp", "groups")

    def groups(self) -> set[str]:
        return routable_groups(set(GROUP_RE.findall(self.table_text())))


PEERS: dict[str, type[Peer]] = {cls.kind: cls for cls in
                                (KernelQuerierPeer, FrrPeer, PimdPeer, IgmpproxyPeer, MroutedPeer)}


def available(kind: str) -> str | None:
    """None if peer ``kind`` can run on this machine, else why not."""
    return PEERS[kind].unavailable()


def require_peer(kind: str) -> None:
    """Skip the calling test if ``kind`` is missing (fail instead under SNOOPD_REQUIRE_LAB=1),
    or if it is a multicast router and this kernel cannot route multicast: a fact of the
    machine, not of its installs, so always a skip, whose reason pytest -rs prints."""
    if (reason := available(kind)) is not None:
        skip_or_fail(f"peer {kind}: {reason}")
    if PEERS[kind].multicast_router and (reason := kernel_multicast_routing()) is not None:
        pytest.skip(f"blocked on this machine: peer {kind}: {reason}")


def start_peer(lab: Lab, kind: str, name: str | None = None, port_name: str = "pr", addr: str = "192.0.2.200",
               *, switch: Switch | None = None, query_interval: float = 2.0,
               query_response_interval: float = 1.0) -> Peer:
    """Start peer ``kind`` in a new router namespace (``name``, default the kind) whose eth0
    (``addr``/24) is port ``port_name`` of ``switch`` (default: the lab's first switch).

    ``query_interval``/``query_response_interval`` are applied where the peer has the knob
    (not igmpproxy; not pimd's response time, fixed at 10 s)."""
    return PEERS[kind](lab, name or kind[:8], port_name, addr, switch, query_interval, query_response_interval)

