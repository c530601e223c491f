"""Kernel-mode benchmark (root): the real snoopd daemon (``snoopd run``, kernel mode) on a
namespace bridge, next to the Linux bridge's own IGMP snooping on the same bridge, same run.

    scripts/bench kernel [--json]
    .venv/bin/python scripts/bench_kernel.py [--json] [--keep-logs] [--profile DIR]

Lab (tests/lab.py, prefix ``snbk``): switch ``sw`` (br0 at 192.0.2.254, mcast_igmp_version 3,
mcast_hash_max 262144) with hosts h3 (p1, 192.0.2.1, force_igmp_version 3), h2 (p2, .2,
force_igmp_version 2), tx (p9, .9, the stream sender) and r1..r4 (p11..p14, .21-.24, report
senders); and two more switches ``eb`` / ``ek`` (a sender and a receiver each) for the
start-to-enforcement figures of the default config. Traffic tools are one small C program
(below, compiled with gcc into a temporary directory): a paced sendmmsg UDP sender, a host-side
watcher (AF_PACKET with SO_TIMESTAMPNS on the host's eth0; it also makes the real kernel joins
and leaves), an IGMPv3 report blaster (AF_PACKET sendmmsg) and an RTNLGRP_MDB listener that
timestamps every MDB notification. All times are CLOCK_REALTIME (the clock of SO_TIMESTAMPNS).
The tools run on CPU 0 (the stream sender and blasters at nice -15), the daemon on CPU 1.

Figures (snoopd = the daemon; kernel = snoopd stopped, the bridge's own querier and learning):

1. join: a 20,000 pps stream (tx) to a fresh group; the host joins (IP_ADD_MEMBERSHIP); from its
   report leaving eth0 (PACKET_OUTGOING timestamp) to the first data frame of that group on
   eth0. 50 groups on h3 (IGMPv3: ``join_*``), 50 on h2 (IGMPv2: ``join_v2_*``); also from the
   join call (``join_call_*``, IGMPv3). p50/p99 by nearest rank (the p99 of 50 is the worst).
   ``join_report_to_mdb`` / ``join_mdb_to_data``: the same split at the RTM_NEWMDB the listener
   saw (p50; the p99 of the first is the switch's tail without the stream's); ``stream_gap``:
   the largest gap between two frames at the host per group (the stream's regularity, so the
   resolution of 1 and 2 on a busy machine); ``join_sender_stalls``: times the sender found
   itself over 1 ms behind its schedule during the loop.
2. fast leave: fast-leave on p1 and p2; 20 ms after each first frame above, the host leaves;
   from its leave on the wire (v2 Leave from h2, v3 TO_IN{} from h3) to the last data frame on
   eth0 (over when 50 ms pass without one; 0 = before the next frame was due).
   ``fast_leave_*`` pools both; ``_v2``/``_v3`` each.
3. start to enforcement: a 2,000 pps stream to a group nobody joined, counted on a host port;
   from spawning ``snoopd run`` to the last frame that port saw (confirmed by 1 s of silence).
   ``enforce_s``: the default config (only bridge and mode set; startup_wait = 10 s, so the
   kernel enforces after snoopd's solicitation at start);
   ``enforce_s_no_wait``: ``[querier] startup_wait = 0`` (timers default). Kernel
   (``kernel_enforce_s``, the comparison for both): from ``ip link set br0 type bridge
   mcast_querier 1`` (all else default) to the same. The two default-timer figures run side by
   side on bridges ``eb`` and ``ek``; the startup_wait = 0 one alone on ``sw``.
4. 10k MDB install: 100 IGMPv3 reports of 100 CHANGE_TO_EXCLUDE {} records (10,000 groups,
   one port) sent at once from r1; from the first report sent to the 10,000th RTM_NEWMDB for
   them. Remove: SIGTERM to the daemon until the last RTM_DELMDB of proto 200
   (``mdb_remove_10k_s``; also the daemon's own log ``stopping`` -> ``mdb.flushed``,
   ``mdb_remove_10k_log_s``, and SIGTERM -> exit). Median of 3 daemons (``*_max``: the worst).
   Kernel: its learning of the same reports; removal = turning snooping off
   (``mcast_snooping 0``, which flushes its MDB) to the last RTM_DELMDB. Also NetlinkMdb.apply
   of 10k installs/removes (snoopd.adapters.mdb, direct) vs ``bridge -batch`` of 10k
   ``mdb add``/``mdb del`` (median of 3).
5. ingest: 4 hosts (r1..r4, one port each) send one-record IGMPv3 reports for distinct groups,
   5,100/s each for 2 s (20,400/s, 40,800 groups); ``ingest_reports_per_s`` = groups that made
   it into the kernel MDB / (last RTM_NEWMDB - first report sent); ``ingest_capture_drops``
   from ``snoopd stats --json``; the table is checked against ``snoopd mdb --json`` and the
   kernel MDB. Kernel: the same load learnt by the bridge itself (``kernel_ingest_capture_drops``
   = offered groups missing from its MDB).

6. machine: before snoopd's first daemon starts, with the stream running, a process idle
   100 ms is woken 30 times through a pipe written from CPU 0, on CPU 1 (where the daemon
   runs: ``wake_other_cpu_ms``) and on CPU 0 (``wake_same_cpu_ms``), p50. On this VM an idle
   vCPU is woken by the hypervisor: that time is part of every join and leave figure of any
   daemon (the kernel bridge has none: it runs in the receiving CPU's softirq), and it moves
   with the host. It also lets an idle process's memory go cold: a C loop that touches one
   byte per 4 KB page of 16 MB takes 0.03 us per page 1 ms after its last pass and 4.7 us
   after 8 s asleep. With a 5 s health check the daemon's first join after start took
   1.4-4 ms (the p99 of the 50 in most runs); with the check every second (kernel mode
   since 2026-12-06) it was 0.5-1.1 ms in six runs.
7. after a lull: 3 times, the stream stops and nothing happens on the bridge for 8 s, then one
   join on h3 as in 1 (``join_after_lull_p50_ms`` / ``_max_ms``); ``idle_cpu_pct``: the
   daemon's CPU time over those lulls (schedstat, all threads) / their length.

snoopd config for 1, 2, 4, 5 (timers at their defaults): ``max_groups = 65536`` (for the
40,800 groups of 5), ``[querier] startup_wait = 0``, ``fast_leave = true`` on p1 and p2; log
level info (the default), JSON lines. Kernel for 1, 2, 4, 5: ``mcast_querier 1`` with query
interval 12.5 s, response interval 1 s (so it enforces 1 s after its first query), fastleave
on p1 and p2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import pathlib
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_software import cpu_seconds  # noqa: E402

from tests.lab import Host, Lab, LabError, Netns, Process, Switch  # noqa: E402

T = TypeVar("T")

STREAM_PPS = 20_000
ENFORCE_PPS = 2_000
JOIN_GROUPS = 50
LEAVE_QUIET_S = 0.05
JOIN_HOLD_S = 0.02
ENFORCE_QUIET_S = 1.0
INSTALL_GROUPS = 10_000
RECORDS_PER_REPORT = 100
INGEST_PORTS = 4
INGEST_RATE_PER_PORT = 5_100
INGEST_SECONDS = 2.0
APPLY_RUNS = 3
INSTALL_RUNS = 3
INSTALL_BASE = "239.100.0.0"
APPLY_BASE = 0xEF780000  # 239.120.0.0
UNREGISTERED = "239.99.0.1"
RTPROT_SNOOPD = 200
RTPROT_KERNEL = 2
WAKE_SAMPLES = 30
WAKE_GAP_S = 0.1  # about the idle time before each join of the join loop
LULL_S = 8.0  # no IGMP and no stream for this long before each join after a lull
LULL_JOINS = 3

HELPER_C = r"""
/* snbk-helper: traffic tools for scripts/bench_kernel.py (one binary, four commands).
 *
 *   send IFNAME RATE         paced UDP (sendmmsg) to one group at a time; stdin commands:
 *                            "g GROUP" (switch, answers "ok"), "r RATE", "x" (pause),
 *                            "s" (answers "sent N errors E stalls S": S counts the times
 *                            it found over 1 ms of frames due at once, i.e. it was held up).
 *   watch IFNAME             AF_PACKET/ETH_P_ALL on IFNAME with SO_TIMESTAMPNS; joins and
 *                            leaves through the kernel; stdin commands: "join G", "leave G"
 *                            (answer the call time), "get G" (call/report/data times, counts,
 *                            the largest gap between data frames since the first), "reset",
 *                            "cycle G HOLD QUIET" (join, first data, HOLD s, leave, QUIET s
 *                            without data; then the answer of "get G").
 *   blast IFNAME SRC GROUP0 NGROUPS RECORDS RATE START_AT
 *                            IGMPv3 reports (RECORDS CHANGE_TO_EXCLUDE {} records each, for
 *                            NGROUPS consecutive groups from GROUP0), AF_PACKET sendmmsg,
 *                            RATE reports/s (0: flat out), from CLOCK_REALTIME START_AT.
 *   mdbmon                   RTNLGRP_MDB listener; stdin: "count", "dump", "clear".
 *   wake N GAP_S CPU_A CPU_B a process on CPU_A writes to a pipe every GAP_S s, one on
 *                            CPU_B wakes from read(); prints the N wake-up times (s).
 * Times are CLOCK_REALTIME seconds (the clock of SO_TIMESTAMPNS).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_bridge.h>
#include <linux/if_packet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_rt(void) {
    struct timespec ts; clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}
static double now_mono(void) {
    struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}
static void sleep_until_mono(double t) {
    struct timespec ts; ts.tv_sec = (time_t)t; ts.tv_nsec = (long)((t - ts.tv_sec) * 1e9);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
}
static int stdin_ready(int timeout_ms) {
    struct pollfd p = {0, POLLIN, 0};
    return poll(&p, 1, timeout_ms) > 0;
}
/* One line from stdin (unbuffered reads; lines are short). 0 at EOF. */
static int read_line(char *buf, size_t n) {
    size_t i = 0;
    while (i + 1 < n) {
        char c; ssize_t r = read(0, &c, 1);
        if (r <= 0) return 0;
        if (c == '\n') break;
        buf[i++] = c;
    }
    buf[i] = 0;
    return 1;
}
static uint16_t csum(const void *data, size_t len) {
    const uint8_t *p = data; uint32_t s = 0;
    for (size_t i = 0; i + 1 < len; i += 2) s += (p[i] << 8) | p[i + 1];
    if (len & 1) s += p[len - 1] << 8;
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return htons((uint16_t)~s);
}

