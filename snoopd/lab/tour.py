"""The newcomer's demo: a scripted tour of snoopd on a lab of network namespaces.

Each step says in one line what happens, does it with real kernels (hosts join and leave
through IP_ADD_MEMBERSHIP / IP_ADD_SOURCE_MEMBERSHIP, a sender streams, snoopd programs the
bridge), and shows the result: snoopd's own CLI output, and what reaches each host,
counted inside the host's namespace.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, TextIO

from snoopd.lab.net import (
    BRIDGE,
    GROUPS,
    HOSTS,
    RATE,
    ROUTER,
    ROUTER_ADDR,
    SENDER,
    SSM_GROUP,
    SWITCH_ADDR,
    DemoLab,
    LabError,
    ns_name,
    wait_until,
)

G1, G2 = GROUPS[0], GROUPS[1]
WIDTH = 88


def snoopd_command() -> str:
    """How to call snoopd from a shell: plain ``snoopd`` when that is this one."""
    here = os.path.join(os.path.dirname(sys.executable), "snoopd")
    found = shutil.which("snoopd")
    if found and os.path.realpath(found) == os.path.realpath(here):
        return "snoopd"
    return here if os.path.exists(here) else f"{sys.executable} -m snoopd"


def path_note(path: str) -> str:
    if path.endswith("/snoopd"):
        return (f"(`snoopd` below is {path}: `export PATH={os.path.dirname(path)}:$PATH` to type the commands as"
                " shown)")
    return f"(`snoopd` below is `{path}`)"


def usage_hints(socket: str, router: bool, snoopd: str = "snoopd") -> list[str]:
    """Commands to explore a running lab, one per line, aligned, with a comment each."""
    sw, h1 = ns_name("sw"), ns_name("h1")
    rows = [
        (f"{snoopd} mdb --socket {socket}", "snoopd's group table"),
        (f"{snoopd} ports --socket {socket}", "ports: router role, fast-leave, groups"),
        (f"{snoopd} querier --socket {socket}", "who is querier"),
        (f"{snoopd} stats --socket {socket}", "counters"),
        (f"{snoopd} port p1 --fast-leave on --socket {socket}", "change a port at run time"),
        (f"{snoopd} lab join h1 {G1}", "h1 joins and prints what arrives (Ctrl-C leaves)"),
        (f"{snoopd} lab join h3 {SSM_GROUP} --source {SENDER.addr}", "a source-specific (IGMPv3) join"),
        (f"{snoopd} lab watch h2", "what reaches h2's port, joined or not"),
        (f"ip netns exec {sw} {snoopd} mdb --kernel --bridge {BRIDGE}", "the kernel's MDB (proto 200: snoopd's)"),
        (f"ip netns exec {sw} bridge -d mdb show dev {BRIDGE}", "the same, by iproute2"),
        (f"ip netns exec {h1} ip maddr show dev eth0", "h1's kernel memberships"),
        (f"ip netns exec {h1} tcpdump -ni eth0 igmp", "IGMP on h1's wire (if tcpdump is installed)"),
        (f"{snoopd} lab status", "what the lab runs"),
    ]
    if router:
        rows.insert(-1, (f"ip netns exec {ns_name('rq')} bridge mdb show", "the router's own group table"))
    width = max(len(c) for c, _ in rows)
    return [f"{c:<{width}}  # {why}" for c, why in rows]


def topology(router: bool) -> list[str]:
    lines = []
    specs = [*HOSTS, SENDER, *((ROUTER,) if router else ())]
    for i, spec in enumerate(specs):
        joint = "+-- " + f"{BRIDGE} {SWITCH_ADDR}  (switch: namespace {ns_name('sw')})" if i == 0 else "|"
        lines.append(f"{spec.name:<3} {spec.addr:<12} {spec.role:<24} eth0 --- {spec.port:<2} ---{joint}")
    lines[-1] = lines[-1].replace("---|", "---+")
    return lines


class Tour:
    def __init__(self, lab: DemoLab, quick: bool = False, keep: bool = False, out: TextIO = sys.stdout) -> None:
        self.lab = lab
        self.quick = quick
        self.keep = keep
        self.out = out
        self.dwell = 0.5 if quick else 5.0  # reading time after each step
        self.window = 1.0  # seconds over which packets/s are counted
        self.t0 = time.monotonic()
        self.step_no = 0
        self.total = 8 if keep else 9
        self.snoopd = "snoopd"
        self.snoopd_path = snoopd_command()
        self.receivers = [h.name for h in lab.hosts]
        self.socket = lab.socket

    # --- output --------------------------------------------------------------------------------

    def say(self, text: str = "", indent: int = 0) -> None:
        for line in text.splitlines() or [""]:
            self.out.write((" " * indent + line).rstrip() + "\n")
        self.out.flush()

    def step(self, title: str, explanation: str) -> None:
        self.step_no += 1
        elapsed = time.monotonic() - self.t0
        head = f"== Step {self.step_no}/{self.total}: {title} "
        clock = f" {int(elapsed) // 60}:{int(elapsed) % 60:02d} =="
        self.say()
        self.say(head + "=" * max(2, WIDTH - len(head) - len(clock)) + clock)
        self.say(explanation, 3)

    def pause(self) -> None:
        time.sleep(self.dwell)

    def cli(self, *args: str, ns: str | None = None, socket: bool = True) -> str:
        """Run the real snoopd CLI, show the command line and its output."""
        argv = list(args) + (["--socket", self.socket] if socket else [])
        shown = ([f"ip netns exec {ns_name(ns)}"] if ns else []) + [self.snoopd, *argv]
        self.say()
        self.say("$ " + " ".join(shown), 3)
        command = [sys.executable, "-m", "snoopd", *argv]
        if ns:
            command = ["ip", "netns", "exec", ns_name(ns), *command]
        env = {**os.environ, "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "200"}
        proc = subprocess.run(command, capture_output=True, text=True, timeout=30, env=env,
                              stdin=subprocess.DEVNULL)
        output = (proc.stdout + proc.stderr).rstrip("\n")
        self.say(output, 5)
        if proc.returncode != 0:
            raise LabError(f"{' '.join(shown)}: exit {proc.returncode}")
        return output

    # --- measuring -----------------------------------------------------------------------------

    def counts(self) -> dict[str, dict[str, Any]]:
        return {h: self.lab.agent(h).counts() for h in self.receivers}

    def rates(self, window: float | None = None) -> tuple[dict[str, dict[str, float]], dict[str, set[str]]]:
        """packets/s of every group arriving at every receiver over ``window`` seconds; and
        which groups each one has joined."""
        before, t_before = self.counts(), time.monotonic()
        time.sleep(window or self.window)
        after, t_after = self.counts(), time.monotonic()
        elapsed = t_after - t_before
        rates = {h: {g: (after[h]["wire"].get(g, 0) - before[h]["wire"].get(g, 0)) / elapsed for g in GROUPS}
                 for h in self.receivers}
        joined = {h: set(after[h]["joined"]) for h in self.receivers}
        return rates, joined

    def show_receivers(self, note: str = "") -> dict[str, dict[str, float]]:
        rates, joined = self.rates()
        ports = {h.name: h.port for h in self.lab.hosts}
        roles = {h.name: h.role for h in self.lab.hosts}
        self.say()
        self.say(f"packets/s arriving at each host's eth0, counted in its namespace ({RATE}/s sent to each group;"
                 " * = joined)", 3)
        header = f"{'host':<5} {'port':<5} {'':<24}" + "".join(f"{g:>12}" for g in GROUPS)
        self.say(header, 5)
        for h in self.receivers:
            cells = "".join(f"{round(rates[h][g]):>11}{'*' if g in joined[h] else ' '}" for g in GROUPS)
            self.say(f"{h:<5} {ports[h]:<5} {roles[h]:<24}{cells}", 5)
        if note:
            self.say(note, 3)
        return rates

    def wait_flood_over(self, timeout: float = 15.0) -> float:
        """Until no host gets a group it has not joined (router ports excepted); seconds taken."""
        start = time.monotonic()

        def quiet() -> bool:
            rates, joined = self.rates(0.5)
            return all(rates[h][g] == 0 for h in self.receivers if h != ROUTER.name
                       for g in GROUPS if g not in joined[h])

        wait_until(quiet, timeout, "the bridge to stop flooding", interval=0)
        return time.monotonic() - start

    def wait_receiving(self, host: str, group: str, timeout: float = 10.0) -> None:
        agent = self.lab.agent(host)
        start = agent.counts()["wire"].get(group, 0)
        wait_until(lambda: agent.counts()["wire"].get(group, 0) >= start + 5, timeout,
                   f"{host} to receive {group}")

    def wait_member(self, group: str, port: str, present: bool = True, timeout: float = 10.0) -> float:
        """Until snoopd's table has (or no longer has) ``port`` for ``group``; seconds taken."""
        start = time.monotonic()

        def ok() -> bool:
            ports = {e["port"] for e in self.lab.request("mdb", {"group": group})["entries"]}
            return (port in ports) == present

        wait_until(ok, timeout, f"snoopd to {'learn' if present else 'prune'} {group} on {port}", interval=0.01)
        return time.monotonic() - start

    def timeline(self, host: str, group: str, action: Callable[[], None], max_seconds: float = 6.0) -> float:
        """Do ``action`` (a leave), then show ``host``'s packets/s of ``group`` every half second
        until it has stopped; returns when the last packet arrived, in seconds after the action."""
        agent = self.lab.agent(host)
        step = 0.5
        self.say()
        self.say(f"{host}'s packets/s of {group}, every {step} s from the leave:", 3)
        before = agent.counts()["wire"].get(group, 0)
        t_action = time.monotonic()
        action()
        zero_windows = 0
        t = t_action
        while time.monotonic() - t_action < max_seconds and zero_windows < 2:
            t += step
            time.sleep(max(0.0, t - time.monotonic()))
            now = agent.counts()["wire"].get(group, 0)
            rate = (now - before) / step
            before = now
            zero_windows = zero_windows + 1 if rate == 0 else 0
            bar = "#" * round(rate / RATE * 25)
            self.say(f"+{t - t_action:3.1f} s  {round(rate):>4}/s  {bar}", 5)
        if zero_windows < 2:
            raise LabError(f"{host} still receives {group} {max_seconds:g} s after leaving it")
        last = agent.counts()["last"].get(group)
        return 0.0 if last is None else max(0.0, float(last - t_action))

    # --- the tour ------------------------------------------------------------------------------

    def run(self) -> None:
        lab = self.lab
        self.say(f"snoopd demo: IGMP snooping on a Linux bridge, with real hosts in network namespaces"
                 f"{' (quick tour)' if self.quick else ''}")
        if self.snoopd_path != "snoopd":
            self.say(path_note(self.snoopd_path))

        self.step("the lab", f"A bridge br0 in a switch namespace; three receivers, a sender"
                  f"{' and a router' if lab.router else ''}, each in its own namespace.")
        lab.build()
        self.say()
        for line in topology(lab.router):
            self.say(line, 5)
        self.say()
        self.say("Hosts join and leave through their own kernels (h2's is forced to IGMPv2).", 3)
        self.say(f"tx streams {RATE} packets/s to each of {', '.join(GROUPS)}.", 3)
        for host in self.receivers:
            lab.agent(host)

        self.step("a plain bridge floods", "No snoopd yet, snooping off: br0 sends every multicast packet out of"
                  " every port.")
        lab.start_sender()
        for host in self.receivers:
            self.wait_receiving(host, G1)
        self.show_receivers("Every host gets every group, though nobody has joined anything.")
        self.pause()

        self.step("snoopd starts", "snoopd takes br0 over in kernel mode: its table programs the bridge MDB,"
                  " the kernel forwards.")
        self.say()
        self.say(f"$ ip netns exec {ns_name('sw')} {self.snoopd} run --config {lab.config} --socket {self.socket}",
                 3)
        lab.start_snoopd()
        ready = time.monotonic()
        self.say(f"ready: capturing on every port, control socket listening (log: {lab.dir}/snoopd.log)", 5)
        self.say("Its config has short timers for the demo: queries every 10 s, 1 s to answer, last member"
                 " queries 0.5 s apart.", 3)
        if lab.router:
            wait_until(lambda: self.lab.request("querier")["role"] == "non-querier", 15,
                       "snoopd to hear the router's queries")
            wait_until(lambda: any(p["is_router"] for p in self.lab.request("ports")["ports"]), 15,
                       "the router's port to become a router port")
            self.cli("querier")
            self.say(f"The router ({ROUTER_ADDR}) has the lower address, so it is the querier and snoopd stays"
                     " quiet;", 3)
            self.cli("ports")
            self.say(f"and its port {ROUTER.port} is a multicast-router port: it gets every group.", 3)
        else:
            self.cli("querier")
            self.say(f"No other querier on the LAN: snoopd queries, from the bridge's address {SWITCH_ADDR}.", 3)
        self.wait_flood_over()
        flood = time.monotonic() - ready
        self.show_receivers(f"Flooding stopped {flood:.1f} s after snoopd was ready: no members, no traffic."
                            if not lab.router else
                            f"Flooding stopped {flood:.1f} s after snoopd was ready: no members, so only the router"
                            " gets traffic.")
        self.pause()

        self.step(f"h1 joins {G1} (IGMPv3)", "h1's kernel sends an IGMPv3 report; snoopd learns it on p1 and"
                  " installs an MDB entry.")
        lab.agent("h1").join(G1)
        learned = self.wait_member(G1, "p1")
        self.say()
        self.say(f"snoopd had {G1} on p1 {learned * 1000:.0f} ms after the join call.", 3)
        self.wait_receiving("h1", G1)
        self.cli("mdb")
        self.show_receivers(f"h1 receives {G1}; h2 and h3 are on non-member ports and get none of it.")
        self.pause()

        self.step(f"h2 joins {G2} (v2), h3 joins {SSM_GROUP} from {SENDER.addr}",
                  f"An IGMPv2 report from h2; a source-specific IGMPv3 INCLUDE({SENDER.addr}) report from h3.")
        lab.agent("h2").join(G2)
        lab.agent("h3").join(SSM_GROUP, SENDER.addr)
        self.wait_member(G2, "p2")
        self.wait_member(SSM_GROUP, "p3")
        self.wait_receiving("h2", G2)
        self.wait_receiving("h3", SSM_GROUP)
        self.cli("mdb")
        self.show_receivers("Each host gets exactly the group it joined.")
        self.pause()

        self.step("the kernel's view", "snoopd's entries are permanent MDB entries tagged proto 200; the kernel"
                  " forwards by them.")
        self.cli("mdb", "--kernel", "--bridge", BRIDGE, ns="sw", socket=False)
        self.pause()

        who = "the router" if lab.router else "snoopd (the querier)"
        self.step(f"h1 leaves {G1}", f"h1 reports TO_IN({{}}); {who} sends two group-specific queries, 0.5 s"
                  " apart; nobody on p1 answers: pruned.")
        last = self.timeline("h1", G1, lambda: lab.agent("h1").leave(G1))
        self.wait_member(G1, "p1", present=False)
        self.say(f"The last packet reached h1 {last:.2f} s after the leave (the last member query time, 1 s).", 3)
        self.cli("mdb")
        self.pause()

        self.step("fast-leave on p2", "A fast-leave port is pruned at the first leave, without queries (for"
                  " ports with one host behind).")
        self.cli("port", "p2", "--fast-leave", "on")
        last = self.timeline("h2", G2, lambda: lab.agent("h2").leave(G2))
        self.wait_member(G2, "p2", present=False)
        self.say(f"The last packet reached h2 {last * 1000:.0f} ms after its IGMPv2 leave: pruned at once, no"
                 " queries.", 3)
        self.show_receivers(f"Only h3 ({SSM_GROUP} from {SENDER.addr}) is still a member.")
        self.pause()

        if self.keep:
            return
        self.step("snoopd stops", "On SIGTERM snoopd removes its MDB entries and filters and puts br0's options"
                  " back.")
        status = lab.stop_snoopd()
        self.say()
        self.say(f"snoopd exited with status {status}.", 3)
        self.cli("mdb", "--kernel", "--bridge", BRIDGE, ns="sw", socket=False)
        self.wait_receiving("h1", G1)
        self.show_receivers("br0 is the plain bridge of step 2 again: everything floods to everyone.")

    def explore(self, wait_for_enter: Callable[[], None]) -> None:
        """--keep: print how to explore the running lab, then wait."""
        self.say()
        self.say("The lab stays up (snoopd running, tx streaming, h3 still joined). In another terminal, as root:")
        self.say()
        if self.snoopd_path != "snoopd":
            self.say(path_note(self.snoopd_path))
        for line in usage_hints(self.socket, self.lab.router):
            self.say(line, 3)
        self.say()
        self.say("Press Enter (or Ctrl-C) here to tear it all down.")
        wait_for_enter()


