from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from netjail.backends.errors import NoSuchProcess, ProtectedProcess
from netjail.backends.system.identity import (
    ancestors,
    current,
    descendants,
    read_stat,
    refuse_protected,
)
from netjail.backends.system.procfs import parse_stat

STAT = (
    "4242 (my (weird) ) prog) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 "
    "987654 1000 200 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0"
)


def test_parse_stat_survives_parentheses_in_the_name() -> None:
    s = parse_stat(STAT)
    assert (s.pid, s.name, s.state, s.ppid, s.start_time) == (4242, "my (weird) ) prog", "S", 1, 987654)
    assert not s.kernel_thread


def test_kernel_thread_flag() -> None:
    kthread = STAT.replace(" 4194560 ", f" {0x00200000 | 0x40} ")
    assert parse_stat(kthread).kernel_thread


def test_reused_pid_is_refused() -> None:
    me = read_stat(os.getpid())
    assert me is not None
    assert current(os.getpid(), me.start_time).pid == os.getpid()
    with pytest.raises(NoSuchProcess, match="another process"):
        current(os.getpid(), me.start_time + 1)


def test_vanished_pid_is_refused() -> None:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    with pytest.raises(NoSuchProcess):
        current(p.pid)


def test_protected_processes() -> None:
    init = read_stat(1)
    assert init is not None
    with pytest.raises(ProtectedProcess, match="PID 1"):
        refuse_protected(init)
    parent = read_stat(os.getppid())
    assert parent is not None
    with pytest.raises(ProtectedProcess, match="ancestor"):
        refuse_protected(parent)
    kthreadd = read_stat(2)
    if kthreadd is not None and kthreadd.kernel_thread:  # visible unless /proc is a private PID ns
        with pytest.raises(ProtectedProcess, match="kernel thread"):
            refuse_protected(kthreadd)


def test_tree_walk_finds_grandchildren() -> None:
    code = (
        "import subprocess,sys,time; "
        "subprocess.Popen([sys.executable,'-c','import time; time.sleep(30)']); time.sleep(30)"
    )
    p = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 30  # a Python start on a loaded machine: seconds
        while not (tree := descendants(p.pid)) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(tree) == 1 and read_stat(tree[0]) is not None
        assert read_stat(tree[0]).ppid == p.pid  # type: ignore[union-attr]
        assert p.pid in ancestors(tree[0])
    finally:
        for pid in descendants(p.pid):
            os.kill(pid, 9)
        p.kill()
        p.wait()


def test_remote_login_servers_are_protected() -> None:
    sshd = parse_stat(STAT.replace("(my (weird) ) prog)", "(sshd)"))
    with pytest.raises(ProtectedProcess, match="remote logins"):
        refuse_protected(sshd, protected=set())
    refuse_protected(parse_stat(STAT), protected=set())  # an ordinary process passes


def test_pid_2_of_a_pid_namespace_and_its_children_are_not_kernel_threads() -> None:
    """In a container's PID namespace PID 2 is an ordinary process (its kthreadd is not there):
    only PF_KTHREAD marks a kernel thread, so netjail refuses neither it nor its children."""
    script = (
        "import os, subprocess, sys\n"
        "from netjail.backends.errors import ProtectedProcess\n"
        "from netjail.backends.system.identity import read_stat, refuse_protected\n"
        "assert os.getpid() == 2, os.getpid()\n"
        "child = subprocess.Popen(['sleep', '30'])\n"
        "for pid in (2, child.pid):\n"
        "    s = read_stat(pid)\n"
        "    assert s is not None and not s.kernel_thread, s\n"
        "    try:\n"
        "        refuse_protected(s, protected=set())\n"
        "    except ProtectedProcess as e:\n"
        "        if pid != 2:  # PID 2 is this test, i.e. netjail itself\n"
        "            raise\n"
        "        assert 'netjail itself' in str(e), e\n"
        "child.kill()\n"
        "print('ok')\n"
    )
    # sh is PID 1 of the new namespace; the command it forks first is PID 2
    out = subprocess.run(
        [
            "unshare",
            "--pid",
            "--fork",
            "--mount-proc",
            "sh",
            "-c",
            '"$0" -c "$1"; true',
            sys.executable,
            script,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.stdout.strip() == "ok", out.stderr