/* ------------------------------------------------------------------ send */
#define BATCH 64
static int cmd_send(int argc, char **argv) {
    if (argc != 4) return 2;
    double rate = atof(argv[3]);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct ip_mreqn mreq = {0}; mreq.imr_ifindex = if_nametoindex(argv[2]);
    unsigned char ttl = 1, loop = 0;
    if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &mreq, sizeof mreq) ||
        setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, 1) ||
        setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, 1)) { perror("setsockopt"); return 1; }
    prctl(PR_SET_TIMERSLACK, 1UL);
    struct sockaddr_in to = {0}; to.sin_family = AF_INET; to.sin_port = htons(5001);
    static char payload[BATCH][32]; struct iovec iov[BATCH]; struct mmsghdr msgs[BATCH];
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < BATCH; i++) {
        iov[i].iov_base = payload[i]; iov[i].iov_len = 18;
        msgs[i].msg_hdr.msg_iov = &iov[i]; msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = &to; msgs[i].msg_hdr.msg_namelen = sizeof to;
    }
    int active = 0; long sent = 0, errors = 0, since = 0, stalls = 0; double t0 = 0, checked = 0;
    char line[128];
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (;;) {
        double now = now_mono();
        if (!active || now - checked > 0.001) {
            checked = now;
            while (stdin_ready(active ? 0 : -1)) {
                if (!read_line(line, sizeof line)) return 0;
                if (line[0] == 'g' && inet_pton(AF_INET, line + 2, &to.sin_addr) == 1) {
                    active = 1; since = 0; t0 = now_mono(); printf("ok\n");
                } else if (line[0] == 'r') {
                    rate = atof(line + 2); since = 0; t0 = now_mono(); printf("ok\n");
                } else if (line[0] == 'x') {
                    active = 0; printf("ok\n");
                } else if (line[0] == 's') {
                    printf("sent %ld errors %ld stalls %ld\n", sent, errors, stalls);
                }
                if (!active) continue;
                break;
            }
            if (!active) continue;
            now = now_mono();
        }
        long due = (long)((now - t0) * rate) + 1 - since;
        if (due <= 0) { sleep_until_mono(t0 + since / rate); continue; }
        if (due > rate / 1000) stalls++;  /* over 1 ms of frames due at once: we were held up */
        if (due > BATCH) due = BATCH;
        for (int i = 0; i < due; i++) memcpy(payload[i], &sent, sizeof sent);
        int n = sendmmsg(fd, msgs, (unsigned)due, 0);
        if (n < 0) { errors += due; since += due; continue; }
        sent += n; since += n;
        if (n < due) { errors += due - n; since += due - n; }
    }
}

/* ----------------------------------------------------------------- watch */
struct grp {
    uint32_t group;  /* network order; 0: free */
    int fd;
    double call_join, rep_join, first_data, call_leave, rep_leave, last_data, maxgap;
    long count, prejoin;
};
#define NGRP 4096
static struct grp table[NGRP];
static struct grp *lookup(uint32_t g, int create) {
    uint32_t h = (ntohl(g) * 2654435761u) % NGRP;
    for (int i = 0; i < NGRP; i++) {
        struct grp *e = &table[(h + i) % NGRP];
        if (e->group == g) return e;
        if (e->group == 0) {
            if (!create) return NULL;
            memset(e, 0, sizeof *e); e->group = g; e->fd = -1; return e;
        }
    }
    return NULL;
}
static void on_frame(const uint8_t *f, ssize_t len, int pkttype, double ts) {
    if (len < 34 || f[12] != 0x08 || f[13] != 0x00) return;
    const uint8_t *ip = f + 14; int ihl = (ip[0] & 15) * 4;
    uint32_t dst; memcpy(&dst, ip + 16, 4);
    if (ip[9] == 17 && pkttype != PACKET_OUTGOING && (ip[16] & 0xf0) == 0xe0) {
        struct grp *e = lookup(dst, 1);
        if (!e) return;
        if (e->first_data && e->last_data && ts - e->last_data > e->maxgap) e->maxgap = ts - e->last_data;
        e->count++; e->last_data = ts;
        if (e->call_join == 0) e->prejoin++;
        else if (e->first_data == 0 && ts >= e->call_join) e->first_data = ts;
        return;
    }
    if (ip[9] != 2 || pkttype != PACKET_OUTGOING || len < 14 + ihl + 8) return;
    const uint8_t *g = ip + ihl; ssize_t glen = len - 14 - ihl;
    uint32_t group; memcpy(&group, g + 4, 4);
    if (g[0] == 0x16 || g[0] == 0x12) {
        struct grp *e = lookup(group, 0);
        if (e && e->call_join && !e->rep_join && ts >= e->call_join) e->rep_join = ts;
    } else if (g[0] == 0x17) {
        struct grp *e = lookup(group, 0);
        if (e && e->call_leave && !e->rep_leave && ts >= e->call_leave) e->rep_leave = ts;
    } else if (g[0] == 0x22) {
        int n = (g[6] << 8) | g[7]; ssize_t off = 8;
        for (int i = 0; i < n && off + 8 <= glen; i++) {
            int type = g[off], aux = g[off + 1], ns = (g[off + 2] << 8) | g[off + 3];
            memcpy(&group, g + off + 4, 4);
            struct grp *e = lookup(group, 0);
            if (e) {
                int join = type == 2 || type == 4 || (type == 5 && ns > 0);
                int leave = (type == 1 || type == 3) && ns == 0;
                if (join && e->call_join && !e->rep_join && ts >= e->call_join) e->rep_join = ts;
                if (leave && e->call_leave && !e->rep_leave && ts >= e->call_leave) e->rep_leave = ts;
            }
            off += 8 + 4 * ns + 4 * aux;
        }
    }
}
static int join_group(struct grp *e, int ifindex) {
    if (e->fd >= 0) close(e->fd);
    e->fd = -1;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct ip_mreqn m = {0}; m.imr_multiaddr.s_addr = e->group; m.imr_ifindex = ifindex;
    e->call_join = now_rt(); e->rep_join = e->first_data = e->maxgap = 0;
    e->call_leave = e->rep_leave = 0;
    if (setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof m)) { close(fd); return -1; }
    e->fd = fd;
    return 0;
}
static void leave_group(struct grp *e) {
    e->call_leave = now_rt(); e->rep_leave = 0;
    if (e->fd >= 0) close(e->fd);  /* drops the membership: the kernel sends the leave */
    e->fd = -1;
}
static void print_group(struct grp *e) {
    printf("%.9f %.9f %.9f %.9f %.9f %.9f %ld %ld %.9f %.9f\n", e->call_join, e->rep_join, e->first_data,
           e->call_leave, e->rep_leave, e->last_data, e->count, e->prejoin, now_rt(), e->maxgap);
}
static int cmd_watch(int argc, char **argv) {
    if (argc != 3) return 2;
    int ifindex = if_nametoindex(argv[2]);
    int ps = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    int on = 1, buf = 32 << 20;
    setsockopt(ps, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf);
    setsockopt(ps, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
    struct sockaddr_ll sll = {0};
    sll.sll_family = AF_PACKET; sll.sll_protocol = htons(ETH_P_ALL); sll.sll_ifindex = ifindex;
    if (ps < 0 || bind(ps, (struct sockaddr *)&sll, sizeof sll)) { perror("packet socket"); return 1; }
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("ready\n");
    static uint8_t frame[2048]; char line[128]; char ctrl[256];
    struct pollfd fds[2] = {{ps, POLLIN, 0}, {0, POLLIN, 0}};
    /* "cycle G HOLD QUIET": join, wait for the first data, hold, leave, wait for QUIET
     * seconds without data, then answer like "get G" (no polling from outside). */
    struct grp *cyc = NULL; int phase = 0; double hold = 0, quiet = 0, hold_until = 0, deadline = 0;
    for (;;) {
        if (poll(fds, 2, cyc ? 1 : -1) < 0) continue;
        if (fds[0].revents & POLLIN) {
            for (int k = 0; k < 1024; k++) {
                struct sockaddr_ll from; struct iovec iov = {frame, sizeof frame};
                struct msghdr mh = {&from, sizeof from, &iov, 1, ctrl, sizeof ctrl, 0};
                ssize_t len = recvmsg(ps, &mh, MSG_DONTWAIT);
                if (len < 0) break;
                double ts = 0;
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
                        struct timespec t; memcpy(&t, CMSG_DATA(c), sizeof t);
                        ts = t.tv_sec + t.tv_nsec / 1e9;
                    }
                if (ts == 0) ts = now_rt();
                on_frame(frame, len, from.sll_pkttype, ts);
            }
        }
        if (cyc) {
            double mono = now_mono();
            if (phase == 1) {
                if (cyc->first_data && cyc->rep_join && !hold_until) hold_until = mono + hold;
                if ((hold_until && mono >= hold_until) || mono > deadline) {
                    leave_group(cyc); phase = 2; deadline = mono + 3.0;
                }
            } else {
                double last = cyc->last_data > cyc->rep_leave ? cyc->last_data : cyc->rep_leave;
                if ((cyc->rep_leave && now_rt() - last > quiet) || mono > deadline) { print_group(cyc); cyc = NULL; }
            }
            continue;  /* no commands while a cycle runs */
        }
        if (fds[1].revents & (POLLIN | POLLHUP)) {
            if (!read_line(line, sizeof line)) return 0;
            char cmd[16], gs[64] = ""; uint32_t g = 0; double a1 = 0, a2 = 0;
            if (sscanf(line, "%15s %63s %lf %lf", cmd, gs, &a1, &a2) < 1) continue;
            if (gs[0] && inet_pton(AF_INET, gs, &g) != 1) { printf("error bad group\n"); continue; }
            if (!strcmp(cmd, "join") || !strcmp(cmd, "cycle")) {
                struct grp *e = lookup(g, 1);
                if (join_group(e, ifindex)) { printf("error join %s\n", strerror(errno)); continue; }
                if (cmd[0] == 'j') { printf("%.9f\n", e->call_join); continue; }
                cyc = e; phase = 1; hold = a1; quiet = a2; hold_until = 0; deadline = now_mono() + 2.0;
            } else if (!strcmp(cmd, "leave")) {
                struct grp *e = lookup(g, 1);
                leave_group(e);
                printf("%.9f\n", e->call_leave);
            } else if (!strcmp(cmd, "get")) {
                struct grp *e = lookup(g, 0);
                struct grp z = {0};
                print_group(e ? e : &z);
            } else if (!strcmp(cmd, "reset")) {
                for (int i = 0; i < NGRP; i++) if (table[i].group && table[i].fd >= 0) close(table[i].fd);
                memset(table, 0, sizeof table);
                printf("ok\n");
            } else {
                printf("error unknown command\n");
            }
        }
    }
}