# --- entry points ---------------------------------------------------------------------------------


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def wait_for_enter() -> None:
    with contextlib.suppress(EOFError):
        input()


def run_demo(quick: bool = False, keep: bool = False, router: bool = False, out: TextIO = sys.stdout) -> int:
    """The whole demo: build, tour, tear down (also on Ctrl-C, SIGTERM, SIGHUP and errors)."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    lab: DemoLab | None = None
    status = 0
    started = time.monotonic()
    try:
        lab = DemoLab(router=router, owner=os.getpid(), run_token=os.environ.get("SNOOPD_DEMO_RUN"))
        tour = Tour(lab, quick=quick, keep=keep, out=out)
        tour.run()
        if keep:
            tour.explore(wait_for_enter)
    except KeyboardInterrupt:
        out.write("\ninterrupted\n")
        status = 130
    except LabError as exc:
        out.flush()
        sys.stderr.write(f"\ndemo failed: {exc}\n")
        if lab is not None and lab.snoopd is not None:
            sys.stderr.write(f"snoopd log (last lines):\n{lab.snoopd.log_tail()}\n")
        status = 1
    finally:
        if lab is not None:
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not stop the cleanup
            for sig in (signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_IGN)
            out.write("\n== Cleaning up " + "=" * (WIDTH - 15) + "\n")
            for line in lab.close():
                out.write(f"   {line}\n")
            signal.signal(signal.SIGINT, previous)
            out.flush()
    if status == 0:
        out.write(f"\nDone in {time.monotonic() - started:.0f} s.\n")
    return status


def run_up(router: bool = False, out: TextIO = sys.stdout) -> int:
    """``snoopd lab up``: build the lab, start snoopd and the sender, leave them running."""
    lab = DemoLab(router=router, owner=None)
    try:
        lab.build()
        lab.start_sender()
        lab.start_snoopd()
    except BaseException:
        lab.close()
        raise
    snoopd = snoopd_command()
    out.write("The snoopd demo lab is up:\n\n")
    for line in topology(router):
        out.write(f"   {line}\n")
    out.write(f"\n   snoopd runs on br0 in {ns_name('sw')} (pid {lab.snoopd.pid if lab.snoopd else '?'}),"
              f" socket {lab.socket}, log {lab.dir}/snoopd.log\n")
    out.write(f"   tx streams {RATE} packets/s to each of {', '.join(GROUPS)}; nobody has joined yet.\n\n")
    out.write("Try, as root:\n\n")
    if snoopd != "snoopd":
        out.write(path_note(snoopd) + "\n\n")
    for line in usage_hints(lab.socket, router):
        out.write(f"   {line}\n")
    out.write("\nWhen done: snoopd lab down\n")
    return 0
