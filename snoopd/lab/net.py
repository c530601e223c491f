"""The demo lab: network namespaces, veths, a bridge, the real snoopd daemon, and host agents.

Everything is named so that it can be found again without any state: namespaces
``snoopd-demo-<name>``, the temp directory ``/tmp/snoopd-demo-*`` (config, socket, logs and
``lab.json``, the record of the processes started). Addresses come from 192.0.2.0/24 only,
groups from 239/8 and 232/8. Processes are always ended by PID.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

PREFIX = "snoopd-demo"
TMP_PREFIX = f"{PREFIX}-"
STATE_FILE = "lab.json"
AGENT = Path(__file__).resolve().with_name("agent.py")
BRIDGE = "br0"
SWITCH_ADDR = "192.0.2.254"
ROUTER_ADDR = "192.0.2.200"
SENDER_ADDR = "192.0.2.9"
GROUPS = ("239.1.1.1", "239.2.2.2", "232.1.1.1")
SSM_GROUP = "232.1.1.1"
RATE = 100  # packets/s the sender streams to each group

T = TypeVar("T")


class LabError(RuntimeError):
    """Something in the lab failed; the message says what."""


@dataclass(frozen=True)
class HostSpec:
    name: str
    port: str
    addr: str
    igmp: int | None  # force_igmp_version (None: follow the querier)
    role: str


HOSTS = (
    HostSpec("h1", "p1", "192.0.2.1", 3, "IGMPv3 receiver"),
    HostSpec("h2", "p2", "192.0.2.2", 2, "IGMPv2 receiver"),
    HostSpec("h3", "p3", "192.0.2.3", 3, "IGMPv3 receiver"),
)
SENDER = HostSpec("tx", "p9", SENDER_ADDR, None, "sender")
ROUTER = HostSpec("rq", "pq", ROUTER_ADDR, None, "router (kernel querier)")

# Short timers so that everything happens in seconds: membership interval 2 x 10 + 1 = 21 s,
# last member query time 2 x 0.5 = 1 s.
CONFIG = """\
# snoopd config of the demo lab (short timers, so that things happen in seconds)
bridge = "br0"
mode = "kernel"

[igmp]
query_interval = 10.0
query_response_interval = 1.0
last_member_query_interval = 0.5

[querier]
startup_wait = {startup_wait}