/* ----------------------------------------------------------------- blast */
static int cmd_blast(int argc, char **argv) {
    if (argc != 9) return 2;
    const char *ifname = argv[2]; uint32_t src, g0;
    if (inet_pton(AF_INET, argv[3], &src) != 1 || inet_pton(AF_INET, argv[4], &g0) != 1) return 2;
    long ngroups = atol(argv[5]); int per = atoi(argv[6]); double rate = atof(argv[7]);
    double start_at = atof(argv[8]);
    long nreports = (ngroups + per - 1) / per;
    int fd = socket(AF_PACKET, SOCK_RAW, 0);
    struct ifreq ifr = {0}; strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    if (fd < 0 || ioctl(fd, SIOCGIFHWADDR, &ifr)) { perror("blast socket"); return 1; }
    int sndbuf = 16 << 20; setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf);
    struct sockaddr_ll to = {0};
    to.sll_family = AF_PACKET; to.sll_ifindex = if_nametoindex(ifname); to.sll_halen = 6;
    memcpy(to.sll_addr, "\x01\x00\x5e\x00\x00\x16", 6);
    size_t flen_max = 14 + 24 + 8 + 8 * (size_t)per;
    uint8_t *frames = calloc(nreports, flen_max); size_t *lens = calloc(nreports, sizeof *lens);
    for (long r = 0; r < nreports; r++) {
        uint8_t *f = frames + r * flen_max;
        int n = (int)((r + 1) * per <= ngroups ? per : ngroups - r * per);
        memcpy(f, "\x01\x00\x5e\x00\x00\x16", 6); memcpy(f + 6, ifr.ifr_hwaddr.sa_data, 6);
        f[12] = 0x08; f[13] = 0x00;
        uint8_t *ip = f + 14, *g = ip + 24;
        int glen = 8 + 8 * n, tot = 24 + glen;
        ip[0] = 0x46; ip[1] = 0xc0; ip[2] = tot >> 8; ip[3] = tot & 255; ip[6] = 0x40; ip[8] = 1; ip[9] = 2;
        memcpy(ip + 12, &src, 4); memcpy(ip + 16, "\xe0\x00\x00\x16", 4);
        memcpy(ip + 20, "\x94\x04\x00\x00", 4);
        uint16_t c = csum(ip, 24); memcpy(ip + 10, &c, 2);
        g[0] = 0x22; g[6] = n >> 8; g[7] = n & 255;
        for (int i = 0; i < n; i++) {
            uint8_t *rec = g + 8 + 8 * i;
            uint32_t grp = htonl(ntohl(g0) + (uint32_t)(r * per + i));
            rec[0] = 4; memcpy(rec + 4, &grp, 4);
        }
        c = csum(g, glen); memcpy(g + 2, &c, 2);
        lens[r] = 14 + tot;
    }
    struct iovec *iov = calloc(nreports, sizeof *iov); struct mmsghdr *msgs = calloc(nreports, sizeof *msgs);
    for (long r = 0; r < nreports; r++) {
        iov[r].iov_base = frames + r * flen_max; iov[r].iov_len = lens[r];
        msgs[r].msg_hdr.msg_iov = &iov[r]; msgs[r].msg_hdr.msg_iovlen = 1;
        msgs[r].msg_hdr.msg_name = &to; msgs[r].msg_hdr.msg_namelen = sizeof to;
    }
    prctl(PR_SET_TIMERSLACK, 1UL);
    double wait = start_at - now_rt();
    if (wait > 0) sleep_until_mono(now_mono() + wait);
    double t0 = now_mono(), rt0 = now_rt();
    long sent = 0, errors = 0;
    while (sent + errors < nreports) {
        long due = rate > 0 ? (long)((now_mono() - t0) * rate) + 1 - (sent + errors) : BATCH;
        if (due <= 0) { sleep_until_mono(t0 + (sent + errors) / rate); continue; }
        if (due > BATCH) due = BATCH;
        if (due > nreports - sent - errors) due = nreports - sent - errors;
        int n = sendmmsg(fd, msgs + sent + errors, (unsigned)due, 0);
        if (n <= 0) { errors++; continue; }
        sent += n;
    }
    double rt1 = now_rt();
    printf("start %.9f end %.9f sent %ld errors %ld\n", rt0, rt1, sent, errors);
    return 0;
}

/* ---------------------------------------------------------------- mdbmon */
struct ev { double ts; uint32_t ifindex, group; uint8_t type, has_src, proto, state; };
static struct ev *evs; static size_t nev, cap;
static void add_ev(struct ev e) {
    if (nev == cap) { cap = cap ? cap * 2 : 65536; evs = realloc(evs, cap * sizeof *evs); }
    evs[nev++] = e;
}
static void parse_mdb(struct nlmsghdr *nh, double ts) {
    int type = nh->nlmsg_type == RTM_NEWMDB ? 'N' : 'D';
    struct br_port_msg *bpm = NLMSG_DATA(nh);
    int len = nh->nlmsg_len - NLMSG_LENGTH(sizeof *bpm);
    struct rtattr *a = (struct rtattr *)((char *)bpm + NLMSG_ALIGN(sizeof *bpm));
    for (; RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        if ((a->rta_type & NLA_TYPE_MASK) != MDBA_MDB) continue;
        int l2 = RTA_PAYLOAD(a);
        for (struct rtattr *b = RTA_DATA(a); RTA_OK(b, l2); b = RTA_NEXT(b, l2)) {
            if ((b->rta_type & NLA_TYPE_MASK) != MDBA_MDB_ENTRY) continue;
            int l3 = RTA_PAYLOAD(b);
            for (struct rtattr *c = RTA_DATA(b); RTA_OK(c, l3); c = RTA_NEXT(c, l3)) {
                if ((c->rta_type & NLA_TYPE_MASK) != MDBA_MDB_ENTRY_INFO) continue;
                if (RTA_PAYLOAD(c) < (int)sizeof(struct br_mdb_entry)) continue;
                struct br_mdb_entry *e = RTA_DATA(c);
                if (e->addr.proto != htons(ETH_P_IP)) continue;
                struct ev ev = {ts, e->ifindex, e->addr.u.ip4, (uint8_t)type, 0, 0, e->state};
                int l4 = RTA_PAYLOAD(c) - NLMSG_ALIGN(sizeof *e);
                for (struct rtattr *d = (struct rtattr *)((char *)e + NLMSG_ALIGN(sizeof *e));
                     l4 > 0 && RTA_OK(d, l4); d = RTA_NEXT(d, l4)) {
                    if ((d->rta_type & NLA_TYPE_MASK) == MDBA_MDB_EATTR_SOURCE) ev.has_src = 1;
                    if ((d->rta_type & NLA_TYPE_MASK) == MDBA_MDB_EATTR_RTPROT) ev.proto = *(uint8_t *)RTA_DATA(d);
                }
                add_ev(ev);
            }
        }
    }
}
static int cmd_mdbmon(void) {
    int fd = socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
    int buf = 256 << 20; setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf);
    struct sockaddr_nl sa = {0}; sa.nl_family = AF_NETLINK;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa)) { perror("netlink"); return 1; }
    int grp = RTNLGRP_MDB;
    if (setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &grp, sizeof grp)) { perror("membership"); return 1; }
    setvbuf(stdout, NULL, _IOFBF, 1 << 20);
    printf("ready\n"); fflush(stdout);
    static char rbuf[1 << 16]; char line[64]; long overruns = 0;
    struct pollfd fds[2] = {{fd, POLLIN, 0}, {0, POLLIN, 0}};
    for (;;) {
        if (poll(fds, 2, -1) < 0) continue;
        if (fds[0].revents & POLLIN) {
            for (;;) {
                ssize_t n = recv(fd, rbuf, sizeof rbuf, MSG_DONTWAIT);
                if (n < 0) { if (errno == ENOBUFS) { overruns++; continue; } break; }
                double ts = now_rt();
                int len = (int)n;
                for (struct nlmsghdr *nh = (struct nlmsghdr *)rbuf; NLMSG_OK(nh, len); nh = NLMSG_NEXT(nh, len))
                    if (nh->nlmsg_type == RTM_NEWMDB || nh->nlmsg_type == RTM_DELMDB) parse_mdb(nh, ts);
            }
        }
        if (fds[1].revents & (POLLIN | POLLHUP)) {
            if (!read_line(line, sizeof line)) return 0;
            if (!strcmp(line, "count")) {
                long nn = 0, nd = 0; double ln = 0, ld = 0;
                for (size_t i = 0; i < nev; i++) {
                    if (evs[i].type == 'N') { nn++; ln = evs[i].ts; } else { nd++; ld = evs[i].ts; }
                }
                printf("%ld %ld %.9f %.9f %ld %.9f\n", nn, nd, ln, ld, overruns, now_rt());
            } else if (!strcmp(line, "dump")) {
                for (size_t i = 0; i < nev; i++) {
                    struct in_addr ga = {evs[i].group};
                    printf("%c %.9f %u %s %d %d %d\n", evs[i].type, evs[i].ts, evs[i].ifindex, inet_ntoa(ga),
                           evs[i].has_src, evs[i].proto, evs[i].state);
                }
                printf("end %ld\n", overruns);
            } else if (!strcmp(line, "clear")) {
                nev = 0; overruns = 0; printf("ok\n");
            }
            fflush(stdout);
        }
    }
}

