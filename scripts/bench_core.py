"""Core and codec benchmarks (one core, no network): decode and decode+receive
rates for IGMPv3 reports of 10 records, the memory and snapshot time of a table of
10,000 groups each joined on 8 of 48 ports, and the cost of an idle timer tick."""

from __future__ import annotations

import gc
import json
import os
import struct
import subprocess
import sys
import time

from snoopd.core.messages import RecordType
from snoopd.core.settings import CoreSettings, QuerierMode
from snoopd.core.snooper import Snooper
from snoopd.wire import decode
from snoopd.wire.codes import inet_checksum

RECORDS_PER_REPORT = 10


def v3_report(host: int, groups: list[int], sources_per_record: int = 1) -> bytes:
    """An Ethernet frame with an IGMPv3 report (records MODE_IS_EXCLUDE / ALLOW)."""
    body = b""
    for i, g in enumerate(groups):
        n = i % (sources_per_record + 2) if sources_per_record else 0
        rtype = RecordType.MODE_IS_EXCLUDE if n == 0 else RecordType.ALLOW_NEW_SOURCES
        srcs = b"".join(struct.pack("!I", 0xC0000200 + 50 + k) for k in range(n))
        body += struct.pack("!BBHI", rtype, 0, n, g) + srcs
    igmp = struct.pack("!BBHHH", 0x22, 0, 0, 0, len(groups)) + body
    igmp = igmp[:2] + struct.pack("!H", inet_checksum(igmp)) + igmp[4:]
    total = 24 + len(igmp)
    ip = struct.pack("!BBHHHBBH4s4s", 0x46, 0xC0, total, 0, 0x4000, 1, 2, 0,
                     struct.pack("!I", 0xC0000200 + host), bytes([224, 0, 0, 22])) + b"\x94\x04\x00\x00"
    ip = ip[:10] + struct.pack("!H", inet_checksum(ip)) + ip[12:]
    return b"\x01\x00\x5e\x00\x00\x16" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00" + ip + igmp


def make_frames(n_frames: int) -> list[bytes]:
    frames = []
    for f in range(n_frames):
        groups = [0xEF000000 + ((f * RECORDS_PER_REPORT + r) % 10_000) + 256 for r in range(RECORDS_PER_REPORT)]
        frames.append(v3_report(1 + f % 90, groups))
    return frames


ROUNDS = 7  # the best of several short rounds: this machine is shared and noisy


def bench_decode(frames: list[bytes]) -> float:
    best = 0.0
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for fr in frames:
            decode(fr)
        best = max(best, len(frames) * RECORDS_PER_REPORT / (time.perf_counter() - start))
    return best


def bench_ingest(frames: list[bytes]) -> float:
    """decode + Snooper.receive over the same reports again and again: the first round
    creates the table (10,000 groups), the others refresh it (the steady state)."""
    snooper = Snooper(CoreSettings(querier_mode=QuerierMode.OFF), 0.0)
    ports = [f"eth{i}" for i in range(48)]
    for p in ports:
        snooper.port_changed(p, 0.0, up=True)
    now = 1.0
    best = 0.0
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for i, fr in enumerate(frames):
            msg = decode(fr)
            snooper.receive(msg, ports[i % 48], now, fr)  # type: ignore[arg-type]
            now += 1e-5
        snooper.take_actions()
        best = max(best, len(frames) * RECORDS_PER_REPORT / (time.perf_counter() - start))
    return best


def table_child() -> None:
    """Run in a fresh process: build 10,000 groups x 8 of 48 ports, print figures."""
    def rss_mb() -> float:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    base = rss_mb()
    snooper = Snooper(CoreSettings(querier_mode=QuerierMode.OFF), 0.0)
    ports = [f"eth{i}" for i in range(48)]
    for p in ports:
        snooper.port_changed(p, 0.0, up=True)
    from snoopd.core.messages import GroupRecord, Report

    for g in range(10_000):
        group = f"239.{(g >> 16) & 255}.{(g >> 8) & 255}.{g & 255 or 1}" if g else "239.9.9.9"
        group = f"239.1.{g // 250}.{g % 250 + 1}"
        rec = GroupRecord(RecordType.MODE_IS_EXCLUDE, group, ())
        for k in range(8):
            port = ports[(g + k * 6) % 48]
            snooper.receive(Report(3, (rec,), f"192.0.2.{k + 1}", "224.0.0.22"), port, 1.0)
    snooper.take_actions()
    gc.collect()
    rss = rss_mb()
    start = time.perf_counter()
    snap = snooper.snapshot(2.0)
    snap_s = time.perf_counter() - start
    assert len(snap.entries) == 80_000, len(snap.entries)
    # Idle tick: nothing due. Compare a 10k-group table with an empty one.
    def tick_ns(s: Snooper) -> float:
        loops = 200_000
        t0 = time.perf_counter()
        for _ in range(loops):
            s.handle_timers(3.0)
            s.next_deadline()
        return (time.perf_counter() - t0) / loops * 1e9

    empty = Snooper(CoreSettings(querier_mode=QuerierMode.OFF), 0.0)
    print(json.dumps({"rss_mb_10k_groups": round(rss, 1), "rss_delta_mb_10k_groups": round(rss - base, 1),
                      "snapshot_s_10k_groups": round(snap_s, 4), "idle_tick_ns_10k": round(tick_ns(snooper), 1),
                      "idle_tick_ns_empty": round(tick_ns(empty), 1)}))


def machine_speed_ms() -> float:
    """A fixed pure-Python loop, timed before the figures: on this shared VM the same
    code runs up to twice as slow at times, and this shows which kind of moment it was."""
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        total = 0
        for i in range(200_000):
            total += i & 7
        best = min(best, time.perf_counter() - start)
    return best * 1000


def run() -> tuple[dict[str, float], list[tuple[str, str, str, str]]]:
    frames = make_frames(2000)
    speed = machine_speed_ms()
    decode_rate = bench_decode(frames)
    ingest_rate = bench_ingest(frames)
    out = subprocess.run([sys.executable, __file__, "--table-child"], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    table = json.loads(out.stdout)
    figures = {"decode_records_per_s": round(decode_rate), "ingest_records_per_s": round(ingest_rate), **table,
               "machine_loop_ms": round(speed, 2)}
    na = "n/a (no kernel equivalent)"
    rows = [
        ("machine speed: a fixed 200k-iteration Python loop (lower is faster; the same code "
         "runs up to 2x slower at busy moments here)",
         f"{speed:.1f} ms", na, "-"),
        ("decode, IGMPv3 records/s (target >= 500k)", f"{decode_rate:,.0f}", na, "-"),
        ("decode + core receive, records/s (target >= 200k)", f"{ingest_rate:,.0f}", na, "-"),
        ("RSS, 10k groups x 8 of 48 ports (target <= 100 MB)",
         f"{table['rss_mb_10k_groups']} MB (table {table['rss_delta_mb_10k_groups']} MB)", na, "-"),
        ("snapshot(), 80k memberships (target <= 0.5 s)", f"{table['snapshot_s_10k_groups']} s", na, "-"),
        ("idle handle_timers + next_deadline, 10k groups vs empty (O(1))",
         f"{table['idle_tick_ns_10k']} ns vs {table['idle_tick_ns_empty']} ns", na, "-"),
    ]
    return figures, rows


if __name__ == "__main__":
    if "--table-child" in sys.argv:
        table_child()
    else:
        figures, rows = run()
        print(json.dumps(figures))
