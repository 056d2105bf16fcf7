"""Process hardening, tool lookup and library pinning (issue 8 findings 1 and 10)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from netjail.backends import hardening
from netjail.backends.errors import EXIT_UNSUPPORTED, UnsupportedEnvironment
from netjail.backends.firewall import libiptc
from netjail.backends.system import tools
from netjail.backends.system.trusted_paths import path_problem, stat_problem


def test_the_sanitized_environment_keeps_only_what_netjail_needs() -> None:
    env = hardening.sanitized_environ(
        {
            "PATH": "/home/u/bin:/usr/bin",
            "PYTHONPATH": "/home/u",
            "LD_PRELOAD": "/home/u/evil.so",
            "IPTABLES_LIBDIR": "/home/u",
            "TMPDIR": "/home/u/tmp",
            "ROOT_API_TOKEN": "secret",
            "TERM": "xterm",
            "LC_ALL": "C.UTF-8",
            "SUDO_USER": "alice",
            "NETJAIL_STATE_DIR": "/run/x",
            "NETJAIL_WATCH_INTERVAL": "3",
        }
    )
    assert env.pop("PATH") == hardening.SAFE_PATH
    for key in ("HOME", "USER", "LOGNAME"):
        env.pop(key)  # the effective user's, from the password database
    assert env == {
        "TERM": "xterm",
        "LC_ALL": "C.UTF-8",
        "SUDO_USER": "alice",
        "NETJAIL_STATE_DIR": "/run/x",
        "NETJAIL_WATCH_INTERVAL": "3",
    }


def test_harden_starts_from_root_and_keeps_the_callers_cwd(tmp_path: Path) -> None:
    """In a child: harden() changes the process for good."""
    code = (
        "import json, os\n"
        "from netjail.backends import hardening\n"
        "c = hardening.harden()\n"
        "print(json.dumps({'cwd': os.getcwd(), 'caller': c.cwd, 'env': dict(os.environ),"
        " 'caller_env': dict(c.environ)}))\n"
    )
    env = {**os.environ, "LD_PRELOAD": "", "X_SECRET": "1", "NETJAIL_STATE_DIR": "rel/state"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    )
    got = json.loads(out.stdout)
    assert got["cwd"] == "/" and got["caller"] == str(tmp_path)
    assert "X_SECRET" not in got["env"] and got["caller_env"]["X_SECRET"] == "1"
    assert got["env"]["NETJAIL_STATE_DIR"] == str(tmp_path / "rel/state")  # resolved before the chdir


def test_helpers_run_isolated() -> None:
    argv = hardening.helper_command("netjail.backends.jails.watcher", "/run/x")
    assert argv[:3] == [sys.executable, "-I", "-m"]
    # the editable install stays importable under -I (its finder is a .pth in site-packages)
    out = subprocess.run(
        [sys.executable, "-I", "-c", "import netjail.backends.jails.watcher as w; print(w.__name__)"],
        cwd="/",
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "netjail.backends.jails.watcher"


def test_tools_come_from_system_directories() -> None:
    ss = tools.require("ss", "iproute2")
    assert os.path.dirname(ss) in tools.SYSTEM_DIRS
    assert tools.find("no-such-tool-netjail") is None
    with pytest.raises(UnsupportedEnvironment, match="no-such-tool-netjail not found in /usr/sbin") as err:
        tools.require("no-such-tool-netjail", "nothing")
    assert err.value.exit_code == EXIT_UNSUPPORTED
    assert tools.find("../bin/ss") is None


def test_trust_rules_like_strict_modes(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    os.chmod(d, 0o777)
    assert "writable by others" in (stat_problem(d.stat()) or "")
    os.chmod(d, 0o1777)
    assert stat_problem(d.stat(), sticky_ok=True) is None and stat_problem(d.stat()) is not None
    os.chmod(d, 0o755)
    os.chown(d, 65534, 65534)
    assert "owned by uid 65534" in (stat_problem(d.stat(), {0}) or "")
    f = tmp_path / "f"
    f.write_text("")
    os.chmod(tmp_path, stat.S_IMODE(tmp_path.stat().st_mode) | 0o002)
    assert f"{tmp_path} is writable by others" in (path_problem(str(f), {0}) or "")


def test_library_environment_is_pinned_over_the_callers(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("IPTABLES_LIBDIR", "XTABLES_LIBDIR", "IPTABLES_LIB_DIR", "PYTHON_IPTABLES_XTABLES_VERSION"):
        monkeypatch.setenv(name, "/tmp/evil")
    libiptc.pin_library_env.cache_clear()
    pinned = libiptc.pin_library_env()
    assert set(pinned) == {"IPTABLES_LIBDIR", "XTABLES_LIBDIR", "PYTHON_IPTABLES_XTABLES_VERSION"}
    assert all(os.environ[k] == v for k, v in pinned.items())
    assert "IPTABLES_LIB_DIR" not in os.environ
    version = pinned["PYTHON_IPTABLES_XTABLES_VERSION"]
    assert Path(pinned["IPTABLES_LIBDIR"], f"libxtables.so.{version}").exists()
    assert path_problem(pinned["XTABLES_LIBDIR"], {0}) is None


def test_a_callers_extension_directory_is_kept_only_if_it_is_roots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    libiptc.pin_library_env.cache_clear()
    system = libiptc.pin_library_env()["XTABLES_LIBDIR"]
    reduced = tmp_path / "xtables"
    reduced.mkdir()
    (reduced / "libxt_standard.so").symlink_to(Path(system, "libxt_standard.so"))
    monkeypatch.setenv("XTABLES_LIBDIR", str(reduced))
    libiptc.pin_library_env.cache_clear()
    assert libiptc.pin_library_env()["XTABLES_LIBDIR"] == str(reduced)
    planted = reduced / "libxt_cgroup.so"
    planted.write_bytes(b"")
    os.chown(planted, 65534, 65534)  # a user's library among root's
    monkeypatch.setenv("XTABLES_LIBDIR", str(reduced))
    libiptc.pin_library_env.cache_clear()
    assert libiptc.pin_library_env()["XTABLES_LIBDIR"] == system
    libiptc.pin_library_env.cache_clear()
