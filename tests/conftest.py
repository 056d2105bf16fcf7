"""Shared fixtures: real helper processes with known sockets, test hosts (netns + veth),
unique names and a private state directory per test.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import pwd
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
PEERS = TESTS / "peers.py"
_names = itertools.count(1)
# Jail cgroups live in the machine-wide cgroup tree: each test session gets its own parent so
# concurrent runs (and a real netjail) never see, adopt or reset each other's jails.
CGROUP_PARENT = os.environ.setdefault("NETJAIL_CGROUP_PARENT", f"netjail-test-{os.getpid()}")
# /run/netns is machine-wide too; not "netjail-..." so a real netjail never adopts test namespaces
NETNS_PREFIX = os.environ.setdefault("NETJAIL_NETNS_PREFIX", f"test{os.getpid()}-netjail-")
CGROUP2 = (
    Path("/sys/fs/cgroup/unified")
    if Path("/sys/fs/cgroup/unified/cgroup.procs").exists()
    else Path("/sys/fs/cgroup")
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test marked `backend("NAME", ...)` is about those backends' internals: it runs in their
    passes only (tests/run_parallel.py runs the suite once per backend) and is deselected, and
    counted so, in the others. A name the registry does not know stops the session: a test
    nobody's pass would ever run is a defect, not a skip."""
    from netjail.backends.firewall import registry

    current = registry.selected().name
    kept, other = [], []
    for item in items:
        marker = item.get_closest_marker("backend")
        if marker is None:
            kept.append(item)
            continue
        unknown = set(marker.args) - set(registry.BACKENDS)
        if unknown or not marker.args:
            known = ", ".join(sorted(registry.BACKENDS))
            raise pytest.UsageError(f"{item.nodeid}: backend{marker.args} names no backend of {known}")
        (kept if current in marker.args else other).append(item)
    if other:
        config.hook.pytest_deselected(items=other)
        items[:] = kept


