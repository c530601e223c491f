"""The newcomer's demo (scripts/demo) and `snoopd lab up|status|down`, run for real.

They build namespaces named snoopd-demo-*: only one demo lab can exist at a time, so these
tests refuse to run while another one is up (say, someone's `snoopd lab up`)."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .lab import have_netns, pid_alive, skip_or_fail

pytestmark = pytest.mark.netns

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "scripts" / "demo"
PREFIX = "snoopd-demo-"


def demo_namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(PREFIX)]


def demo_dirs() -> list[str]:
    return sorted(str(p) for p in Path("/tmp").glob(f"{PREFIX}*"))


def demo_processes() -> list[tuple[int, str]]:
    """Processes that look like the demo's: the lab agent, or snoopd on a demo config."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if ("snoopd/lab/agent.py" in argv or f"/tmp/{PREFIX}" in argv) and pid_alive(int(entry.name)):
            found.append((int(entry.name), argv))
    return found


@pytest.fixture
def no_demo_lab() -> Iterator[None]:
    """Needs root and iproute2, and no other demo lab; afterwards, none may be left."""
    if (reason := have_netns()) is not None:
        skip_or_fail(reason)
    if demo_namespaces():
        pytest.fail(f"a demo lab is already up ({demo_namespaces()}): `snoopd lab down` first")
    yield
    leftovers = (demo_namespaces(), demo_dirs(), demo_processes())
    if any(leftovers):
        subprocess.run([sys.executable, "-m", "snoopd.lab", "down"], check=False, timeout=60)
    assert leftovers == ([], [], []), f"left behind: namespaces, temp dirs, processes: {leftovers}"


def started_pids(output: str) -> list[int]:
    """PIDs the demo reports it stopped in its clean-up ("stopped processes name=pid ...")."""
    match = re.search(r"stopped processes (.*)", output)
    assert match, output
    return [int(item.split("=")[1]) for item in match.group(1).split()]


def section(output: str, start: str, end: str) -> str:
    """The text of the step whose title contains ``start`` up to the next containing ``end``."""
    i = output.index(start)
    return output[i:output.index(end, i)]


def receiver_rate(text: str, host: str, column: int) -> tuple[int, bool]:
    """From the last receivers table in ``text``: ``host``'s packets/s of the group in ``column``
    (0-based), and whether it has joined it."""
    rows = re.findall(rf"^\s+{host}\s+p\S+\s+IGMPv\d receiver\s+(\d+)(\*?)\s+(\d+)(\*?)\s+(\d+)(\*?)\s*$", text, re.M)
    assert rows, f"no receivers row for {host} in:\n{text}"
    cells = rows[-1]
    return int(cells[2 * column]), cells[2 * column + 1] == "*"


def test_demo_runs_and_cleans_up(no_demo_lab: None) -> None:
    started = time.monotonic()
    proc = subprocess.run([str(DEMO), "--quick"], capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL, start_new_session=True)
    output = proc.stdout
    assert proc.returncode == 0, f"exit {proc.returncode}\n{output}\n{proc.stderr}"
    assert time.monotonic() - started < 120, "the quick tour should take well under 2 minutes"

    # Before snoopd: flooding; with snoopd and no members: nothing.
    flood = section(output, "a plain bridge floods", "snoopd starts")
    assert receiver_rate(flood, "h2", 0)[0] >= 50
    quiet = section(output, "snoopd starts", "Step 4/")
    assert receiver_rate(quiet, "h1", 0) == (0, False)

    # A join appears in snoopd's table, and the receiver starts.
    joined = section(output, "h1 joins 239.1.1.1", "Step 5/")
    assert re.search(r"^\s+239\.1\.1\.1\s+p1\s+exclude\s", joined, re.M), joined
    assert receiver_rate(joined, "h1", 0)[0] >= 50 and receiver_rate(joined, "h1", 0)[1]
    assert receiver_rate(joined, "h2", 0) == (0, False)  # a non-member port gets nothing
    assert receiver_rate(joined, "h3", 0) == (0, False)
    both = section(output, "h2 joins 239.2.2.2", "Step 6/")
    assert re.search(r"^\s+232\.1\.1\.1\s+p3\s+include\s+192\.0\.2\.9\s", both, re.M), both
    assert receiver_rate(both, "h2", 1)[0] >= 50 and receiver_rate(both, "h3", 2)[0] >= 50
    kernel = section(output, "the kernel's view", "Step 7/")
    assert re.search(r"^\s+239\.1\.1\.1\s+p1\s.*permanent\s+200\s", kernel, re.M), kernel

    # The receiver stops after the leave (and at once with fast-leave).
    left = section(output, "h1 leaves 239.1.1.1", "Step 8/")
    rates = [int(r) for r in re.findall(r"^\s+\+\d\.\d s\s+(\d+)/s", left, re.M)]
    assert rates and rates[0] >= 50 and rates[-1] == 0, left
    assert not re.search(r"^\s+239\.1\.1\.1\s+p1\s", left.split("$ snoopd mdb")[-1], re.M)
    fast = section(output, "fast-leave on p2", "Step 9/")
    assert re.search(r"^\s+p2\s.*\sTrue\s+\d+\s*$", fast, re.M), fast
    assert receiver_rate(fast, "h1", 0) == (0, False)
    assert receiver_rate(fast, "h2", 1) == (0, False)
    assert receiver_rate(fast, "h3", 2)[0] >= 50

    assert "snoopd exited with status 0." in output
    assert "Done in" in output
    pids = started_pids(output)
    assert len(pids) >= 5
    assert not [p for p in pids if pid_alive(p)]


def test_demo_interrupted_cleans_up(no_demo_lab: None) -> None:
    """Ctrl-C in the middle of the tour (SIGINT to its process group): exit 130, nothing left."""
    proc = subprocess.Popen([str(DEMO), "--quick"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    assert proc.stdout is not None
    output = b""
    deadline = time.monotonic() + 90
    try:
        while b"Step 4/" not in output:
            assert time.monotonic() < deadline, output.decode(errors="replace")
            if select.select([proc.stdout], [], [], 1.0)[0]:
                chunk = os.read(proc.stdout.fileno(), 65536)
                assert chunk, f"the demo ended early:\n{output.decode(errors='replace')}"
                output += chunk
        os.killpg(proc.pid, signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = (output + rest).decode(errors="replace")
    assert proc.returncode == 130, text
    assert "interrupted" in text and "deleted namespaces" in text, text
    assert not [p for p in started_pids(text) if pid_alive(p)]


def test_lab_up_status_down(no_demo_lab: None) -> None:
    def lab(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "snoopd.lab", *args], capture_output=True, text=True,
                              timeout=120, stdin=subprocess.DEVNULL, cwd=REPO)

    up = lab("up")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "snoopd lab down" in up.stdout
        socket = re.search(r"socket (\S+\.sock)", up.stdout)
        assert socket, up.stdout
        assert set(demo_namespaces()) == {f"{PREFIX}{n}" for n in ("sw", "h1", "h2", "h3", "tx")}
        status = lab("status")
        assert status.returncode == 0 and "snoopd answers" in status.stdout and "querier" in status.stdout, \
            status.stdout + status.stderr
        again = lab("up")
        assert again.returncode == 1 and "already up" in again.stderr
    finally:
        down = lab("down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert "deleted namespaces" in down.stdout
    assert lab("down").stdout.strip() == "no demo lab is up"