/* How long an idle process takes to wake up: the machine's share of any daemon's reply. */
static int cmd_wake(int argc, char **argv) {
    if (argc < 6) return 2;
    int n = atoi(argv[2]), cpu_a = atoi(argv[4]), cpu_b = atoi(argv[5]);
    double gap = atof(argv[3]);
    int there[2], back[2];
    if (pipe(there) || pipe(back)) return 1;
    pid_t child = fork();
    if (child < 0) return 1;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(child == 0 ? cpu_b : cpu_a, &set);
    sched_setaffinity(0, sizeof set, &set);
    if (child == 0) {
        for (int i = 0; i < n; i++) {
            double sent;
            if (read(there[0], &sent, sizeof sent) != sizeof sent) _exit(1);
            double took = now_mono() - sent;
            if (write(back[1], &took, sizeof took) != sizeof took) _exit(1);
        }
        _exit(0);
    }
    for (int i = 0; i < n; i++) {
        sleep_until_mono(now_mono() + gap);
        double sent = now_mono(), took;
        if (write(there[1], &sent, sizeof sent) != sizeof sent) return 1;
        if (read(back[0], &took, sizeof took) != sizeof took) return 1;
        printf("%.9f\n", took);
    }
    waitpid(child, NULL, 0);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    if (!strcmp(argv[1], "wake")) return cmd_wake(argc, argv);
    if (!strcmp(argv[1], "send")) return cmd_send(argc, argv);
    if (!strcmp(argv[1], "watch")) return cmd_watch(argc, argv);
    if (!strcmp(argv[1], "blast")) return cmd_blast(argc, argv);
    if (!strcmp(argv[1], "mdbmon")) return cmd_mdbmon();
    return 2;
}
"""


# ----------------------------------------------------------------------------- small tools


def poll(predicate: Callable[[], T | None], timeout: float, what: str, interval: float = 0.001) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def wake_up_ms(binary: str, cpu_a: int, cpu_b: int, n: int = WAKE_SAMPLES, gap: float = WAKE_GAP_S) -> float:
    """p50 time for a process idle ``gap`` s on ``cpu_b`` to wake up on a pipe written
    from ``cpu_a``: the machine's own share of any daemon's reply (a vCPU that halted
    is woken by the hypervisor)."""
    out = subprocess.run([binary, "wake", str(n), str(gap), str(cpu_a), str(cpu_b)], capture_output=True,
                         text=True, timeout=n * gap + 30, check=True).stdout
    return pct([float(x) * 1e3 for x in out.split()], 50)


def ip_int(address: str) -> int:
    a, b, c, d = (int(x) for x in address.split("."))
    return a << 24 | b << 16 | c << 8 | d


def ip_str(value: int) -> str:
    return ".".join(str(value >> s & 255) for s in (24, 16, 8, 0))


def build_helper(directory: str) -> str:
    source = os.path.join(directory, "snbk-helper.c")
    binary = os.path.join(directory, "snbk-helper")
    with open(source, "w") as f:
        f.write(HELPER_C)
    out = subprocess.run(["gcc", "-O2", "-Wall", "-o", binary, source], capture_output=True, text=True)
    if out.returncode != 0:
        raise LabError(f"gcc failed to build the traffic helper:\n{out.stderr}")
    return binary


class Tool:
    """One helper process in a namespace, driven by lines on stdin/stdout."""

    def __init__(self, lab: Lab, ns: Netns, name: str, argv: list[str], ready: bool = False) -> None:
        self.name = f"{ns.short}/{name}"
        self.process = Process(lab, self.name, ["ip", "netns", "exec", ns.name, *argv],
                               log=lab.logfile(f"{ns.short}.{name}.log"),
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.buffer = b""
        if ready and self.readline(10.0) != "ready":
            raise LabError(f"{self.name} did not start: {self.process.log_text()[-500:]}")

    def readline(self, timeout: float = 10.0) -> str:
        stdout = self.process.popen.stdout
        assert stdout is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([stdout.fileno()], [], [], left)[0]:
                raise LabError(f"{self.name}: no answer within {timeout}s")
            chunk = os.read(stdout.fileno(), 1 << 20)
            if not chunk:
                raise LabError(f"{self.name} exited: {self.process.log_text()[-500:]}")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()

    def cmd(self, line: str, timeout: float = 10.0) -> str:
        stdin = self.process.popen.stdin
        assert stdin is not None
        stdin.write(line.encode() + b"\n")
        stdin.flush()
        reply = self.readline(timeout)
        if reply.startswith("error"):
            raise LabError(f"{self.name}: {line} -> {reply}")
        return reply

    def stop(self) -> None:
        self.process.stop()


@dataclass
class GroupState:
    call_join: float
    rep_join: float
    first_data: float
    call_leave: float
    rep_leave: float
    last_data: float
    count: int
    prejoin: int
    now: float
    maxgap: float  # largest gap between two data frames of the group since the first


# The traffic tools share CPU 0 and the daemon has CPU 1 (taskset), so the daemon never
# preempts the sender (unpinned, it did: a v3 leave, sent from a timer on the sender's CPU, woke
# the daemon there, and the stream stalled until the prune was done, so the last frame always
# came before the leave). The load generators (stream sender, report blasters) run at nice -15
# so that other work on a shared machine does not turn the stream into bursts; real-time
# priority is worse (20,000 wake-ups/s starve everything else). "stream_gap" reports how regular
# the stream stayed: the resolution of the join and leave figures.
_PIN = (os.cpu_count() or 1) >= 2
TOOLS_CPU = ["taskset", "-c", "0"] if _PIN else []
LOADGEN = ["nice", "-n", "-15", *TOOLS_CPU]
DAEMON_CPU = ["taskset", "-c", "1"] if _PIN else []


class Watcher(Tool):
    def __init__(self, lab: Lab, binary: str, host: Host) -> None:
        super().__init__(lab, host, "watch", [*TOOLS_CPU, binary, "watch", host.iface], ready=True)

    def get(self, group: str) -> GroupState:
        f = self.cmd(f"get {group}").split()
        t = [float(x) for x in f]
        return GroupState(t[0], t[1], t[2], t[3], t[4], t[5], int(f[6]), int(f[7]), t[8], t[9])


class Sender(Tool):
    def __init__(self, lab: Lab, binary: str, host: Host, rate: float) -> None:
        super().__init__(lab, host, "send", [*LOADGEN, binary, "send", host.iface, str(rate)])

    def sent(self) -> int:
        return int(self.cmd("s").split()[1])

    def stalls(self) -> int:
        """Times the sender was held up for over 1 ms (each can delay one join or leave figure)."""
        return int(self.cmd("s").split()[5])


@dataclass
class MdbEvent:
    kind: str  # "N" new, "D" deleted
    ts: float
    ifindex: int
    group: str
    has_source: bool
    protocol: int


class MdbMonitor(Tool):
    def __init__(self, lab: Lab, binary: str, ns: Netns) -> None:
        super().__init__(lab, ns, "mdbmon", [*TOOLS_CPU, binary, "mdbmon"], ready=True)

    def counts(self) -> tuple[int, int]:
        f = self.cmd("count").split()
        return int(f[0]), int(f[1])

    def clear(self) -> None:
        self.cmd("clear")

    def dump(self) -> tuple[list[MdbEvent], int]:
        stdin = self.process.popen.stdin
        assert stdin is not None
        stdin.write(b"dump\n")
        stdin.flush()
        events: list[MdbEvent] = []
        while True:
            line = self.readline(30.0)
            if line.startswith("end"):
                return events, int(line.split()[1])
            k, ts, ifindex, group, src, proto, _state = line.split()
            events.append(MdbEvent(k, float(ts), int(ifindex), group, src == "1", int(proto)))

    def wait_settled(self, kind: str, target: int, timeout: float, settle: float = 3.0) -> int:
        """Wait until ``target`` events of ``kind`` arrived, or none for ``settle`` seconds."""
        deadline = time.monotonic() + timeout
        last, last_change = 0, time.monotonic()
        while time.monotonic() < deadline:
            new, deleted = self.counts()
            n = new if kind == "N" else deleted
            if n >= target:
                return n
            if n != last:
                last, last_change = n, time.monotonic()
            elif n and time.monotonic() - last_change > settle:
                return n
            time.sleep(0.02)
        return last


def blast(lab: Lab, binary: str, hosts: list[Host], bases: list[int], groups: int, per_report: int,
          rate: float) -> list[tuple[float, float, int]]:
    """Report blasters on ``hosts`` starting together; returns (start, end, sent) per host."""
    start_at = time.time() + 0.7  # time for every blaster to start and build its frames
    procs = []
    for h, base in zip(hosts, bases, strict=True):
        argv = [*LOADGEN, binary, "blast", h.iface, h.addr, ip_str(base), str(groups), str(per_report), str(rate),
                f"{start_at:.6f}"]
        procs.append(Process(lab, f"{h.short}/blast", ["ip", "netns", "exec", h.name, *argv],
                             log=lab.logfile(f"{h.short}.blast.log"), stdout=subprocess.PIPE))
    out = []
    for p in procs:
        stdout, _ = p.popen.communicate(timeout=60)
        f = stdout.decode().split()
        if p.popen.returncode != 0 or len(f) < 8:
            raise LabError(f"{p.name}: exit {p.popen.returncode}: {p.log_text()[-500:]}")
        out.append((float(f[1]), float(f[3]), int(f[5])))
    return out


class Profile:
    """py-spy (if installed) sampling one process into DIR/NAME.txt (collapsed stacks) and
    DIR/NAME.top.txt (the functions with the most samples); a no-op without a directory."""

    def __init__(self, directory: str | None, name: str, pid: int) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        spy = shutil.which("py-spy") or str(pathlib.Path(sys.executable).with_name("py-spy"))
        if directory is None or not os.path.exists(spy):
            return
        self.path = os.path.join(directory, f"{name}.txt")
        self.proc = subprocess.Popen([spy, "record", "--pid", str(pid), "--rate", "250", "--format", "raw",
                                      "--nonblocking", "-o", self.path], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(0.3)  # attached

    def __enter__(self) -> Profile:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if os.path.exists(self.path):
            write_profile_summary(self.path)


def write_profile_summary(path: str, top: int = 40) -> None:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    with open(path) as fh:
        for line in fh:
            stack, _, n = line.rstrip().rpartition(" ")
            if not n.isdigit():
                continue
            frames = stack.split(";")
            total += int(n)
            for frame in set(frames):
                inclusive[frame] += int(n)
            own[frames[-1]] += int(n)
    total = max(total, 1)
    with open(path.removesuffix(".txt") + ".top.txt", "w") as out:
        out.write(f"{total} samples\n\ninclusive:\n")
        out.writelines(f"{n:7d} {100 * n / total:5.1f}%  {f}\n" for f, n in inclusive.most_common(top))
        out.write("\nself:\n")
        out.writelines(f"{n:7d} {100 * n / total:5.1f}%  {f}\n" for f, n in own.most_common(top))


def kernel_mdb(sw: Switch) -> list[dict[str, Any]]:
    return sw.mdb()


def ifindexes(ns: Netns) -> dict[str, int]:
    return {link["ifname"]: link["ifindex"] for link in json.loads(ns.ip("-j", "link", "show"))}


# ------------------------------------------------------------------------------- snoopd


class Daemon:
    """``python -m snoopd run`` in a switch namespace (log: info, JSON lines)."""

    def __init__(self, lab: Lab, sw: Switch, name: str, config: str) -> None:
        self.lab, self.sw, self.name = lab, sw, name
        self.config_path = lab.dir / f"{name}.toml"
        self.config_path.write_text(config)
        self.socket = str(lab.dir / f"{name}.sock")
        self.started_at = time.time()
        self.process = sw.spawn(name, [*DAEMON_CPU, sys.executable, "-m", "snoopd", "run", "--config",
                                       str(self.config_path), "--socket", self.socket, "--log-format", "json"])

    def log_lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.process.log_text().splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    def log_ts(self, prefix: str) -> float | None:
        for entry in self.log_lines():
            if str(entry.get("msg", "")).startswith(prefix):
                return float(entry["ts"])
        return None

    def wait_ready(self, timeout: float = 20.0) -> None:
        def ready() -> bool:
            if not self.process.alive():
                raise LabError(f"snoopd exited {self.process.returncode}: {self.process.log_text()[-2000:]}")
            return " ready bridge=" in self.process.log_text() or '"ready bridge=' in self.process.log_text()
        poll(ready, timeout, "snoopd ready", 0.02)

    def cli(self, *args: str) -> Any:
        out = subprocess.run([sys.executable, "-m", "snoopd", *args, "--socket", self.socket, "--json"],
                             capture_output=True, text=True, timeout=60, check=True)
        return json.loads(out.stdout)

    def stop(self, timeout: float = 20.0) -> tuple[float, float]:
        """SIGTERM; returns (time sent, time the process was gone)."""
        t_term = time.time()
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.stop()
        return t_term, time.time()


def snoopd_config(extra: str = "") -> str:
    return 'bridge = "br0"\nmode = "kernel"\n' + extra


BENCH_CONFIG = snoopd_config("""max_groups = 65536

