"""The pure parts of launching: exit statuses, child error reports, credentials, environment."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest
from netjail.backends.errors import (
    BadInput,
    InsufficientPrivilege,
    OperationFailed,
    UnsupportedEnvironment,
)
from netjail.backends.launch import credentials
from netjail.backends.launch.spawn import child_error, exit_status


def test_exit_status_like_a_shell() -> None:
    assert exit_status(0) == 0
    assert exit_status(7) == 7
    assert exit_status(-15) == 143
    assert exit_status(-9) == 137


@pytest.mark.parametrize(
    ("report", "kind", "text"),
    [
        (b"netns\x001\x00cannot enter the network namespace: Operation not permitted", InsufficientPrivilege,
         "cannot enter the network namespace: Operation not permitted (needs root)"),
        (b"user\x001\x00cannot switch to user bob: Operation not permitted", InsufficientPrivilege,
         "cannot switch to user bob: Operation not permitted (needs root)"),
        (b"cwd\x0013\x00cannot change directory to /root as bob: Permission denied", BadInput,
         "cannot change directory to /root as bob: Permission denied"),
        (b"seccomp\x0022\x00cannot load the seccomp filter: Invalid argument", UnsupportedEnvironment,
         "cannot load the seccomp filter: Invalid argument (no CONFIG_SECCOMP_FILTER?)"),
        (b"nnp\x0022\x00cannot set no_new_privs: Invalid argument", OperationFailed,
         "cannot set no_new_privs: Invalid argument"),
        (b"", OperationFailed, "the jailed command could not be set up"),
    ],
)  # fmt: skip
def test_child_error_reports_become_one_line_errors(report: bytes, kind: type, text: str) -> None:
    err = child_error(report)
    assert type(err) is kind and str(err) == text


def test_default_user_prefers_sudo_user_only_for_root(monkeypatch: pytest.MonkeyPatch) -> None:
    me = pwd.getpwuid(os.geteuid()).pw_name
    monkeypatch.setenv("SUDO_USER", "nobody")
    assert credentials.default_user() == ("nobody" if os.geteuid() == 0 else me)
    monkeypatch.delenv("SUDO_USER")
    assert credentials.default_user() == me


def test_resolve_by_name_and_number() -> None:
    assert credentials.lookup_user("nobody").pw_uid == 65534
    assert credentials.lookup_user("65534").pw_name == "nobody"
    with pytest.raises(BadInput, match="no such user"):
        credentials.lookup_user("no-such-user-xyz")


def test_resolve_self_and_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUDO_USER", raising=False)
    me = pwd.getpwuid(os.geteuid())
    creds = credentials.resolve()
    assert (creds.user, creds.uid, creds.gid) == (me.pw_name, me.pw_uid, me.pw_gid)
    assert me.pw_gid in creds.groups
    assert creds.change == (os.geteuid() == 0)
    if os.geteuid() == 0:
        assert credentials.resolve("nobody", 4242).gid == 4242
        assert credentials.resolve("nobody", 4242).groups == tuple(
            sorted(set(os.getgrouplist("nobody", 65534)))
        )
    else:
        with pytest.raises(InsufficientPrivilege):
            credentials.resolve("nobody")
    with pytest.raises(BadInput, match="bad group id"):
        credentials.resolve(None, -1)


def test_environment_is_minimal_and_follows_the_target_user() -> None:
    nobody = credentials.Credentials("nobody", 65534, 65534, (65534,), "/nonexistent", True, "/bin/false")
    ours = {
        "HOME": "/root", "USER": "root", "PATH": "/root/bin:.:/usr/bin", "X": "1", "TERM": "xterm",
        "LANG": "C.UTF-8", "LC_TIME": "C", "LD_PRELOAD": "/tmp/evil.so", "PYTHONPATH": "/tmp",
        "ROOT_API_TOKEN": "secret",
    }  # fmt: skip
    env = credentials.environment(nobody, source=ours)
    assert env == {
        "HOME": "/nonexistent", "USER": "nobody", "LOGNAME": "nobody", "SHELL": "/bin/false",
        "PATH": credentials.SAFE_PATH, "TERM": "xterm", "LANG": "C.UTF-8", "LC_TIME": "C",
    }  # fmt: skip
    kept = credentials.environment(nobody, ("X", "LD_PRELOAD", "UNSET"), {"Y": "2"}, source=ours)
    assert kept["X"] == "1" and kept["LD_PRELOAD"] == "/tmp/evil.so" and kept["Y"] == "2"
    assert "UNSET" not in kept and "PYTHONPATH" not in kept
    root = credentials.Credentials("root", 0, 0, (0,), "/root", True)
    assert credentials.environment(root, source=ours)["PATH"] == credentials.ROOT_PATH
    for bad in ("A=B", "", "1X", "X Y"):
        with pytest.raises(BadInput, match="not an environment variable name"):
            credentials.check_env_names([bad])


def test_relaunch_target_names_set_ids_and_keeps_only_an_honest_argv0(tmp_path: Path) -> None:
    from netjail.backends.launch import relaunch_target

    assert relaunch_target._setid("uid", [1000, 1000, 1000, 1000]) == ""
    assert relaunch_target._setid("uid", [65534, 0, 0, 0]) == (
        "setuid: real 65534, effective 0, saved 0, filesystem 0"
    )
    assert relaunch_target._setid("gid", [5, 5, 0, 5]).startswith("setgid: real 5")  # saved only
    real = tmp_path / "prog"
    real.write_text("")
    (tmp_path / "link").symlink_to(real)
    (tmp_path / "other").write_text("")
    assert relaunch_target._argv0(str(real), str(tmp_path / "link")) == str(tmp_path / "link")
    assert relaunch_target._argv0(str(real), str(tmp_path / "other")) == str(real)
    assert relaunch_target._argv0(str(real), "prog") == str(real)  # relative: could be anything
