"""Every command of interface.md against the real daemon in a namespace lab; JSON
shapes as documented; the control socket, SIGHUP reload and metrics."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from . import scenarios
from .lab import Lab, lab_session, wait_not_receiving, wait_receiving, wait_until
from .snoopd_proc import Snoopd

pytestmark = pytest.mark.netns
G = scenarios.G
OURS = "192.0.2.254"


@pytest.fixture
def lab() -> Iterator[Lab]:
    yield from lab_session("snc")


def test_every_client_command_and_json_shapes(lab: Lab) -> None:
    sw = lab.switch(addr=OURS)
    h1 = lab.host("h1", "p1", "192.0.2.1", force_igmp_version=3)
    h2 = lab.host("h2", "p2", "192.0.2.2", force_igmp_version=2)
    d = Snoopd(lab, sw, querier={"startup_wait": 0.0}, ports={"p2": {"fast_leave": True}})
    h1.join(scenarios.SSM, source="192.0.2.3")
    h2.join(G)
    wait_until(lambda: len(d.cli("mdb")["entries"]) == 2, 5, "two entries")

    mdb = d.cli("mdb")
    assert mdb["version"] == 1 and mdb["bridge"] == "br0"
    by_group = {e["group"]: e for e in mdb["entries"]}
    for e in mdb["entries"]:
        assert set(e) == {"group", "port", "vlan", "mode", "sources", "hosts", "expires_in", "compat", "origin"}
    ssm, asm = by_group[scenarios.SSM], by_group[G]
    assert (ssm["port"], ssm["mode"], ssm["hosts"], ssm["expires_in"], ssm["compat"], ssm["origin"]) == (
        "p1", "include", ["192.0.2.1"], None, 3, "learned")
    [source] = ssm["sources"]
    assert source["address"] == "192.0.2.3" and source["forwarding"] is True and 0 < source["expires_in"] <= 5
    assert (asm["port"], asm["mode"], asm["sources"], asm["compat"]) == ("p2", "exclude", [], 2)
    assert 0 < asm["expires_in"] <= 5.0
    assert [e["group"] for e in d.cli("mdb", "--group", G)["entries"]] == [G]
    assert [e["port"] for e in d.cli("mdb", "--port", "p1")["entries"]] == ["p1"]

    ports = d.cli("ports")
    assert ports["version"] == 1
    p = {x["port"]: x for x in ports["ports"]}
    assert set(p) == {"p1", "p2"}
    assert set(p["p1"]) == {"port", "ifindex", "up", "router", "is_router", "fast_leave", "groups"}
    assert (p["p2"]["fast_leave"], p["p1"]["fast_leave"], p["p1"]["groups"], p["p1"]["up"]) == (True, False, 1, True)
    assert isinstance(p["p1"]["ifindex"], int)

    stats = d.cli("stats")
    assert stats["version"] == 1 and stats["gauges"] == {"groups": 2, "memberships": 2}
    assert stats["counters"]["rx.report.v3"] >= 1 and stats["counters"]["rx.report.v2"] >= 1
    assert stats["counters"]["tx.query"] >= 1 and "capture.drops" in stats["counters"]

    assert d.cli("querier")["role"] == "querier"
    version = json.loads(d.cli_raw("version", "--json").stdout)
    assert version["snoopd"] and version["scapy"] and version["pyroute2"]

    # Human output: aligned tables, one line per entry.
    human = d.cli_raw("mdb").stdout
    assert "239.1.1.1" in human and "232.1.1.1" in human and "include" in human
    for command in ("ports", "querier", "stats"):
        assert d.cli_raw(command).stdout.strip()


def test_port_fast_leave_at_run_time_changes_leave_behaviour_at_once(lab: Lab) -> None:
    sw = lab.switch(addr=OURS)
    h1 = lab.host("h1", "p1", "192.0.2.1", force_igmp_version=2)
    src = lab.host("src", "p3", "192.0.2.3")
    d = Snoopd(lab, sw, querier={"startup_wait": 0.0}, igmp={"last_member_query_interval": 2.0})
    out = d.cli("port", "p1", "--fast-leave", "on")
    assert out["port"] == "p1" and out["fast_leave"] is True
    h1.join(G)
    stream = src.stream(G, rate=200)
    wait_receiving(h1, G, 20, timeout=10)
    h1.leave(G)
    took = wait_not_receiving(h1, G, stream, packets=10, timeout=10)
    assert took < 1.5, took  # without fast-leave: LMQT = 2 x 2 s
    # And back off: the leave now waits for the last-member queries.
    assert d.cli("port", "p1", "--fast-leave", "off")["fast_leave"] is False
    h1.join(G)
    wait_receiving(h1, G, 20, timeout=10)
    h1.leave(G)
    took = wait_not_receiving(h1, G, stream, packets=10, timeout=15)
    assert took >= 3.0, took
    stream.stop()


def test_port_router_override_and_errors(lab: Lab) -> None:
    sw = lab.switch(addr=OURS)
    lab.host("h1", "p1", "192.0.2.1")
    d = Snoopd(lab, sw)
    assert d.cli("port", "p1", "--router", "on")["is_router"] is True
    wait_until(lambda: "p1" in sw.router_ports(), 5, "the kernel to list p1 as a router port")
    assert d.cli("port", "p1", "--router", "off")["is_router"] is False
    bad = d.cli_raw("port", "nosuch", "--fast-leave", "on", check=False)
    assert bad.returncode == 1 and "no port 'nosuch'" in bad.stderr
    bad = d.cli_raw("port", "p1", "--fast-leave", "maybe", check=False)
    assert bad.returncode == 2 and "--fast-leave" in bad.stderr


def test_sighup_reload_applies_changes_and_keeps_memberships(lab: Lab) -> None:
    sw = lab.switch(addr=OURS)
    h1 = lab.host("h1", "p1", "192.0.2.1", force_igmp_version=2)
    lab.host("h2", "p2", "192.0.2.2")
    d = Snoopd(lab, sw, querier={"startup_wait": 0.0})
    h1.join(G)
    wait_until(lambda: d.members(G) == {"p1"}, 5, "h1's membership")
    d.cli("port", "p2", "--fast-leave", "on")  # run-time change on a port the config leaves alone
    d.write_config(querier={"startup_wait": 0.0}, igmp={"query_interval": 3.0},
                   ports={"p1": {"fast_leave": True}},
                   static=[{"group": "239.5.5.5", "port": "p2"}])
    d.signal(signal.SIGHUP)
    wait_until(lambda: "reloaded" in d.log, 5, "the reload")
    assert d.members(G) == {"p1"}  # learned state kept
    assert d.cli("querier")["timers"]["query_interval"] == 3.0
    ports = {p["port"]: p for p in d.cli("ports")["ports"]}
    assert ports["p1"]["fast_leave"] is True and ports["p2"]["fast_leave"] is True
    static = d.cli("mdb", "--group", "239.5.5.5")["entries"]
    assert [(e["port"], e["origin"]) for e in static] == [("p2", "static")]
    assert "p2" in sw.members("239.5.5.5")
    # A bad file is refused; the old config stays in force.
    d.write_config(igmp={"robustness": 0})
    d.signal(signal.SIGHUP)
    wait_until(lambda: "reload.failed" in d.log, 5, "the refusal")
    assert d.process.alive() and d.cli("querier")["timers"]["query_interval"] == 3.0
    assert d.members(G) == {"p1"}


def test_control_socket_garbage_socat_and_one_daemon_per_socket(lab: Lab) -> None:
    sw = lab.switch(addr=OURS)
    d = Snoopd(lab, sw)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(d.socket)
        s.sendall(b"this is not json\n{\"cmd\": \"nope\"}\n[1]\n{\"v\": 9, \"cmd\": \"stats\"}\n")
        replies = b""
        while replies.count(b"\n") < 4:
            replies += s.recv(65536)
    errors = [json.loads(line) for line in replies.splitlines()]
    assert [r["ok"] for r in errors] == [False] * 4
    assert "unknown command" in errors[1]["error"] and "version" in errors[3]["error"]
    out = subprocess.run(["socat", "-", f"UNIX-CONNECT:{d.socket}"], input='{"cmd": "ports"}\n',
                         capture_output=True, text=True, timeout=10)
    assert json.loads(out.stdout)["ok"] is True  # works with socat too
    helped = json.loads(subprocess.run(["socat", "-", f"UNIX-CONNECT:{d.socket}"], input='{"cmd": "help"}\n',
                                       capture_output=True, text=True, timeout=10).stdout)
    assert {"mdb", "ports", "port", "querier", "stats"} <= set(helped["result"]["commands"])
    assert oct(__import__("os").stat(d.socket).st_mode & 0o777) == "0o660"
    second = Snoopd(lab, sw, name="snoopd", wait_ready=False)  # same socket path
    wait_until(lambda: not second.process.alive(), 10, "the second daemon to give up")
    assert second.process.returncode == 1 and "another snoopd is running" in second.log
    assert d.cli("stats")["version"] == 1  # the first one still serves


def test_clients_without_a_daemon_exit_1_with_one_line(lab: Lab, tmp_path: object) -> None:
    for command in ("mdb", "ports", "querier", "stats"):
        out = subprocess.run([sys.executable, "-m", "snoopd", command, "--socket", "/nonexistent/x.sock"],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 1, command
        assert out.stderr.count("\n") == 1 and "not running" in out.stderr


def test_check_config_and_decode_and_version() -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "snoopd", *args], capture_output=True, text=True, timeout=30)

    assert run("check-config", "configs/snoopd.toml").returncode == 0
    frame = ("01005e000016020000000011080046c0002800010000010281edc000020be0000016940400002200e9fb"
             "0000000104000000ef010101")
    out = run("decode", frame)
    assert out.returncode == 0 and "IGMPv3 report" in out.stdout and "239.1.1.1" in out.stdout
    decoded = json.loads(run("decode", frame, "--json").stdout)
    assert decoded["version"] == 1
    assert run("decode", "zz").returncode == 2
    assert "snoopd" in run("version").stdout


@pytest.mark.parametrize(("text", "key"), [
    ('bridge = "br0"\nbogus = 1\n', "bogus"),
    ('bridge = "br0"\n[igmp]\nrobustness = "two"\n', "igmp.robustness"),
    ('bridge = "br0"\n[igmp]\nquery_interval = -5.0\n', "igmp.query_interval"),
    ('bridge = "br0"\n[querier]\naddress = "300.1.2.3"\n', "querier.address"),
    ('bridge = "br0"\n[[static]]\ngroup = "192.0.2.1"\nport = "p1"\n', "static[0].group"),
])
def test_check_config_rejects_bad_files_naming_the_key(tmp_path: object, text: str, key: str) -> None:
    import pathlib

    path = pathlib.Path(str(tmp_path)) / "bad.toml"
    path.write_text(text)
    out = subprocess.run([sys.executable, "-m", "snoopd", "check-config", str(path)], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 2
    assert key in out.stderr and "bad.toml" in out.stderr


def test_metrics_endpoint(lab: Lab) -> None:
    sw = lab.switch(addr=OURS)
    h1 = lab.host("h1", "p1", "192.0.2.1")
    d = Snoopd(lab, sw, top={"metrics_listen": "127.0.0.1:9477"}, querier={"startup_wait": 0.0})
    h1.join(G)
    wait_until(lambda: d.members(G) == {"p1"}, 5, "the membership")
    code = ("import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:9477/metrics', timeout=5)"
            ".read().decode())")
    text = sw.exec(sys.executable, "-c", code)
    assert 'snoopd_groups{bridge="br0"} 1.0' in text
    assert "snoopd_rx_report_v3_total" in text


def test_mdb_at_10000_groups_is_fast_and_readable(lab: Lab) -> None:
    sw = lab.switch(addr=OURS)
    h1 = lab.host("h1", "p1", "192.0.2.1")
    d = Snoopd(lab, sw, querier={"startup_wait": 0.0}, igmp={"query_interval": 60.0})
    groups = [f"239.4.{i // 250}.{i % 250 + 1}" for i in range(10_000)]
    scenarios.send_frames(h1, "eth0", scenarios.report_frames(h1.mac, h1.addr, groups))
    wait_until(lambda: d.cli("stats")["gauges"]["groups"] == 10_000, 20, "10,000 groups")
    start = time.monotonic()
    human = d.cli_raw("mdb").stdout
    took = time.monotonic() - start
    assert "10000 entries" in human and len(human.splitlines()) < 50  # a summary, not 10,000 lines
    start = time.monotonic()
    assert len(d.cli("mdb")["entries"]) == 10_000
    # The CLI process's own start-up (~0.3 s of imports) is included; the machine is shared.
    assert took < 3.0 and time.monotonic() - start < 3.0