[querier]
startup_wait = 0.0

[ports."p1"]
fast_leave = true

[ports."p2"]
fast_leave = true
""")


# ------------------------------------------------------------------------------- figures


def enforcement(watcher: Watcher, sender: Sender, t0: float, timeout: float = 40.0) -> float:
    """Seconds from ``t0`` to the last frame of UNREGISTERED seen, once it has been quiet
    for ENFORCE_QUIET_S while the sender kept sending."""
    def quiet() -> float | None:
        s = watcher.get(UNREGISTERED)
        if s.count and s.now - s.last_data > ENFORCE_QUIET_S:
            return s.last_data
        return None
    last = poll(quiet, timeout, "enforcement", 0.05)
    sent = sender.sent()
    time.sleep(0.1)
    if sender.sent() - sent < ENFORCE_PPS * 0.05:
        raise LabError("the enforcement stream stalled")
    return last - t0


def flooding(watcher: Watcher, timeout: float = 5.0) -> None:
    """The unregistered stream reaches the host (nothing enforces yet)."""
    before = watcher.get(UNREGISTERED).count
    poll(lambda: watcher.get(UNREGISTERED).count > before + 20, timeout, "flooding before the start", 0.01)


def wait_pruned(watcher: Watcher, group: str, timeout: float = 10.0) -> None:
    """The stream to ``group`` no longer reaches the watcher's host."""
    poll(lambda: (s := watcher.get(group)).now - s.last_data > 0.3, timeout, f"{group} pruned", 0.05)


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    """Per key: the median over the runs, and the worst run as KEY_max (for times)."""
    out: dict[str, float] = {}
    for key in runs[0]:
        values = [r[key] for r in runs if key in r and not math.isnan(r[key])]
        if not values:
            out[key] = math.nan
            continue
        out[key] = round(statistics.median(values), 4)
        if key.endswith("_s") and len(values) > 1:
            out[key + "_max"] = round(max(values), 4)
    return out


@dataclass
class JoinLeave:
    join_ms: float | None  # report on the wire -> first data
    join_call_ms: float | None  # join call -> first data
    leave_ms: float | None  # leave on the wire -> last data
    prejoin: int
    group: str = ""
    rep_join: float = 0.0
    first_data: float = 0.0
    rep_leave: float = 0.0
    to_mdb_ms: float | None = None  # report on the wire -> RTM_NEWMDB seen by the monitor
    mdb_to_data_ms: float | None = None  # RTM_NEWMDB seen -> first data
    leave_to_mdb_ms: float | None = None  # leave on the wire -> RTM_DELMDB seen
    gap_ms: float = 0.0  # largest gap between frames at the host while joined


def join_leave(sender: Sender, watcher: Watcher, groups: list[str], mon: MdbMonitor,
               ifindex: int) -> list[JoinLeave]:
    """Join and leave each group in turn under a STREAM_PPS stream to it."""
    mon.clear()
    out = []
    for g in groups:
        sender.cmd(f"g {g}")
        time.sleep(0.002)
        # The watcher joins, waits for data, holds JOIN_HOLD_S, leaves and waits for the end
        # by itself: nothing polls it meanwhile (a busy bench would slow the daemon).
        f = watcher.cmd(f"cycle {g} {JOIN_HOLD_S} {LEAVE_QUIET_S}", timeout=10.0).split()
        t = [float(x) for x in f]
        s = GroupState(t[0], t[1], t[2], t[3], t[4], t[5], int(f[6]), int(f[7]), t[8], t[9])
        join_ms = call_ms = leave_ms = None
        if s.first_data and s.rep_join:
            join_ms = (s.first_data - s.rep_join) * 1e3
            call_ms = (s.first_data - s.call_join) * 1e3
        if s.rep_leave and s.now - max(s.last_data, s.rep_leave) > LEAVE_QUIET_S:
            # 0: pruned before the next frame was due (the resolution is 1 / STREAM_PPS)
            leave_ms = max(0.0, s.last_data - s.rep_leave) * 1e3
        out.append(JoinLeave(join_ms, call_ms, leave_ms, s.prejoin, g, s.rep_join, s.first_data, s.rep_leave,
                             gap_ms=s.maxgap * 1e3))
    sender.cmd("x")
    events, _ = mon.dump()
    added: dict[str, float] = {}
    deleted: dict[str, float] = {}
    for e in events:
        if e.ifindex == ifindex and not e.has_source:
            (added if e.kind == "N" else deleted).setdefault(e.group, e.ts)
    for r in out:
        if r.group in added and r.rep_join and r.first_data:
            r.to_mdb_ms = (added[r.group] - r.rep_join) * 1e3
            r.mdb_to_data_ms = (r.first_data - added[r.group]) * 1e3
        if r.group in deleted and r.rep_leave:
            r.leave_to_mdb_ms = (deleted[r.group] - r.rep_leave) * 1e3
    return out


def summarize_joins(prefix: str, v3: list[JoinLeave], v2: list[JoinLeave]) -> dict[str, float]:
    f: dict[str, float] = {}

    def put(name: str, values: list[float | None]) -> None:
        ok = [v for v in values if v is not None]
        f[f"{prefix}{name}_failures"] = len(values) - len(ok)
        if ok:
            f[f"{prefix}{name}_p50_ms"] = round(pct(ok, 50), 3)
            f[f"{prefix}{name}_p99_ms"] = round(pct(ok, 99), 3)

    put("join", [r.join_ms for r in v3])
    put("join_v2", [r.join_ms for r in v2])
    put("join_call", [r.join_call_ms for r in v3])
    put("fast_leave", [r.leave_ms for r in v3 + v2])
    put("fast_leave_v3", [r.leave_ms for r in v3])
    put("fast_leave_v2", [r.leave_ms for r in v2])
    for name, values in (("join_report_to_mdb", [r.to_mdb_ms for r in v3 + v2]),
                         ("join_mdb_to_data", [r.mdb_to_data_ms for r in v3 + v2]),
                         ("leave_to_mdb", [r.leave_to_mdb_ms for r in v3 + v2])):
        ok = [v for v in values if v is not None]
        if ok:
            f[f"{prefix}{name}_p50_ms"] = round(pct(ok, 50), 3)
            f[f"{prefix}{name}_p99_ms"] = round(pct(ok, 99), 3)
    gaps = [r.gap_ms for r in v3 + v2]
    f[f"{prefix}stream_gap_p50_ms"] = round(pct(gaps, 50), 3)
    f[f"{prefix}stream_gap_p99_ms"] = round(pct(gaps, 99), 3)
    f[f"{prefix}join_flooded_before_join"] = sum(1 for r in v3 + v2 if r.prejoin)
    return f


def install_time(mon: MdbMonitor, start: float, ifindex: int, base: int, n: int, protocol: int) -> tuple[float, int]:
    """(seconds from ``start`` to the n-th RTM_NEWMDB of those groups, how many arrived)."""
    events, _ = mon.dump()
    wanted = {ip_str(base + i) for i in range(n)}
    ts = sorted(e.ts for e in events if e.kind == "N" and e.ifindex == ifindex and e.group in wanted
                and not e.has_source and e.protocol == protocol)
    return (ts[n - 1] - start if len(ts) >= n else math.nan), len(ts)


