"""MDB write benchmark (root): 10,000 (*,G) entries, one group each, spread over 8 ports
of a bridge in a throwaway namespace; NetlinkMdb install and remove times (best and
median of several runs, targets 0.5 s and 0.2 s), next to ``bridge -batch`` doing the
same. Cleans up after itself, also on errors.

    .venv/bin/python scripts/bench_mdb.py [--runs N] [--entries N] [--json]

``run()`` returns (figures, table rows) like the other scripts/bench_* suites.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import secrets
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from snoopd.adapters.mdb import MdbOp, NetlinkMdb
from snoopd.core.actions import FilterMode

PORTS = 8


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


class BenchBridge:
    """Namespace ``snpa-bench-<random>`` with br0 (snooping, IGMPv3, hash_max raised) and
    ports p1..p8 (veths whose peers stay in the namespace)."""

    def __init__(self, entries: int) -> None:
        self.ns = f"snpa-bench-{secrets.token_hex(3)}"
        sh("ip", "netns", "add", self.ns)
        try:
            sh("ip", "netns", "exec", self.ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1",
               "net.ipv6.conf.default.disable_ipv6=1")
            hash_max = max(4096, 1 << (entries * 2 - 1).bit_length())
            self.ip("link", "add", "br0", "type", "bridge", "mcast_snooping", "1", "mcast_igmp_version", "3",
                    "mcast_hash_max", str(hash_max))
            for i in range(1, PORTS + 1):
                self.ip("link", "add", f"p{i}", "type", "veth", "peer", "name", f"h{i}")
                self.ip("link", "set", f"p{i}", "master", "br0", "up")
                self.ip("link", "set", f"h{i}", "up")
            self.ip("link", "set", "br0", "up")
            self.ifindex = {link["ifname"]: link["ifindex"] for link in json.loads(self.ip("-j", "link", "show"))}
        except BaseException:
            self.close()
            raise

    def ip(self, *args: str) -> str:
        return sh("ip", "-n", self.ns, *args)

    def entries(self) -> int:
        """Permanent port entries (ours and bridge -batch's; nothing else is permanent here)."""
        out = sh("bridge", "-n", self.ns, "-j", "mdb", "show", "dev", "br0")
        return sum(1 for block in json.loads(out or "[]") for e in block.get("mdb", [])
                   if e["port"] != "br0" and e["state"] == "permanent")

    def close(self) -> None:
        subprocess.run(["ip", "netns", "del", self.ns], check=False, capture_output=True)


def groups(n: int) -> list[str]:
    return [f"239.{1 + i // 65536}.{i // 256 % 256}.{i % 256}" for i in range(n)]


def bench_netlink(lab: BenchBridge, n: int, runs: int) -> tuple[list[float], list[float]]:
    ports = [lab.ifindex[f"p{i}"] for i in range(1, PORTS + 1)]
    install = [MdbOp.install(ports[i % PORTS], g, FilterMode.EXCLUDE) for i, g in enumerate(groups(n))]
    remove = [MdbOp.remove(ports[i % PORTS], g) for i, g in enumerate(groups(n))]
    add_times: list[float] = []
    del_times: list[float] = []
    with NetlinkMdb("br0", netns=lab.ns) as mdb:
        for _ in range(runs):
            start = time.perf_counter()
            errors = mdb.apply(install)
            add_times.append(time.perf_counter() - start)
            if errors or lab.entries() != n:
                raise RuntimeError(f"install: {len(errors)} errors, e.g. {errors[:1]}")
            start = time.perf_counter()
            errors = mdb.apply(remove)
            del_times.append(time.perf_counter() - start)
            if errors or lab.entries() != 0:
                raise RuntimeError(f"remove: {len(errors)} errors, e.g. {errors[:1]}")
    return add_times, del_times


def bench_bridge_batch(lab: BenchBridge, n: int, runs: int) -> tuple[list[float], list[float]]:
    add_times: list[float] = []
    del_times: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for verb in ("add", "del"):
            path = os.path.join(tmp, verb)
            with open(path, "w") as f:
                for i, g in enumerate(groups(n)):
                    f.write(f"mdb {verb} dev br0 port p{i % PORTS + 1} grp {g} permanent\n")
        for _ in range(runs):
            for verb, times in (("add", add_times), ("del", del_times)):
                start = time.perf_counter()
                sh("bridge", "-n", lab.ns, "-batch", os.path.join(tmp, verb))
                times.append(time.perf_counter() - start)
    return add_times, del_times


def run(n: int = 10_000, runs: int = 5) -> tuple[dict[str, float], list[tuple[str, str, str, str]]]:
    lab = BenchBridge(n)
    try:
        nl_add, nl_del = bench_netlink(lab, n, runs)
        br_add, br_del = bench_bridge_batch(lab, n, runs)
    finally:
        lab.close()
    figures = {
        "mdb_install_s_best": round(min(nl_add), 4), "mdb_install_s_median": round(statistics.median(nl_add), 4),
        "mdb_remove_s_best": round(min(nl_del), 4), "mdb_remove_s_median": round(statistics.median(nl_del), 4),
        "bridge_batch_add_s_median": round(statistics.median(br_add), 4),
        "bridge_batch_del_s_median": round(statistics.median(br_del), 4),
    }

    def row(what: str, ours: list[float], theirs: list[float]) -> tuple[str, str, str, str]:
        mine, kernel = statistics.median(ours), statistics.median(theirs)
        return (what, f"{mine:.3f} s (best {min(ours):.3f})", f"{kernel:.3f} s (bridge -batch)",
                f"{mine / kernel:.2f}")

    rows = [
        row(f"MDB install, {n:,} (*,G) over {PORTS} ports (target <= 0.5 s)", nl_add, br_add),
        row(f"MDB remove, {n:,} (*,G) (target <= 0.2 s)", nl_del, br_del),
    ]
    return figures, rows


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench_mdb.py", description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    figures, rows = run(args.entries, args.runs)
    if args.json:
        print(json.dumps(figures, sort_keys=True))
        return 0
    from bench import print_table

    print_table(rows, ("figure", "snoopd NetlinkMdb", "kernel tool", "ratio"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
