"""The seccomp launch: real processes under the real filter, root and unprivileged."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from netjail.backends.errors import BadInput
from netjail.backends.launch.spawn import run_jailed

from tests.conftest import python_for
from tests.integration.launch_support import PROBE, probe, start_listener

DENIED = ("inet", "inet6", "packet", "vsock", "inet_high_bits")


@pytest.mark.parametrize("user", [None, "nobody"])
def test_seccomp_denies_network_sockets_keeps_unix_netlink_and_exit_code(user: str | None) -> None:
    rc, out = probe("sockets", "status", exit_code=7, user=user, seccomp=True)
    assert rc == 7
    got = out["sockets"]
    assert {name: got[name] for name in DENIED} == dict.fromkeys(DENIED, errno.EACCES)
    assert got["unix"] == 0 and got["netlink"] == 0
    assert got["io_uring_setup"] == errno.ENOSYS
    assert out["status"]["NoNewPrivs"] == "1"
    if user == "nobody":
        assert out["status"]["Uid"] == "65534 65534 65534 65534"


def test_without_seccomp_the_same_probe_gets_its_sockets() -> None:
    """Control: the denials above come from the filter, not from the environment."""
    rc, out = probe("sockets", exit_code=3, seccomp=False)
    assert rc == 3
    got = out["sockets"]
    assert got["inet"] == got["inet6"] == got["packet"] == got["inet_high_bits"] == 0
    assert got["io_uring_setup"] != errno.ENOSYS


def test_seccomp_jailed_process_cannot_reach_a_listener_that_others_reach() -> None:
    listener = start_listener("127.0.0.1")
    try:
        target = f"connect:127.0.0.1:{listener.port}"
        _, free = probe(target)
        _, jailed = probe(target, seccomp=True)
        assert free[target] == {"errno": 0, "reply": "hello"}
        assert jailed[target]["errno"] == errno.EACCES
    finally:
        listener.stop()


def test_filter_installs_in_an_unprivileged_process_itself() -> None:
    """install_socket_filter() needs no root: a process running as nobody loads it on itself."""
    cmd = [
        "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
        *python_for("nobody"), str(PROBE), "--exit", "4", "seccomp-self", "sockets",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 4, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])["sockets"]
    assert got["inet"] == got["inet6"] == got["packet"] == errno.EACCES
    assert got["unix"] == got["netlink"] == 0


def test_exit_codes_come_back_including_death_by_signal() -> None:
    assert run_jailed(["sh", "-c", "exit 7"], seccomp=True) == 7
    assert run_jailed(["sh", "-c", "exit 0"], seccomp=True) == 0
    assert run_jailed(["sh", "-c", "kill -TERM $$"], seccomp=True) == 128 + signal.SIGTERM


def test_unknown_command_and_user_are_bad_input() -> None:
    with pytest.raises(BadInput, match="command not found: no-such-command-xyz"):
        run_jailed(["no-such-command-xyz"], seccomp=True)
    with pytest.raises(BadInput, match="no such user"):
        run_jailed(["true"], user="no-such-user-xyz", seccomp=True)
    with pytest.raises(BadInput, match="no command"):
        run_jailed([], seccomp=True)


_DRIVER = """
import sys
from netjail.backends.launch.spawn import run_jailed
print("START", flush=True)
print("RC", run_jailed(sys.argv[1:], seccomp=True), flush=True)
"""


@pytest.mark.parametrize(("signum", "to_group"), [(signal.SIGINT, True), (signal.SIGTERM, False)])
def test_ctrl_c_reaches_the_child_and_the_launcher_survives(signum: int, to_group: bool) -> None:
    """Ctrl-C (SIGINT to the foreground process group) kills the command, not the launcher,
    which reports 128+2; a SIGTERM sent to the launcher alone is passed on to the command."""
    driver = subprocess.Popen(
        [sys.executable, "-c", _DRIVER, "sleep", "30"],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, standing in for a terminal's
    )
    try:
        assert driver.stdout is not None
        assert driver.stdout.readline().strip() == "START"
        # The launcher installs its handlers before it forks; a signal reaching the child
        # between fork and exec would be lost (Python's handler, reset only at exec): wait
        # until the child is `sleep` itself.
        deadline = time.monotonic() + 30
        while not _execed(driver.pid, "sleep") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _execed(driver.pid, "sleep"), "the jailed sleep never started"
        if to_group:
            os.killpg(driver.pid, signum)
        else:
            os.kill(driver.pid, signum)
        out, _ = driver.communicate(timeout=10)
        assert driver.returncode == 0
        assert out.strip() == f"RC {128 + signum}"
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait(5)


def _execed(pid: int, comm: str) -> bool:
    for child in _children(pid):
        try:
            with open(f"/proc/{child}/comm") as f:
                if f.read().strip() == comm:
                    return True
        except OSError:
            pass
    return False


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []
