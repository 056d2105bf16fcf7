"""Issue 8, findings 1, 6 and 10: root must not load code or libraries from places a user
controls, nor trust a state directory a user can write. Each test plays the attack for real:
the whole `netjail` process (its console script, as root runs it) in a directory or with an
environment a local user (nobody) prepared, a marker file telling whether the user's code ran.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Peer, run_cli

CLI = Callable[..., subprocess.CompletedProcess[str]]
NETJAIL = str(Path(sys.executable).with_name("netjail"))  # the console script root runs
NOBODY = pwd.getpwnam("nobody")

EVIL_C = r"""
#include <fcntl.h>
#include <unistd.h>
__attribute__((constructor)) static void pwn(void) {
    int fd = open(MARKER, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) { write(fd, "library ran\n", 12); close(fd); }
}
"""
# every name python-iptables and libxtables look up: bare (cwd-relative), with lib/.so forms,
# and the extensions libxtables dlopens from XTABLES_LIBDIR
LIBRARY_NAMES = (
    "xtables",
    "libxtables",
    "libxtables.so",
    "libxtables.so.12",
    "ip4tc",
    "libip4tc",
    "libip4tc.so",
    "libip4tc.so.2",
    "ip6tc",
    "libip6tc.so",
    "libip6tc.so.2",
    "iptc",
    "xtwrapper",
    "libxt_cgroup.so",
    "libxt_owner.so",
    "libxt_comment.so",
    "libxt_standard.so",
    "libxt_tcp.so",
    "libxt_udp.so",
)
FAKE_TOOLS = ("ss", "ip", "iptables", "iptables-legacy-save", "ip6tables-legacy-save", "nft", "groupadd")
FAKE_TOOLS += ("groupdel", "modprobe", "gcc", "cc", "ld", "ldconfig", "python3")


def netjail(
    *args: str, cwd: str | Path = "/", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [NETJAIL, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=90,
    )


@pytest.fixture
def attacker_dir() -> Iterator[Path]:
    """A directory owned by nobody (in sticky /tmp, so nobody can reach it)."""
    d = Path(tempfile.mkdtemp(prefix="netjail-attacker-"))
    os.chmod(d, 0o755)
    os.chown(d, NOBODY.pw_uid, NOBODY.pw_gid)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def as_nobody(*argv: str) -> None:
    subprocess.run(
        ["setpriv", f"--reuid={NOBODY.pw_uid}", f"--regid={NOBODY.pw_gid}", "--clear-groups", *argv],
        check=True,
    )


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    """Where the attacker's code leaves its mark (root writes it: the code runs as root)."""
    return tmp_path / "marker"


@pytest.fixture
def evil_library(attacker_dir: Path, marker: Path) -> Path:
    src = attacker_dir / "evil.c"
    src.write_text(EVIL_C)
    lib = attacker_dir / "evil.so"
    subprocess.run(
        ["gcc", "-shared", "-fPIC", f'-DMARKER="{marker}"', "-o", str(lib), str(src)],
        check=True,
        capture_output=True,
    )
    for name in LIBRARY_NAMES:
        as_nobody("ln", "-s", str(lib), str(attacker_dir / name))
    return lib


def watcher_pid(state: Path) -> Path:
    """The watcher's pid file, once the watcher (started in the background) wrote it."""
    for _ in range(100):
        if (state / "watcher.pid").exists():
            break
        time.sleep(0.05)
    return state / "watcher.pid"


def ran(marker: Path, wait: float = 0.0) -> bool:
    end = time.monotonic() + wait
    while not marker.exists() and time.monotonic() < end:
        time.sleep(0.1)
    return marker.exists()


# ---- finding 1b: libraries from the working directory or the environment --------------------


@pytest.mark.parametrize("command", [("list", "--json"), ("doctor", "--json")])
def test_library_symlinks_in_the_cwd_are_not_loaded(
    command: tuple[str, ...], evil_library: Path, attacker_dir: Path, marker: Path
) -> None:
    out = netjail(*command, cwd=attacker_dir)
    assert not ran(marker), f"the user's library ran as root: {out.stderr}"
    assert out.returncode == 0, out.stderr
    json.loads(out.stdout)


def test_library_directories_from_the_environment_are_ignored(
    evil_library: Path, attacker_dir: Path, marker: Path
) -> None:
    """An operator's `sudo -E` keeps a user's IPTABLES_LIBDIR / XTABLES_LIBDIR / version."""
    env = {
        "IPTABLES_LIBDIR": str(attacker_dir),
        "XTABLES_LIBDIR": str(attacker_dir),
        "IPTABLES_LIB_DIR": str(attacker_dir),
        "PYTHON_IPTABLES_XTABLES_VERSION": "so",  # "libxtables.so.so": not what the system has
    }
    for command in (("list", "--json"), ("doctor", "--json")):
        out = netjail(*command, env=env)
        assert not ran(marker), f"{command}: the user's library ran as root: {out.stderr}"
        assert out.returncode == 0, out.stderr


def test_the_dashboard_does_not_load_libraries_from_the_cwd(
    evil_library: Path, attacker_dir: Path, marker: Path, spawn_peer: Callable[..., Peer]
) -> None:
    """netjail-tui as root, in a pseudo-terminal, started in the user's directory."""
    from tests.tui.test_read_only import Terminal

    peer = spawn_peer("udp-bind", "127.0.0.1", 0)
    tui = str(Path(NETJAIL).with_name("netjail-tui"))
    env = {**os.environ, "TERM": "xterm-256color", "LANG": "C.UTF-8"}
    in_dir = ["/bin/sh", "-c", 'cd "$1" && exec "$2" --interval 0.5', "-", str(attacker_dir), tui]
    term = Terminal(in_dir, env)
    try:
        term.wait_for(f"{peer.pid}")
        time.sleep(1)  # a counters poll or two
        term.send("q")
        for _ in range(100):
            if term.proc.poll() is not None:
                break
            term._read(0.1)
        assert term.proc.poll() == 0, term.screen_text[-1500:]
    finally:
        term.close()
    assert not ran(marker), "the user's library ran as root"


# ---- finding 1a: the watcher from the working directory ---------------------------------------


def test_a_netjail_package_planted_in_the_cwd_does_not_run_as_the_watcher(
    attacker_dir: Path, marker: Path, spawn_peer: Callable[..., Peer], cli: CLI
) -> None:
    pkg = attacker_dir / "netjail" / "backends"
    as_nobody("mkdir", "-p", str(pkg))
    code = f"open({str(marker)!r}, 'a').write('planted watcher ran\\n')\n"
    for path, text in (
        (pkg.parent / "__init__.py", ""),
        (pkg / "__init__.py", ""),
        (pkg / "watcher.py", code),
    ):
        as_nobody("sh", "-c", 'printf %s "$1" > "$2"', "-", text, str(path))
    peer = spawn_peer("sleep")
    out = netjail("block", str(peer.pid), "--jail", "plant", "--json", cwd=attacker_dir)
    assert out.returncode == 0, out.stderr
    assert not ran(marker, wait=3), "the planted watcher ran as root"
    # the real watcher runs instead (its pid file names a live python -I)
    pid = int(watcher_pid(Path(os.environ["NETJAIL_STATE_DIR"])).read_text().split()[0])
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert b"-I" in argv and b"netjail.backends.jails.watcher" in argv, argv
    assert os.readlink(f"/proc/{pid}/cwd") == "/"
    environ = dict(
        e.split(b"=", 1) for e in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if b"=" in e
    )
    assert environ[b"PATH"] == b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert not any(k.startswith((b"PYTHON", b"LD_")) for k in environ), sorted(environ)
    out = cli("unblock", "--jail", "plant")
    assert out.returncode == 0, out.stderr


# ---- finding 10: tools through PATH -----------------------------------------------------------


@pytest.fixture
def fake_tools(attacker_dir: Path, marker: Path) -> str:
    """A PATH whose first directory (nobody's) holds fake system tools that leave a mark."""
    bin_dir = attacker_dir / "bin"
    as_nobody("mkdir", str(bin_dir))
    for name in FAKE_TOOLS:
        script = f'#!/bin/sh\necho "fake {name} ran" >> {marker}\nexit 0\n'
        as_nobody("sh", "-c", 'printf %s "$1" > "$2" && chmod 755 "$2"', "-", script, str(bin_dir / name))
    return f"{bin_dir}:{os.environ['PATH']}"