@pytest.fixture(scope="session", autouse=True)
def _cgroup_parent_removed() -> Iterator[None]:
    """Whatever a failed test left under this session's cgroup parent is emptied and removed."""
    yield
    parent = CGROUP2 / CGROUP_PARENT
    if not parent.is_dir():
        return
    for cgroup in sorted(parent.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if cgroup.is_dir():
            for pid in (cgroup / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    (CGROUP2 / "cgroup.procs").write_text(pid)
            with contextlib.suppress(OSError):
                cgroup.rmdir()
    with contextlib.suppress(OSError):
        parent.rmdir()


def in_private_netns() -> bool:
    """True when this process is not in PID 1's network namespace (make test's unshare -n).

    Some inits deny even root a look at their namespaces (PID 1 here does): then an ancestor in
    another network namespace shows that one was unshared for us.
    """
    own = os.stat("/proc/self/ns/net").st_ino
    try:
        return own != os.stat("/proc/1/ns/net").st_ino
    except PermissionError:
        pass
    pid = os.getppid()
    while pid > 1:
        try:
            if os.stat(f"/proc/{pid}/ns/net").st_ino != own:
                return True
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
    return False


# Runs `python -c _VENV_BOOT -m MODULE ARGS` or `python -c _VENV_BOOT SCRIPT ARGS` like `python -m`
# or `python SCRIPT` would, with the venv's packages (and the editable netjail) importable.
_VENV_BOOT = (
    "import runpy, site, sys; site.addsitedir({site!r}); del sys.argv[0]\n"
    "if sys.argv[0] == '-m':\n"
    "    del sys.argv[0]; runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n"
    "else:\n"
    "    runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


def _world_executable(path: Path) -> bool:
    return all(os.stat(p).st_mode & 0o001 for p in (path, *path.parents))


def uid_pids(uid: int) -> set[int]:
    """Every process of a user, machine-wide (other test files run beside this one)."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    found.add(int(entry))
    return found


def assert_lists_the_user(listed: set[int], before: set[int], uid: int) -> None:
    """`listed` is what netjail found of a user's processes between `before` (uid_pids, read just
    before) and now: the machine's other processes of that user may come and go meanwhile, so
    every one alive throughout must be listed, and nothing listed may be another user's."""
    after = uid_pids(uid)
    assert before & after <= listed, f"not listed: {sorted(before & after - listed)}"
    strays = [p for p in listed - before - after if os.path.exists(f"/proc/{p}")]
    assert not strays, f"listed but not the user's: {strays}"


def python_for(user: str | None) -> list[str]:
    """The interpreter command for a child that runs as `user` (None: as we do).

    A venv made from a pyenv build under root's 0700 home has an interpreter other users cannot
    execute; they get the system python of the same version with the venv's packages added.
    """
    if not user or _world_executable(Path(sys.executable).resolve()):
        return [sys.executable]
    system = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    if not _world_executable(system):
        return [sys.executable]  # fails loudly in the child: nothing better to offer
    site_packages = sysconfig.get_paths()["purelib"]
    return [str(system), "-c", _VENV_BOOT.format(site=site_packages)]


def setpriv_as(user: str) -> list[str]:
    """setpriv prefix running as user with its primary group (Debian's nobody is in nogroup)."""
    gid = pwd.getpwnam(user).pw_gid
    return ["setpriv", f"--reuid={user}", f"--regid={gid}", "--clear-groups"]


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "state"
    monkeypatch.setenv("NETJAIL_STATE_DIR", str(d))
    return d


@pytest.fixture
def uniq() -> Callable[[str], str]:
    """Short unique names (jails, netns, chains must stay under 28 characters)."""

    def make(prefix: str = "t") -> str:
        return f"{prefix}{os.getpid() % 10000}x{next(_names)}"

    return make


@dataclass
class Peer:
    """A helper process from tests/peers.py; its stdout is read continuously."""

    proc: subprocess.Popen[str]
    info: dict[str, object] = field(default_factory=dict)
    latest: dict[str, object] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    _ready: threading.Event = field(default_factory=threading.Event)

    @property
    def pid(self) -> int:
        return int(self.info.get("pid", self.proc.pid))  # type: ignore[arg-type]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            self.lines.append(line)
            if line.startswith("READY "):
                self.info = json.loads(line[6:])
                self._ready.set()
            elif line.startswith("COUNT "):
                self.latest = json.loads(line[6:])
        self._ready.set()

    def wait_ready(self, timeout: float = 10.0) -> None:
        if not self._ready.wait(timeout) or not self.info:
            err = self.proc.stderr.read() if self.proc.poll() is not None and self.proc.stderr else ""
            raise AssertionError(f"peer not ready: {self.proc.args} {err}")

    def wait_asleep(self, timeout: float = 30.0) -> None:
        """Until the kernel shows the peer asleep in its hour-long `time.sleep` (state S, in
        nanosleep): a mode that only sleeps after READY stays so, however loaded the machine.
        Where wchan is hidden ("0"), state S alone."""
        end = time.monotonic() + timeout
        while True:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
            wchan = Path(f"/proc/{self.pid}/wchan").read_text()
            if stat[stat.rindex(")") + 2] == "S" and ("nanosleep" in wchan or wchan in ("", "0")):
                return
            if time.monotonic() > end:
                raise AssertionError(f"peer {self.pid} not asleep after {timeout}s: {stat!r} {wchan!r}")
            time.sleep(0.01)

    def value(self, key: str) -> int:
        return int(self.latest.get(key, 0))  # type: ignore[call-overload]

    def wait_for(self, pred: Callable[[dict[str, object]], bool], timeout: float = 5.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pred(self.latest):
                return True
            time.sleep(0.05)
        return pred(self.latest)

    def kill(self) -> None:
        """The peer and everything it forked (its own process group): a forked child outliving
        the test would keep sending from a namespace nobody can see any more."""
        with contextlib.suppress(ProcessLookupError):
            if os.getpgid(self.proc.pid) == self.proc.pid:
                os.killpg(self.proc.pid, signal.SIGKILL)
            else:  # a Peer built by hand, not by spawn_peer: no group of its own
                self.proc.kill()
        self.proc.wait(5)


def start_peer(cmd: list[str], peers: list[Peer]) -> Peer:
    """Start a helper whose stdout is read continuously; ready once it printed READY."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    peer = Peer(proc)
    threading.Thread(target=peer._read, daemon=True).start()
    peers.append(peer)
    peer.wait_ready()
    return peer


@pytest.fixture
def spawn_peer() -> Iterator[Callable[..., Peer]]:
    """spawn_peer(mode, *args, netns=None, user=None, interval=0.05) -> ready Peer."""
    peers: list[Peer] = []

    def spawn(
        mode: str, *args: object, netns: str | None = None, user: str | None = None, interval: float = 0.05
    ) -> Peer:
        cmd = [*python_for(user), str(PEERS), mode, *map(str, args), "--interval", str(interval)]
        if user:
            cmd = [*setpriv_as(user), *cmd]
        if netns:
            cmd = ["ip", "netns", "exec", netns, *cmd]
        return start_peer(cmd, peers)

    yield spawn
    for p in peers:
        p.kill()


@pytest.fixture
def spawn_script() -> Iterator[Callable[..., Peer]]:
    """spawn_script(path, *args) -> ready Peer: one of the suite's probe scripts, as `nobody`."""
    peers: list[Peer] = []
    yield lambda path, *args: start_peer(
        [*setpriv_as("nobody"), *python_for("nobody"), str(path), *map(str, args)], peers
    )
    for p in peers:
        p.kill()


@dataclass(frozen=True)
class Host:
    """A test host: its own netns, reached over a veth pair from the test's netns."""

    netns: str
    addr4: str  # the host's address
    addr6: str
    gw4: str  # our side of the veth
    gw6: str


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def make_host(uniq: Callable[[str], str]) -> Iterator[Callable[[], Host]]:
    """make_host() -> Host on 10.199.N.2/24 and fd00:199:N::2/64; removed afterwards."""
    created: list[tuple[str, str]] = []
    index = itertools.count(1)

    def make() -> Host:
        n = next(index)
        name, veth = uniq("njt"), f"njv{os.getpid() % 10000}x{n}"
        _ip("netns", "add", name)
        created.append((name, veth))
        _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name)
        _ip("addr", "add", f"10.199.{n}.1/24", "dev", veth)
        _ip("-6", "addr", "add", f"fd00:199:{n}::1/64", "dev", veth, "nodad")
        _ip("link", "set", veth, "up")
        for args in (
            ("addr", "add", f"10.199.{n}.2/24", "dev", "eth0"),
            ("-6", "addr", "add", f"fd00:199:{n}::2/64", "dev", "eth0", "nodad"),
            ("link", "set", "eth0", "up"),
            ("link", "set", "lo", "up"),
            ("route", "add", "default", "via", f"10.199.{n}.1"),
            ("-6", "route", "add", "default", "via", f"fd00:199:{n}::1"),
        ):
            _ip("-n", name, *args)
        return Host(name, f"10.199.{n}.2", f"fd00:199:{n}::2", f"10.199.{n}.1", f"fd00:199:{n}::1")

    yield make
    for name, veth in created:
        subprocess.run(["ip", "link", "del", veth], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def run_cli(
    *args: str, user: str | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the real `netjail` CLI in a child process."""
    cmd = [*python_for(user), "-m", "netjail.app.cli", *args]
    if user:
        cmd = [*setpriv_as(user), *cmd]
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env)


@pytest.fixture
def cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    return run_cli