def last_event(mon: MdbMonitor, kind: str, protocol: int | None) -> tuple[float, int]:
    events, _ = mon.dump()
    ts = [e.ts for e in events if e.kind == kind and (protocol is None or e.protocol == protocol)]
    return (max(ts) if ts else math.nan), len(ts)


def ingest(lab: Lab, binary: str, mon: MdbMonitor, hosts: list[Host], ports: list[int], bases: list[int],
           protocol: int) -> dict[str, float]:
    per_port = int(INGEST_RATE_PER_PORT * INGEST_SECONDS)
    total = per_port * len(hosts)
    mon.clear()
    runs = blast(lab, binary, hosts, bases, per_port, 1, INGEST_RATE_PER_PORT)
    first = min(r[0] for r in runs)
    offered = sum(r[2] for r in runs) / (max(r[1] for r in runs) - first)
    mon.wait_settled("N", total, 30.0)
    events, overruns = mon.dump()
    wanted = {(ifi, ip_str(base + i)) for ifi, base in zip(ports, bases, strict=True) for i in range(per_port)}
    ts: dict[tuple[int, str], float] = {}
    for e in events:
        key = (e.ifindex, e.group)
        if e.kind == "N" and key in wanted and e.protocol == protocol and not e.has_source:
            ts.setdefault(key, e.ts)
    learned = len(ts)
    last = max(ts.values()) if ts else first
    return {"offered": total, "offered_per_s": offered, "learned": learned,
            "per_s": learned / (last - first) if last > first else 0.0, "lag_s": last - max(r[1] for r in runs),
            "monitor_overruns": overruns, "wanted": wanted}  # type: ignore[dict-item]


def mdb_pairs(sw: Switch, names: dict[str, int], protocol: str | None) -> set[tuple[int, str]]:
    """(port ifindex, group) of the kernel's (*,G) port entries (of routing protocol ``protocol``)."""
    return {(names.get(e["port"], 0), e["grp"]) for e in kernel_mdb(sw)
            if e["port"] != "br0" and "src" not in e and (protocol is None or str(e.get("protocol")) == protocol)}


# ---------------------------------------------------------------------------------- run


class Bench:
    def __init__(self, lab: Lab, binary: str, profile_dir: str | None = None) -> None:
        self.lab, self.binary, self.profile_dir = lab, binary, profile_dir
        self.f: dict[str, float] = {}
        self.notes: list[str] = []

    def build(self) -> None:
        lab = self.lab
        self.sw = lab.switch("sw", addr="192.0.2.254", igmp_version=3, mcast_hash_max=262144,
                             mcast_query_use_ifaddr=1)
        self.h3 = lab.host("h3", "p1", "192.0.2.1", force_igmp_version=3, switch=self.sw, sniff=False)
        self.h2 = lab.host("h2", "p2", "192.0.2.2", force_igmp_version=2, switch=self.sw, sniff=False)
        self.tx = lab.host("tx", "p9", "192.0.2.9", switch=self.sw, sniff=False)
        self.r = [lab.host(f"r{i}", f"p{10 + i}", f"192.0.2.{20 + i}", switch=self.sw, sniff=False)
                  for i in range(1, INGEST_PORTS + 1)]
        # The default-config enforcement figures each need a bridge that never saw a querier.
        self.eb = lab.switch("eb", addr="192.0.2.254")
        self.ek = lab.switch("ek", addr="192.0.2.254", mcast_query_use_ifaddr=1)
        self.eb_tx = lab.host("ebtx", "p9", "192.0.2.39", switch=self.eb, sniff=False)
        self.eb_rx = lab.host("ebrx", "p1", "192.0.2.31", switch=self.eb, sniff=False)
        self.ek_tx = lab.host("ektx", "p9", "192.0.2.49", switch=self.ek, sniff=False)
        self.ek_rx = lab.host("ekrx", "p1", "192.0.2.41", switch=self.ek, sniff=False)
        self.ifindex = ifindexes(self.sw)
        b = self.binary
        self.mon = MdbMonitor(lab, b, self.sw)
        self.w3 = Watcher(lab, b, self.h3)
        self.w2 = Watcher(lab, b, self.h2)
        self.sender = Sender(lab, b, self.tx, STREAM_PPS)

    # --- snoopd ---------------------------------------------------------------------------

    def snoopd_phase(self) -> None:
        f, lab, sw = self.f, self.lab, self.sw
        if _PIN:  # 6. the machine's share of a join, the stream running; before any daemon
            # starts: a daemon idle for seconds answers its next join slowly on this VM (below)
            self.sender.cmd(f"r {STREAM_PPS}")
            self.sender.cmd(f"g {UNREGISTERED}")
            f["wake_other_cpu_ms"] = round(wake_up_ms(self.binary, 0, 1), 3)
            f["wake_same_cpu_ms"] = round(wake_up_ms(self.binary, 0, 0), 3)
            self.sender.cmd("x")
        # 3. start to enforcement, startup_wait = 0 (this daemon then serves 1, 2 and 4)
        self.sender.cmd(f"r {ENFORCE_PPS}")
        self.sender.cmd(f"g {UNREGISTERED}")
        flooding(self.w3)
        d = Daemon(lab, sw, "snoopd1", BENCH_CONFIG)
        f["enforce_s_no_wait"] = round(enforcement(self.w3, self.sender, d.started_at), 3)
        d.wait_ready()
        ready = d.log_ts("ready bridge=")
        if ready is not None:  # Python start-up, imports, bridge set-up
            f["enforce_no_wait_spawn_to_ready_s"] = round(ready - d.started_at, 3)
        self.sender.cmd("x")
        # 1 and 2: join and fast leave
        self.sender.cmd(f"r {STREAM_PPS}")
        stalls = self.sender.stalls()
        with Profile(self.profile_dir, "join-leave", d.process.pid):
            v3 = join_leave(self.sender, self.w3, [f"239.10.0.{i + 1}" for i in range(JOIN_GROUPS)], self.mon,
                            self.ifindex["p1"])
            v2 = join_leave(self.sender, self.w2, [f"239.10.1.{i + 1}" for i in range(JOIN_GROUPS)], self.mon,
                            self.ifindex["p2"])
        f.update(summarize_joins("", v3, v2))
        f["join_sender_stalls"] = self.sender.stalls() - stalls
        # 7. joins after a lull, and what the daemon used meanwhile
        f.update(self.lull_joins("", [f"239.10.2.{i + 1}" for i in range(LULL_JOINS)], d.process.pid))
        # 4. 10k install from reports, removal on stop: this daemon, then fresh ones
        with Profile(self.profile_dir, "install-10k", d.process.pid):
            runs = [self.snoopd_install_remove(d, stop=False)]
        runs[0].update(self.snoopd_remove(d))
        for i in range(2, INSTALL_RUNS + 1):
            d = Daemon(lab, sw, f"snoopd-i{i}", BENCH_CONFIG)
            d.wait_ready()
            runs.append(self.snoopd_install_remove(d))
        f.update(median_of(runs))
        # 5. ingest, a fresh daemon
        d = Daemon(lab, sw, "snoopd2", BENCH_CONFIG)
        d.wait_ready()
        ports = [self.ifindex[f"p{10 + i}"] for i in range(1, INGEST_PORTS + 1)]
        bases = [ip_int(f"239.{110 + i}.0.0") for i in range(INGEST_PORTS)]
        cpu0 = cpu_seconds(d.process.pid)
        with Profile(self.profile_dir, "ingest", d.process.pid):
            res = ingest(lab, self.binary, self.mon, self.r, ports, bases, RTPROT_SNOOPD)
        f["ingest_cpu_s"] = round(cpu_seconds(d.process.pid) - cpu0, 2)
        wanted: set[tuple[int, str]] = res.pop("wanted")  # type: ignore[assignment]
        stats = d.cli("stats")["counters"]
        table = {(self.ifindex.get(e["port"], 0), e["group"]) for e in d.cli("mdb")["entries"]}
        in_kernel = mdb_pairs(sw, self.ifindex, str(RTPROT_SNOOPD))
        f["ingest_reports_per_s"] = round(res["per_s"])
        f["ingest_offered_per_s"] = round(res["offered_per_s"])
        f["ingest_lag_s"] = round(res["lag_s"], 3)
        f["ingest_capture_drops"] = stats.get("capture.drops", 0)
        f["ingest_capture_packets"] = stats.get("capture.packets", 0)
        f["ingest_groups_offered"] = len(wanted)
        f["ingest_groups_in_table"] = len(wanted & table)
        f["ingest_groups_in_kernel_mdb"] = len(wanted & in_kernel)
        if res["monitor_overruns"]:
            self.notes.append(f"MDB monitor overran {res['monitor_overruns']} times (snoopd ingest)")
        self.mon.clear()
        t_term, _ = d.stop()
        self.mon.wait_settled("D", len(in_kernel), 30.0)
        last_del, _ = last_event(self.mon, "D", RTPROT_SNOOPD)
        f["mdb_remove_ingest_s"] = round(last_del - t_term, 3)

    def snoopd_install_remove(self, d: Daemon, stop: bool = True) -> dict[str, float]:
        f: dict[str, float] = {}
        p11 = self.ifindex["p11"]
        self.mon.clear()
        cpu0 = cpu_seconds(d.process.pid)
        [(start, _, _)] = blast(self.lab, self.binary, [self.r[0]], [ip_int(INSTALL_BASE)], INSTALL_GROUPS,
                                RECORDS_PER_REPORT, 0)
        self.mon.wait_settled("N", INSTALL_GROUPS, 20.0)
        f["mdb_install_10k_cpu_s"] = cpu_seconds(d.process.pid) - cpu0
        joined = [e["ts"] for e in d.log_lines() if str(e.get("msg", "")).startswith("group.joined port=p11")]
        if joined:  # the core's share: first report -> the first group.joined line (logged before the write)
            f["mdb_install_10k_first_log_s"] = min(joined) - start
            f["mdb_install_10k_logging_s"] = max(joined) - min(joined)
        f["mdb_install_10k_s"], got = install_time(self.mon, start, p11, ip_int(INSTALL_BASE), INSTALL_GROUPS,
                                                   RTPROT_SNOOPD)
        f["mdb_install_capture_drops"] = d.cli("stats")["counters"].get("capture.drops", 0)
        if got < INSTALL_GROUPS:
            self.notes.append(f"snoopd installed only {got} of {INSTALL_GROUPS} groups")
        return {**f, **self.snoopd_remove(d)} if stop else f

    def snoopd_remove(self, d: Daemon) -> dict[str, float]:
        f: dict[str, float] = {}
        sw = self.sw
        own = len(mdb_pairs(sw, self.ifindex, str(RTPROT_SNOOPD)))
        self.mon.clear()
        t_term, t_exit = d.stop()
        self.mon.wait_settled("D", own, 20.0)
        last_del, n_del = last_event(self.mon, "D", RTPROT_SNOOPD)
        f["mdb_remove_10k_s"] = last_del - t_term
        f["mdb_remove_entries"] = n_del
        stopping, flushed = d.log_ts("stopping"), d.log_ts("mdb.flushed")
        if stopping is not None and flushed is not None:
            f["mdb_remove_10k_log_s"] = flushed - stopping
        f["mdb_stop_exit_s"] = t_exit - t_term
        left = len(mdb_pairs(sw, self.ifindex, str(RTPROT_SNOOPD)))
        if left:
            self.notes.append(f"{left} proto-200 entries left after snoopd stopped")
        return f

    def kernel_install_remove(self) -> dict[str, float]:
        f: dict[str, float] = {}
        sw, p11 = self.sw, self.ifindex["p11"]
        self.mon.clear()
        [(start, _, _)] = blast(self.lab, self.binary, [self.r[0]], [ip_int(INSTALL_BASE)], INSTALL_GROUPS,
                                RECORDS_PER_REPORT, 0)
        self.mon.wait_settled("N", INSTALL_GROUPS, 20.0)
        f["kernel_mdb_install_10k_s"], got = install_time(self.mon, start, p11, ip_int(INSTALL_BASE),
                                                          INSTALL_GROUPS, RTPROT_KERNEL)
        if got < INSTALL_GROUPS:
            self.notes.append(f"the kernel learnt only {got} of {INSTALL_GROUPS} groups")
        learned = len(mdb_pairs(sw, self.ifindex, None))
        self.mon.clear()
        t0 = time.time()
        sw.set_bridge(mcast_snooping=0)  # the kernel's flush of its whole MDB
        t_cmd = time.time() - t0
        self.mon.wait_settled("D", learned, 20.0)
        last_del, n_del = last_event(self.mon, "D", None)
        f["kernel_mdb_remove_10k_s"] = last_del - t0 if n_del else t_cmd
        f["kernel_mdb_remove_entries"] = n_del
        sw.set_bridge(mcast_snooping=1)
        sw.set_bridge(mcast_querier=0)
        sw.set_bridge(mcast_querier=1)
        return f

    # --- the kernel bridge alone -------------------------------------------------------------

    def lull_joins(self, prefix: str, groups: list[str], pid: int | None) -> dict[str, float]:
        """Each group: LULL_S with no stream and no IGMP on the bridge, then one join on h3
        (IGMPv3) as in the join loop. With ``pid``, that daemon's CPU use over the lulls."""
        joins: list[float] = []
        used_s = quiet_s = 0.0
        for g in groups:
            self.sender.cmd("x")
            cpu0, t0 = (cpu_seconds(pid) if pid else 0.0), time.monotonic()
            time.sleep(LULL_S)
            if pid:
                used_s += cpu_seconds(pid) - cpu0
                quiet_s += time.monotonic() - t0
            self.sender.cmd(f"r {STREAM_PPS}")
            (r,) = join_leave(self.sender, self.w3, [g], self.mon, self.ifindex["p1"])
            if r.join_ms is not None:
                joins.append(r.join_ms)
        f: dict[str, float] = {f"{prefix}join_after_lull_failures": len(groups) - len(joins)}
        if joins:
            f[f"{prefix}join_after_lull_p50_ms"] = round(statistics.median(joins), 3)
            f[f"{prefix}join_after_lull_max_ms"] = round(max(joins), 3)
        if pid and quiet_s:
            f[f"{prefix}idle_cpu_pct"] = round(used_s / quiet_s * 100, 3)
        self.sender.cmd(f"r {STREAM_PPS}")
        return f

    def kernel_phase(self) -> None:
        f, lab, sw = self.f, self.lab, self.sw
        for port in ("p1", "p2"):
            sw.exec("bridge", "link", "set", "dev", port, "fastleave", "on")
        sw.set_bridge(mcast_query_interval=1250, mcast_query_response_interval=100,
                      mcast_startup_query_interval=300)
        sw.set_bridge(mcast_querier=1)
        self.sender.cmd(f"r {ENFORCE_PPS}")
        self.sender.cmd(f"g {UNREGISTERED}")
        wait_pruned(self.w3, UNREGISTERED)
        self.sender.cmd("x")
        self.sender.cmd(f"r {STREAM_PPS}")
        stalls = self.sender.stalls()
        v3 = join_leave(self.sender, self.w3, [f"239.20.0.{i + 1}" for i in range(JOIN_GROUPS)], self.mon,
                        self.ifindex["p1"])
        v2 = join_leave(self.sender, self.w2, [f"239.20.1.{i + 1}" for i in range(JOIN_GROUPS)], self.mon,
                        self.ifindex["p2"])
        f.update(summarize_joins("kernel_", v3, v2))
        f["kernel_join_sender_stalls"] = self.sender.stalls() - stalls
        f.update(self.lull_joins("kernel_", [f"239.20.2.{i + 1}" for i in range(LULL_JOINS)], None))
        # 4. the kernel learning the same 10k, then its flush (snooping off)
        f.update(median_of([self.kernel_install_remove() for _ in range(INSTALL_RUNS)]))
        # 5. the kernel's own learning at the same load
        ports = [self.ifindex[f"p{10 + i}"] for i in range(1, INGEST_PORTS + 1)]
        bases = [ip_int(f"239.{110 + i}.0.0") for i in range(INGEST_PORTS)]
        res = ingest(lab, self.binary, self.mon, self.r, ports, bases, RTPROT_KERNEL)
        wanted: set[tuple[int, str]] = res.pop("wanted")  # type: ignore[assignment]
        in_kernel = mdb_pairs(sw, self.ifindex, None)
        f["kernel_ingest_reports_per_s"] = round(res["per_s"])
        f["kernel_ingest_offered_per_s"] = round(res["offered_per_s"])
        f["kernel_ingest_groups_in_kernel_mdb"] = len(wanted & in_kernel)
        f["kernel_ingest_capture_drops"] = len(wanted - in_kernel)
        sw.set_bridge(mcast_snooping=0)
        sw.set_bridge(mcast_snooping=1)
        sw.set_bridge(mcast_querier=0)

    # --- NetlinkMdb.apply directly vs bridge -batch --------------------------------------------

    def apply_phase(self) -> None:
        from snoopd.adapters.mdb import MdbOp, NetlinkMdb
        from snoopd.core.actions import FilterMode

        ports = [(f"p{10 + i}", self.ifindex[f"p{10 + i}"]) for i in range(1, INGEST_PORTS + 1)]
        groups = [ip_str(APPLY_BASE + i) for i in range(INSTALL_GROUPS)]
        install = [MdbOp.install(ports[i % len(ports)][1], g, FilterMode.EXCLUDE) for i, g in enumerate(groups)]
        remove = [MdbOp.remove(ports[i % len(ports)][1], g) for i, g in enumerate(groups)]
        add_t: list[float] = []
        del_t: list[float] = []
        with NetlinkMdb("br0", netns=self.sw.name) as mdb:
            for _ in range(APPLY_RUNS):
                t0 = time.perf_counter()
                errors = mdb.apply(install)
                add_t.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                errors += mdb.apply(remove)
                del_t.append(time.perf_counter() - t0)
                if errors:
                    self.notes.append(f"NetlinkMdb.apply: {len(errors)} errors, e.g. {errors[0]}")
        batch_add: list[float] = []
        batch_del: list[float] = []
        with tempfile.TemporaryDirectory() as tmp:
            paths = {}
            for verb in ("add", "del"):
                paths[verb] = os.path.join(tmp, verb)
                with open(paths[verb], "w") as fh:
                    for i, g in enumerate(groups):
                        fh.write(f"mdb {verb} dev br0 port {ports[i % len(ports)][0]} grp {g} permanent\n")
            for _ in range(APPLY_RUNS):
                for verb, times in (("add", batch_add), ("del", batch_del)):
                    t0 = time.perf_counter()
                    subprocess.run(["bridge", "-n", self.sw.name, "-batch", paths[verb]], check=True,
                                   capture_output=True)
                    times.append(time.perf_counter() - t0)
        self.f["mdb_apply_install_10k_s"] = round(statistics.median(add_t), 4)
        self.f["mdb_apply_remove_10k_s"] = round(statistics.median(del_t), 4)
        self.f["kernel_bridge_batch_add_10k_s"] = round(statistics.median(batch_add), 4)
        self.f["kernel_bridge_batch_del_10k_s"] = round(statistics.median(batch_del), 4)

    # --- start to enforcement with default timers ----------------------------------------------

    def enforce_phase(self) -> None:
        lab, b = self.lab, self.binary
        pairs = []
        for tx, rx in ((self.eb_tx, self.eb_rx), (self.ek_tx, self.ek_rx)):
            s = Sender(lab, b, tx, ENFORCE_PPS)
            w = Watcher(lab, b, rx)
            s.cmd(f"g {UNREGISTERED}")
            flooding(w)
            pairs.append((s, w))
        d = Daemon(lab, self.eb, "snoopd-default", snoopd_config())
        t_kernel = time.time()
        self.ek.set_bridge(mcast_querier=1)
        self.f["enforce_s"] = round(enforcement(pairs[0][1], pairs[0][0], d.started_at), 3)
        self.f["kernel_enforce_s"] = round(enforcement(pairs[1][1], pairs[1][0], t_kernel), 3)
        d.stop()
        for s, w in pairs:
            s.stop()
            w.stop()


# ---------------------------------------------------------------------------------- table