def test_tools_are_not_found_through_path(
    fake_tools: str, marker: Path, spawn_peer: Callable[..., Peer], cli: CLI
) -> None:
    server = spawn_peer("tcp-listen", "127.0.0.1", 0)
    client = spawn_peer("tcp-client", "127.0.0.1", server.info["lport"], interval=0.2)
    for _ in range(50):
        if client.value("ok") >= 2:
            break
        time.sleep(0.1)
    env = {"PATH": fake_tools}
    out = netjail("block", str(client.pid), "--jail", "kill", "--kill-connections", "--json", env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["killed_connections"] == 1  # the real ss did it
    out = netjail("doctor", "--json", env=env)
    assert out.returncode == 0, out.stderr
    out = netjail("run", "--gid", "--jail", "grp", "--", "true", env=env)
    assert out.returncode == 0, out.stderr
    assert not ran(marker), marker.read_text()
    assert cli("unblock", "--jail", "kill").returncode == 0


# ---- finding 6: the state directory -----------------------------------------------------------


@pytest.fixture
def root_only_file(tmp_path: Path) -> Path:
    target = tmp_path / "root-only"
    target.write_text("root's secret\n")
    os.chmod(target, 0o600)
    return target


STATE_FILES = ("watcher.pid", "lock", "state.json", "watcher.log", "logs")


def _plant(directory: Path, target: Path, *, as_user: bool) -> None:
    for name in STATE_FILES:
        if as_user:
            as_nobody("ln", "-s", str(target), str(directory / name))
        else:
            os.symlink(target, directory / name)


def _refused(out: subprocess.CompletedProcess[str], *words: str) -> None:
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 3, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr and len(lines) == 1, out.stderr
    assert all(w in lines[0] for w in words), lines[0]


def test_a_user_owned_state_directory_is_refused(
    attacker_dir: Path, root_only_file: Path, spawn_peer: Callable[..., Peer]
) -> None:
    state = attacker_dir / "state"
    as_nobody("mkdir", "-m", "700", str(state))
    _plant(state, root_only_file, as_user=True)
    peer = spawn_peer("sleep")
    cgroup_before = Path(f"/proc/{peer.pid}/cgroup").read_text()
    env = {"NETJAIL_STATE_DIR": str(state)}
    for command in (
        ("block", str(peer.pid), "--jail", "evil"),
        ("list",),
        ("counters",),
        ("unblock", "--all"),
        ("reset",),
        ("run", "--netns", "--", "true"),
        ("ps", "--json"),
    ):
        _refused(netjail(*command, env=env), str(state), f"owned by uid {NOBODY.pw_uid}")
    assert root_only_file.read_text() == "root's secret\n"
    assert Path(f"/proc/{peer.pid}/cgroup").read_text() == cgroup_before


@pytest.mark.parametrize("problem", ["group-writable", "world-writable", "symlinked", "open-parent"])
def test_a_state_directory_others_can_change_is_refused(problem: str, tmp_path: Path) -> None:
    state = tmp_path / "state-under-test"
    state.mkdir(mode=0o700)
    expected = str(state)
    if problem == "group-writable":
        os.chmod(state, 0o770)
        expected = "writable by its group"
    elif problem == "world-writable":
        os.chmod(state, 0o1777)  # sticky does not help the directory itself
        expected = "writable by others"
    elif problem == "symlinked":  # even to a directory that would pass: it can be re-pointed
        link = tmp_path / "link"
        link.symlink_to(state)
        state, expected = link, f"{link} is a symbolic link"
    else:  # a root-owned directory below one anyone can write: it could be renamed away
        parent = tmp_path / "open"
        parent.mkdir()
        os.chmod(parent, 0o777)
        state = parent / "state"
        state.mkdir(mode=0o700)
        expected = f"{parent} is writable by others"
    _refused(netjail("list", env={"NETJAIL_STATE_DIR": str(state)}), expected)


def test_symlinks_in_a_root_owned_state_directory_are_never_followed(
    tmp_path: Path, root_only_file: Path, spawn_peer: Callable[..., Peer]
) -> None:
    """Only root can plant these (the directory is root's, 0700): simulated, O_NOFOLLOW must
    still make every open fail cleanly."""
    state = tmp_path / "state-with-links"
    state.mkdir(mode=0o700)
    _plant(state, root_only_file, as_user=False)
    peer = spawn_peer("sleep")
    env = {"NETJAIL_STATE_DIR": str(state)}
    for command in (("block", str(peer.pid), "--jail", "links"), ("list",), ("reset",)):
        _refused(netjail(*command, env=env), "symbolic link")
    assert root_only_file.read_text() == "root's secret\n"
    assert stat.S_IMODE(root_only_file.stat().st_mode) == 0o600


def test_the_default_state_directory_is_created_0700(tmp_path: Path, spawn_peer: Callable[..., Peer]) -> None:
    state = tmp_path / "fresh" / "run" / "netjail" / "net-1"
    peer = spawn_peer("sleep")
    out = run_cli("block", str(peer.pid), "--jail", "fresh", env={"NETJAIL_STATE_DIR": str(state)})
    assert out.returncode == 0, out.stderr
    try:
        for d in (state, state.parent, state.parent.parent):
            assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
        for f in (state / "state.json", state / "lock", watcher_pid(state)):
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    finally:
        assert run_cli("reset", env={"NETJAIL_STATE_DIR": str(state)}).returncode == 0


def test_a_relative_command_is_still_found_from_where_netjail_started(tmp_path: Path) -> None:
    """netjail itself runs from "/": what the user typed relative to their directory is resolved
    against it first."""
    work = tmp_path / "work"
    work.mkdir()
    script = work / "hello.sh"
    script.write_text("#!/bin/sh\necho hello\n")
    script.chmod(0o755)
    out = netjail("run", "--seccomp", "--", "./hello.sh", cwd=work)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "hello"


# ---- settings root may run with (sudo -E, env_keep) -----------------------------------------


def test_a_planted_xtables_lock_symlink_is_refused(
    attacker_dir: Path, tmp_path: Path, spawn_peer: Callable[..., Peer]
) -> None:
    """The attack: XTABLES_LOCKFILE -> a user's symlink to a file root would then create."""
    victim = tmp_path / "created-by-root"
    as_nobody("ln", "-s", str(victim), str(attacker_dir / "lk"))
    peer = spawn_peer("sleep")
    out = netjail("block", str(peer.pid), "--jail", "lk", env={"XTABLES_LOCKFILE": str(attacker_dir / "lk")})
    assert out.returncode in (2, 3), (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not victim.exists()
    assert "NETJAIL" not in Path(f"/proc/{peer.pid}/cgroup").read_text().upper()


@pytest.mark.backend("iptables")  # the xtables lock; nftables commits one transaction, lockless
def test_a_lock_symlink_in_a_trusted_directory_is_not_followed(
    tmp_path: Path, spawn_peer: Callable[..., Peer]
) -> None:
    """Even where the directory passes (sticky /tmp), the lock is opened without following."""
    victim = tmp_path / "created-by-root"
    link = Path(tempfile.mkdtemp(prefix="netjail-lock-")) / "lk"
    peer = spawn_peer("sleep")
    try:
        link.symlink_to(victim)
        out = netjail("block", str(peer.pid), "--jail", "lk", env={"XTABLES_LOCKFILE": str(link)})
        assert out.returncode == 3 and "symbolic link" in out.stderr, out.stderr
        assert not victim.exists()
    finally:
        shutil.rmtree(link.parent)


@pytest.mark.parametrize(
    "setting",
    [
        ("NETJAIL_NETNS_PREFIX", "../../tmp/u/pfx-"),
        ("NETJAIL_CGROUP_PARENT", "../user.slice/x"),
        ("NETJAIL_WATCH_INTERVAL", "1e9"),
        ("NETJAIL_WATCH_INTERVAL", "nan"),
        ("XTABLES_LOCKFILE", "relative.lock"),
    ],
)
def test_settings_that_would_steer_root_are_refused(setting: tuple[str, str]) -> None:
    key, value = setting
    out = netjail("run", "--netns", "--", "true", env={key: value})
    assert out.returncode == 2, (out.returncode, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0], out.stderr