[ports.default]
fast_leave = false
"""


def ns_name(short: str) -> str:
    return f"{PREFIX}-{short}"


def run(argv: Sequence[str], check: bool = True, timeout: float = 30.0) -> str:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def lab_namespaces() -> list[str]:
    """Namespaces of any demo lab on this machine (found by name prefix)."""
    names = [line.split()[0] for line in run(["ip", "netns", "list"], check=False).splitlines() if line.strip()]
    return sorted(n for n in names if n.startswith(f"{PREFIX}-"))


def lab_dirs() -> list[Path]:
    """Temp directories of demo labs (each holds a lab.json)."""
    return sorted(Path(p) for p in glob.glob(os.path.join(tempfile.gettempdir(), f"{TMP_PREFIX}*"))
                  if (Path(p) / STATE_FILE).is_file())


def check_can_build() -> None:
    if os.geteuid() != 0:
        raise LabError("the demo lab needs root (it creates network namespaces)")
    for tool in ("ip",):
        if shutil.which(tool) is None:
            raise LabError(f"the demo lab needs {tool} (apt-get install iproute2)")
    existing = lab_namespaces()
    if existing:
        raise LabError(f"a demo lab is already up ({', '.join(existing)}); remove it with: snoopd lab down")


# --- processes ------------------------------------------------------------------------------------


class Process:
    """A child started in a namespace with ``ip netns exec`` (which execs: the PID is the program's)."""

    def __init__(self, name: str, ns: str, argv: Sequence[str], log: Path, pipes: bool = False) -> None:
        self.name = name
        self.argv = ["ip", "netns", "exec", ns, *argv]
        with open(log, "ab") as logf:
            self.popen = subprocess.Popen(
                self.argv, stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipes else logf, stderr=logf,
                start_new_session=True)  # Ctrl-C in the terminal goes to the tour, which stops us in order
        self.pid = self.popen.pid
        self.log = log

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM by PID, wait, then SIGKILL; returns the exit status."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.popen.wait(5.0)
        for f in (self.popen.stdin, self.popen.stdout):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()
        return self.popen.returncode

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Agent:
    """Client of agent.py ``serve`` in one host namespace (JSON lines over a pipe)."""

    def __init__(self, process: Process) -> None:
        self.process = process
        self.buffer = b""
        hello = self._read(10.0)
        if not hello.get("ready"):
            raise LabError(f"host agent {process.name} did not start: {hello}")

    def _read(self, timeout: float) -> dict[str, Any]:
        stdout = self.process.popen.stdout
        assert stdout is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([stdout], [], [], remaining)[0]:
                raise LabError(f"host agent {self.process.name} did not answer: {self.process.log_tail()}")
            chunk = os.read(stdout.fileno(), 65536)
            if not chunk:
                raise LabError(f"host agent {self.process.name} exited: {self.process.log_tail()}")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        reply: dict[str, Any] = json.loads(line)
        return reply

    def call(self, cmd: str, **args: Any) -> Any:
        stdin = self.process.popen.stdin
        assert stdin is not None
        stdin.write((json.dumps({"cmd": cmd, **args}) + "\n").encode())
        stdin.flush()
        reply = self._read(10.0)
        if not reply.get("ok"):
            raise LabError(f"{self.process.name}: {cmd} {args}: {reply.get('error')}")
        return reply.get("result")

    def join(self, group: str, source: str | None = None) -> None:
        self.call("join", group=group, source=source)

    def leave(self, group: str) -> None:
        self.call("leave", group=group)

    def counts(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call("counts")
        return result

    def close(self) -> None:
        stdin = self.process.popen.stdin
        if stdin is not None and self.process.alive():
            with contextlib.suppress(OSError):
                stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.popen.wait(2.0)
        self.process.stop()


# --- the lab --------------------------------------------------------------------------------------


class DemoLab:
    """One demo lab: build(), start_snoopd(), start_sender(), agent(); close() removes it all."""

    def __init__(self, router: bool = False, owner: int | None = None, run_token: str | None = None) -> None:
        check_can_build()
        self.router = router
        self.owner = owner  # the PID whose lifetime the lab shares (the tour); None: `lab up`
        self.run_token = run_token  # scripts/demo's name for this run (its safety net: `lab down --run`)
        self.dir = Path(tempfile.mkdtemp(prefix=TMP_PREFIX))
        self.dir.chmod(0o755)
        self.socket = str(self.dir / f"{BRIDGE}.sock")
        self.config = self.dir / "snoopd.toml"
        self.namespaces: list[str] = []
        self.processes: list[Process] = []
        self.agents: dict[str, Agent] = {}
        self.snoopd: Process | None = None
        self.closed = False
        self.save()

    @property
    def hosts(self) -> tuple[HostSpec, ...]:
        return HOSTS + ((ROUTER,) if self.router else ())

    # --- record --------------------------------------------------------------------------------

    def save(self) -> None:
        state = {"owner": self.owner, "run": self.run_token, "dir": str(self.dir), "socket": self.socket,
                 "router": self.router, "namespaces": self.namespaces,
                 "processes": [{"name": p.name, "pid": p.pid, "argv": p.argv} for p in self.processes]}
        tmp = self.dir / (STATE_FILE + ".new")
        tmp.write_text(json.dumps(state, indent=1) + "\n")
        tmp.replace(self.dir / STATE_FILE)

    # --- building ------------------------------------------------------------------------------

    def ip(self, ns: str, *args: str) -> None:
        run(["ip", "-n", ns_name(ns), *args])

    def sysctl(self, ns: str, values: dict[str, object]) -> None:
        # Written through /proc inside the namespace: no dependency on procps' sysctl.
        script = "; ".join(f"echo {v} > /proc/sys/{k.replace('.', '/')}" for k, v in values.items())
        run(["ip", "netns", "exec", ns_name(ns), "sh", "-ec", script])

    def add_ns(self, short: str) -> None:
        name = ns_name(short)
        run(["ip", "netns", "add", name])
        self.namespaces.append(name)
        self.save()
        self.ip(short, "link", "set", "lo", "up")
        # IPv4 only (no MLD / ND noise on the wire).
        self.sysctl(short, {"net.ipv6.conf.all.disable_ipv6": 1, "net.ipv6.conf.default.disable_ipv6": 1,
                            "net.ipv4.conf.all.rp_filter": 0, "net.ipv4.conf.default.rp_filter": 0})

    def add_port(self, spec: HostSpec) -> None:
        """A veth: ``spec.port`` on the switch bridge, ``eth0`` in the host's namespace."""
        self.add_ns(spec.name)
        self.ip("sw", "link", "add", spec.port, "type", "veth", "peer", "name", "eth0", "netns", ns_name(spec.name))
        self.ip("sw", "link", "set", spec.port, "master", BRIDGE)
        self.ip("sw", "link", "set", spec.port, "up")

    def build(self) -> None:
        self.add_ns("sw")
        # A plain bridge: snooping off, so it floods multicast like a hub until snoopd takes over.
        self.ip("sw", "link", "add", BRIDGE, "type", "bridge", "mcast_snooping", "0")
        self.ip("sw", "addr", "add", f"{SWITCH_ADDR}/24", "dev", BRIDGE)
        self.ip("sw", "link", "set", BRIDGE, "up")
        for spec in (*HOSTS, SENDER):
            self.add_port(spec)
            self.ip(spec.name, "addr", "add", f"{spec.addr}/24", "dev", "eth0")
            self.ip(spec.name, "link", "set", "eth0", "up")
            self.ip(spec.name, "route", "add", "224.0.0.0/4", "dev", "eth0")
            values: dict[str, object] = {"net.ipv4.conf.eth0.rp_filter": 0}
            if spec.igmp is not None:
                values["net.ipv4.conf.eth0.force_igmp_version"] = spec.igmp
            self.sysctl(spec.name, values)
        if self.router:
            self.build_router()

    def build_router(self) -> None:
        """A router namespace: its own bridge br0 (port eth0) runs the kernel's IGMPv3 querier
        from 192.0.2.200, every 5 s; it wins the querier election against snoopd (.254)."""
        self.add_port(ROUTER)
        self.ip("rq", "link", "add", BRIDGE, "type", "bridge", "mcast_snooping", "1", "mcast_igmp_version", "3",
                "mcast_query_use_ifaddr", "1", "mcast_query_interval", "500",
                "mcast_query_response_interval", "100", "mcast_startup_query_interval", "125",
                "mcast_last_member_interval", "50")
        self.ip("rq", "link", "set", "eth0", "master", BRIDGE)
        self.ip("rq", "link", "set", "eth0", "up")
        self.ip("rq", "addr", "add", f"{ROUTER_ADDR}/24", "dev", BRIDGE)
        self.ip("rq", "link", "set", BRIDGE, "up")
        # Its own command: set with the timers, the kernel would use the old response interval.
        self.ip("rq", "link", "set", BRIDGE, "type", "bridge", "mcast_querier", "1")

    # --- processes -----------------------------------------------------------------------------

    def spawn(self, name: str, ns: str, argv: Sequence[str], pipes: bool = False) -> Process:
        process = Process(name, ns_name(ns), argv, self.dir / f"{name}.log", pipes=pipes)
        self.processes.append(process)
        self.save()
        return process

    def start_snoopd(self) -> Process:
        """The real daemon on the switch bridge, in kernel mode; waits until it is ready."""
        self.config.write_text(CONFIG.format(startup_wait="1.0" if self.router else "0.0"))
        self.snoopd = self.spawn("snoopd", "sw", [sys.executable, "-m", "snoopd", "run", "--config", str(self.config),
                                                  "--socket", self.socket, "--log-level", "info"])
        snoopd = self.snoopd

        def ready() -> bool:
            if not snoopd.alive():
                raise LabError(f"snoopd exited with status {snoopd.popen.returncode}:\n{snoopd.log_tail()}")
            try:
                return " ready bridge=" in snoopd.log.read_text(errors="replace")
            except OSError:
                return False

        wait_until(ready, 20.0, "snoopd to be ready")
        return snoopd

    def stop_snoopd(self) -> int | None:
        if self.snoopd is None:
            return None
        status = self.snoopd.stop(timeout=15.0)
        self.snoopd = None
        return status

    def start_sender(self) -> Process:
        return self.spawn("tx-sender", SENDER.name, [sys.executable, "-u", str(AGENT), "--tag", ns_name(SENDER.name),
                                                     "send", "--rate", str(RATE), *GROUPS])

    def agent(self, host: str) -> Agent:
        """The agent in ``host``'s namespace (started on first use)."""
        if host not in self.agents:
            process = self.spawn(f"{host}-agent", host, [sys.executable, "-u", str(AGENT), "--tag", ns_name(host),
                                                         "serve"], pipes=True)
            self.agents[host] = Agent(process)
        return self.agents[host]

    def request(self, cmd: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        """One request to snoopd's control socket; its result."""
        from snoopd.control import request

        reply = request(self.socket, cmd, args)
        if not reply.get("ok"):
            raise LabError(f"snoopd {cmd}: {reply.get('error')}")
        result: dict[str, Any] = reply["result"]
        return result

    # --- teardown ------------------------------------------------------------------------------

    def close(self) -> list[str]:
        """Stop every process (by PID), delete the namespaces and the temp directory.
        Returns one line per thing removed. Never raises for something already gone."""
        if self.closed:
            return []
        self.closed = True
        done: list[str] = []
        for agent in self.agents.values():
            with contextlib.suppress(Exception):
                agent.close()
        for process in reversed(self.processes):
            with contextlib.suppress(Exception):
                process.stop(timeout=15.0 if process.name == "snoopd" else 5.0)
        if self.processes:
            done.append("stopped processes " + " ".join(f"{p.name}={p.pid}" for p in self.processes))
        done += remove_namespaces(self.namespaces)
        shutil.rmtree(self.dir, ignore_errors=True)
        done.append(f"removed {self.dir}")
        return done


def remove_namespaces(names: Sequence[str]) -> list[str]:
    """End whatever still runs in these namespaces (all of it ours), then delete them."""
    done = []
    existing = set(lab_namespaces())
    for name in names:
        if name not in existing:
            continue
        pids = [int(p) for p in run(["ip", "netns", "pids", name], check=False).split()]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if pids:
            done.append(f"killed leftover processes in {name}: {' '.join(map(str, pids))}")
        run(["ip", "netns", "del", name], check=False)
    gone = [n for n in names if n in existing]
    if gone:
        done.append("deleted namespaces " + " ".join(gone))
    return done


def read_state(directory: Path) -> dict[str, Any]:
    try:
        state: dict[str, Any] = json.loads((directory / STATE_FILE).read_text())
        return state
    except (OSError, ValueError):
        return {}


def live_processes(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The recorded processes still running as recorded (a PID reused by another program is not ours)."""
    return [p for p in state.get("processes", [])
            if pid_alive(int(p["pid"])) and cmdline(int(p["pid"])) == p["argv"][4:]]


def owner_alive(state: dict[str, Any]) -> bool:
    owner = state.get("owner")
    return isinstance(owner, int) and pid_alive(owner)


def down(run_token: str | None = None) -> list[str]:
    """Tear down what demo labs left: recorded processes (SIGTERM by PID, then SIGKILL), every
    ``snoopd-demo-*`` namespace, the temp directories. With ``run_token``, only the lab of
    that run of scripts/demo (nothing else)."""
    done: list[str] = []
    dirs = lab_dirs()
    if run_token is not None:
        dirs = [d for d in dirs if read_state(d).get("run") == run_token]
        if not dirs:
            return []
    namespaces: list[str] = []
    for directory in dirs:
        state = read_state(directory)
        procs = live_processes(state)
        # snoopd first, and with SIGTERM: a clean stop puts its bridge back before the bridge goes.
        for p in sorted(procs, key=lambda p: p["name"] != "snoopd"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(p["pid"]), signal.SIGTERM)
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and any(pid_alive(int(p["pid"])) for p in procs):
            time.sleep(0.05)
        for p in procs:
            if pid_alive(int(p["pid"])):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(p["pid"]), signal.SIGKILL)
        if procs:
            done.append("stopped " + " ".join(f"{p['name']}={p['pid']}" for p in procs))
        namespaces += state.get("namespaces", [])
    if run_token is None:
        namespaces = sorted(set(namespaces) | set(lab_namespaces()))
    done += remove_namespaces(namespaces)
    for directory in dirs:
        shutil.rmtree(directory, ignore_errors=True)
        done.append(f"removed {directory}")
    return done