def rows_for(f: dict[str, float], notes: list[str]) -> list[tuple[str, str, str, str]]:
    def num(key: str, unit: str, digits: int = 3) -> str:
        v = f.get(key)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "n/a"
        return f"{v:,.{digits}f} {unit}".strip() if isinstance(v, float) else f"{v:,} {unit}".strip()

    def ratio(a: str, b: str, invert: bool = False) -> str:
        x, y = f.get(a), f.get(b)
        if not x or not y or math.isnan(x) or math.isnan(y):
            return "-"
        return f"{(y / x if invert else x / y):.2f}"

    resolution = 1e3 / STREAM_PPS  # ms between two frames of the stream

    def ms(key: str) -> str:
        v = f.get(key)
        if v is not None and v < resolution:  # over before the next frame of the stream was due
            return f"< {resolution:g}"
        return num(key, "")

    def ms_ratio(a: str, b: str) -> str:
        """ratio() of two latencies; none when either is below the stream's resolution."""
        x, y = f.get(a), f.get(b)
        return "-" if x is None or y is None or x < resolution or y < resolution else ratio(a, b)

    def fails(prefix: str, name: str) -> str:
        n = int(f.get(f"{prefix}{name}_failures", 0))
        return f" ({n} failed)" if n else ""

    rows = []
    for name, label in (("join", "join, IGMPv3 report on the wire -> first data, 20k pps (target <= 0.5 / 2 ms)"),
                        ("join_v2", "join, IGMPv2 report on the wire -> first data"),
                        ("join_call", "join, IP_ADD_MEMBERSHIP call -> first data (IGMPv3 host)"),
                        ("fast_leave", "fast leave, leave on the wire -> last data, v2 + v3"),
                        ("fast_leave_v3", "fast leave, IGMPv3 TO_IN{} -> last data"),
                        ("fast_leave_v2", "fast leave, IGMPv2 Leave -> last data")):
        rows.append((f"{label}, p50 / p99 (ms)",
                     f"{ms(name + '_p50_ms')} / {ms(name + '_p99_ms')}{fails('', name)}",
                     f"{ms('kernel_' + name + '_p50_ms')} / {ms('kernel_' + name + '_p99_ms')}"
                     f"{fails('kernel_', name)}",
                     f"{ms_ratio(name + '_p50_ms', 'kernel_' + name + '_p50_ms')} / "
                     f"{ms_ratio(name + '_p99_ms', 'kernel_' + name + '_p99_ms')}"))
    rows.append(("stream at the host: largest gap between frames per group, p50 / p99 (ms; the resolution)",
                 f"{num('stream_gap_p50_ms', '')} / {num('stream_gap_p99_ms', '')}",
                 f"{num('kernel_stream_gap_p50_ms', '')} / {num('kernel_stream_gap_p99_ms', '')}", "-"))
    rows.append(("stream sender held up for over 1 ms during the join/leave loop (each time can delay one "
                 "join or leave figure)", f"{num('join_sender_stalls', 'times')}",
                 f"{num('kernel_join_sender_stalls', 'times')}", "-"))
    rows.append((f"machine: a process idle {WAKE_GAP_S * 1e3:g} ms wakes on a pipe written from CPU 0 (the tools'), "
                 "p50 (ms): on CPU 1 (the daemon's) / on CPU 0",
                 f"{num('wake_other_cpu_ms', '')} / {num('wake_same_cpu_ms', '')}",
                 "n/a (it runs in the receiving CPU's softirq: no wake-up)", "-"))
    rows.append((f"join after {LULL_S:g} s with no IGMP and no stream, IGMPv3, median / worst of {LULL_JOINS} (ms)",
                 f"{ms('join_after_lull_p50_ms')} / {ms('join_after_lull_max_ms')}{fails('', 'join_after_lull')}",
                 f"{ms('kernel_join_after_lull_p50_ms')} / {ms('kernel_join_after_lull_max_ms')}"
                 f"{fails('kernel_', 'join_after_lull')}",
                 f"{ms_ratio('join_after_lull_p50_ms', 'kernel_join_after_lull_p50_ms')} / "
                 f"{ms_ratio('join_after_lull_max_ms', 'kernel_join_after_lull_max_ms')}"))
    rows.append(("daemon CPU over those lulls (its health check runs every second), % of one CPU",
                 num("idle_cpu_pct", "%"), "n/a (no process)", "-"))
    rows.append(("join breakdown, p50 (ms): report on the wire -> RTM_NEWMDB seen + RTM_NEWMDB -> first data",
                 f"{num('join_report_to_mdb_p50_ms', '')} + {num('join_mdb_to_data_p50_ms', '')}",
                 f"{num('kernel_join_report_to_mdb_p50_ms', '')} + {num('kernel_join_mdb_to_data_p50_ms', '')}",
                 ratio("join_report_to_mdb_p50_ms", "kernel_join_report_to_mdb_p50_ms")))
    rows.append(("join, report on the wire -> RTM_NEWMDB seen, v2 + v3, p99 (ms; the switch's part of the tail, "
                 "without the stream's gaps)", num("join_report_to_mdb_p99_ms", ""),
                 num("kernel_join_report_to_mdb_p99_ms", ""),
                 ratio("join_report_to_mdb_p99_ms", "kernel_join_report_to_mdb_p99_ms")))
    rows += [
        ("start -> enforcement, default config (solicitation, then startup_wait 10 s) (target <= 3 s)",
         num("enforce_s", "s", 2),
         num("kernel_enforce_s", "s (mcast_querier 1)", 2), ratio("enforce_s", "kernel_enforce_s")),
        ("start -> enforcement, startup_wait = 0 (target <= 3 s)",
         f"{num('enforce_s_no_wait', 's', 2)} (spawn -> ready {num('enforce_no_wait_spawn_to_ready_s', 's', 2)})",
         num("kernel_enforce_s", "s (mcast_querier 1)", 2), ratio("enforce_s_no_wait", "kernel_enforce_s")),
        ("MDB install, 10k groups from 100 reports x 100 records (target <= 0.5 s)",
         num("mdb_install_10k_s", "s"), num("kernel_mdb_install_10k_s", "s (its learning)"),
         ratio("mdb_install_10k_s", "kernel_mdb_install_10k_s")),
        ("MDB install 10k, daemon: CPU used / first report -> first group.joined log / logging 10k lines",
         f"{num('mdb_install_10k_cpu_s', 's', 2)} / {num('mdb_install_10k_first_log_s', 's')} / "
         f"{num('mdb_install_10k_logging_s', 's')}", "-", "-"),
        ("MDB removal of 10k on stop, SIGTERM -> last RTM_DELMDB (target <= 0.2 s)",
         f"{num('mdb_remove_10k_s', 's')} (log {num('mdb_remove_10k_log_s', 's')}, "
         f"exit {num('mdb_stop_exit_s', 's')})",
         num("kernel_mdb_remove_10k_s", "s (mcast_snooping 0)"), ratio("mdb_remove_10k_s", "kernel_mdb_remove_10k_s")),
        ("NetlinkMdb.apply, 10k installs (direct) vs bridge -batch", num("mdb_apply_install_10k_s", "s"),
         num("kernel_bridge_batch_add_10k_s", "s"), ratio("mdb_apply_install_10k_s", "kernel_bridge_batch_add_10k_s")),
        ("NetlinkMdb.apply, 10k removes (direct) vs bridge -batch", num("mdb_apply_remove_10k_s", "s"),
         num("kernel_bridge_batch_del_10k_s", "s"), ratio("mdb_apply_remove_10k_s", "kernel_bridge_batch_del_10k_s")),
        (f"report ingest, reports/s learnt (offered {num('ingest_offered_per_s', '/s', 0)} over 4 ports)",
         num("ingest_reports_per_s", "/s", 0), num("kernel_ingest_reports_per_s", "/s", 0),
         ratio("ingest_reports_per_s", "kernel_ingest_reports_per_s")),
        ("report ingest, capture drops / groups in table (of offered)",
         f"{num('ingest_capture_drops', '')} / {num('ingest_groups_in_table', '')} "
         f"(kernel MDB {num('ingest_groups_in_kernel_mdb', '')}) of {num('ingest_groups_offered', '')}",
         f"{num('kernel_ingest_capture_drops', 'missing')} / {num('kernel_ingest_groups_in_kernel_mdb', '')}", "-"),
        ("report ingest, daemon CPU used / last entry after the last report (lag)",
         f"{num('ingest_cpu_s', 's', 2)} / {num('ingest_lag_s', 's')}", "-", "-"),
        ("machine load (1 min average) at start / end of the suite",
         f"{num('load_avg_1m_start', '', 2)} / {num('load_avg_1m_end', '', 2)} on {os.cpu_count()} CPUs", "", ""),
    ]
    for note in notes:
        rows.append((f"note: {note}", "", "", ""))
    return rows


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)
    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def run(keep_logs: bool = False, profile_dir: str | None = None
        ) -> tuple[dict[str, float], list[tuple[str, str, str, str]]]:
    if os.geteuid() != 0:
        raise LabError("bench kernel needs root (network namespaces)")
    started = time.monotonic()
    load_start = os.getloadavg()[0]
    with sigterm_as_exit(), tempfile.TemporaryDirectory(prefix="snbk-") as tmp:
        binary = build_helper(tmp)
        lab = Lab("snbk", keep_logs=keep_logs)
        try:
            bench = Bench(lab, binary, profile_dir)
            bench.build()
            bench.snoopd_phase()
            bench.kernel_phase()
            bench.apply_phase()
            bench.enforce_phase()
        except Exception:
            print(lab.dump_logs(30), file=sys.stderr)
            print(f"figures so far: {json.dumps(bench.f)}", file=sys.stderr)
            raise
        finally:
            lab.close()
    f = bench.f
    f["suite_runtime_s"] = round(time.monotonic() - started, 1)
    f["load_avg_1m_start"] = round(load_start, 2)
    f["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    return f, rows_for(f, bench.notes)


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench_kernel.py", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep-logs", action="store_true", help="keep the lab's logs in /tmp")
    parser.add_argument("--profile", metavar="DIR",
                        help="py-spy the daemon during join/leave, the first 10k install and ingest into DIR "
                             "(the profiler slows those figures)")
    args = parser.parse_args()
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
    figures, rows = run(args.keep_logs, args.profile)
    if args.json:
        print(json.dumps(figures, sort_keys=True))
        return 0
    from bench import print_table

    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
