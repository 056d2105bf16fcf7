"""Relaunch trusts nothing of the process it replaces (finding 3), holds it by a pidfd (finding
11) and writes its log without following a user's symlink (finding 6, launch logs)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from netjail.backends.engine import Engine
from netjail.backends.errors import BadInput, InsufficientPrivilege
from netjail.backends.model import LaunchRequest

EVIL_C = r"""
#include <stdio.h>
#include <unistd.h>
__attribute__((constructor)) static void evil(void) {
    FILE *f = fopen(MARKER, "a");
    if (f) { fprintf(f, "uid=%d euid=%d\n", (int)getuid(), (int)geteuid()); fclose(f); }
}
"""


@pytest.fixture
def evil_so(tmp_path: Path) -> tuple[Path, Path]:
    """(library, marker): the library's constructor appends who ran it to the marker file."""
    drop = tmp_path / "drop"
    drop.mkdir()
    drop.chmod(0o1777)  # whoever loads the library can write the marker: nothing is missed
    tmp_path.chmod(0o755)
    marker, src, lib = drop / "marker", tmp_path / "evil.c", tmp_path / "evil.so"
    src.write_text(EVIL_C)
    subprocess.run(
        ["gcc", "-shared", "-fPIC", f'-DMARKER="{marker}"', "-o", str(lib), str(src)],
        check=True,
        capture_output=True,
    )
    lib.chmod(0o755)
    return lib, marker


@pytest.fixture
def started() -> Iterator[list[int]]:
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            continue
        signal.pidfd_send_signal(fd, signal.SIGKILL)
        os.close(fd)


def _ids(pid: int) -> tuple[list[str], list[str]]:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    uid = next(line for line in status if line.startswith("Uid:")).split()[1:]
    gid = next(line for line in status if line.startswith("Gid:")).split()[1:]
    return uid, gid


def _setuid_like(lib: Path) -> subprocess.Popen[bytes]:
    """What a user gets from a setuid-root program: real uid nobody, effective uid root, and an
    environment of their choosing (LD_PRELOAD, ignored by the loader for this secure exec)."""
    proc = subprocess.Popen(
        [
            "setpriv",
            "--ruid",
            "nobody",
            "--euid",
            "0",
            "--regid",
            "65534",
            "--clear-groups",
            "--",
            "env",
            f"LD_PRELOAD={lib}",
            "sleep",
            "300",
        ],
        env={"PATH": "/usr/bin:/bin"},
        cwd="/",
        start_new_session=True,
    )
    end = time.monotonic() + 5
    while time.monotonic() < end:
        try:
            if Path(f"/proc/{proc.pid}/comm").read_text().strip() == "sleep":
                break
        except OSError:
            pass
        time.sleep(0.02)
    assert _ids(proc.pid)[0][:2] == ["65534", "0"]
    return proc


def test_relaunch_refuses_a_setuid_process_and_forced_runs_it_as_its_real_user(
    evil_so: tuple[Path, Path], started: list[int]
) -> None:
    lib, marker = evil_so
    target = _setuid_like(lib)
    try:
        assert not marker.exists()  # the loader ignored LD_PRELOAD for the set-id exec
        engine = Engine(spawn_watcher=False)
        with pytest.raises(BadInput, match="setuid: real 65534, effective 0"):
            engine.relaunch(target.pid, None, LaunchRequest((), "seccomp", jail="suid"))
        assert target.poll() is None, "refused, yet the process was terminated"
        assert not marker.exists()

        result = engine.relaunch(target.pid, None, LaunchRequest((), "seccomp", jail="suid"), force=True)
        started.append(result.pid)
        assert target.wait(5) == -signal.SIGTERM
        uid, gid = _ids(result.pid)
        assert uid == ["65534"] * 4 and gid == ["65534"] * 4
        assert os.readlink(f"/proc/{result.pid}/exe") == "/usr/bin/sleep"
        environ = Path(f"/proc/{result.pid}/environ").read_bytes()
        assert b"LD_PRELOAD" not in environ
        time.sleep(0.2)
        assert not marker.exists(), f"the user's library ran: {marker.read_text()}"
    finally:
        target.kill()
        target.wait()


def test_relaunch_runs_the_real_program_not_cmdline0(tmp_path: Path, started: list[int]) -> None:
    """A process can claim any argv[0]: exec -a /usr/bin/evil sleep."""
    proc = subprocess.Popen(
        ["bash", "-c", f"exec -a {tmp_path}/not-sleep sleep 300"], cwd=tmp_path, start_new_session=True
    )
    try:
        end = time.monotonic() + 5
        while time.monotonic() < end and os.readlink(f"/proc/{proc.pid}/exe") != "/usr/bin/sleep":
            time.sleep(0.02)
        (tmp_path / "not-sleep").write_text("#!/bin/sh\ntouch /tmp/never\n")
        result = Engine(spawn_watcher=False).relaunch(proc.pid, None, LaunchRequest((), "seccomp"))
        started.append(result.pid)
        assert os.readlink(f"/proc/{result.pid}/exe") == "/usr/bin/sleep"
        cmdline = Path(f"/proc/{result.pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[:2] == [b"/usr/bin/sleep", b"300"]
        assert os.readlink(f"/proc/{result.pid}/cwd") == str(tmp_path)  # root may enter it
        log = Path(result.log)
        assert log.parent == Path(os.environ["NETJAIL_STATE_DIR"]) / "logs"
        assert log.stat().st_mode & 0o777 == 0o600 and log.parent.stat().st_mode & 0o777 == 0o700
        assert "relaunch [seccomp]" in log.read_text()
    finally:
        proc.kill()
        proc.wait()


def test_relaunch_log_refuses_a_planted_symlink(tmp_path: Path, state_dir: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("root's file\n")
    proc = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        (state_dir / "logs").mkdir(parents=True, mode=0o700)
        (state_dir / "logs" / "planted.log").symlink_to(victim)
        with pytest.raises(InsufficientPrivilege, match=r"planted\.log"):
            Engine(spawn_watcher=False).relaunch(proc.pid, None, LaunchRequest((), "seccomp", jail="planted"))
        assert victim.read_text() == "root's file\n" and proc.poll() is None
        (state_dir / "logs" / "planted.log").unlink()
        (state_dir / "logs").rmdir()
        (state_dir / "logs").symlink_to(tmp_path)
        with pytest.raises(InsufficientPrivilege, match=r"symbolic link|not a plain directory"):
            Engine(spawn_watcher=False).relaunch(proc.pid, None, LaunchRequest((), "seccomp", jail="planted"))
        assert proc.poll() is None and not (tmp_path / "planted.log").exists()
    finally:
        proc.kill()
        proc.wait()
        if (state_dir / "logs").is_symlink():  # else the reset after the test refuses the dir too
            (state_dir / "logs").unlink()


# Inside a PID namespace of its own, so that the PID can be handed to a new process on purpose.
_REUSE = """
import json, os, signal, subprocess, sys
from netjail.backends.system import identity
from netjail.backends.launch import relaunch_target

first = subprocess.Popen(["sleep", "300"])
# Popen returns once exec closed its pipe, a moment before the kernel sets the new argv: until
# then /proc/PID/cmdline reads empty (seen under load: "no command line to start again")
while not open(f"/proc/{first.pid}/cmdline", "rb").read():
    pass
with relaunch_target.hold(first.pid, identity.current(first.pid).start_time) as target:
    first.kill()
    first.wait()  # reaped: the PID is free
    with open("/proc/sys/kernel/ns_last_pid", "w") as f:
        f.write(str(first.pid - 1))
    second = subprocess.Popen(["sleep", "300"])
    target.terminate(grace=0.5)  # must not reach the newcomer
    alive = second.poll() is None
    second.kill()
    print(json.dumps({"same_pid": second.pid == first.pid, "alive": alive}))
"""


def test_a_reused_pid_is_never_signalled() -> None:
    out = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", _REUSE],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"same_pid": True, "alive": True}
