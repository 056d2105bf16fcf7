"""A real systemd 252 as PID 1 of a container booted from this machine's own OS tree.

The development machines run no service manager (docs/kernel-facts.md #13): netjail's behaviour with
systemd units is tested against the real thing. `systemd-nspawn --volatile=yes -D /` boots the
host's /usr with a throw-away /etc and /var in ~2-10 s; `--private-network` gives it a network
namespace of its own (loopback only), so nothing it or netjail does inside reaches the machine's
network. The checkout and the venv's Python are bound in at the same paths; commands run inside
with `nsenter -t <container systemd> -a` (every namespace, the container's root and cgroup
namespace).

nspawn is started in a cgroup of this test session's own (under NETJAIL_CGROUP_PARENT): it
makes its `payload` and `supervisor` cgroups there, and the whole subtree is removed after.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]
BOOT_TIMEOUT = 30.0
# inside the container: a plain environment (no NETJAIL_* of the test session's)
INNER_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
# the backend of this pass (tests/run_parallel.py) goes in with the commands: netjail inside the
# container must write with the backend the test's probes read
PASSED_ENV = ("NETJAIL_BACKEND", "NETJAIL_FIREWALL")


@dataclass
class SystemdHost:
    nspawn: subprocess.Popen[bytes]
    pid: int  # the container's systemd, as the host sees it
    cgroup: Path  # the cgroup nspawn was started in (host view)
    machine: str
    log: Path
    python: str = sys.executable
    _spawned: list[subprocess.Popen[str]] = field(default_factory=list)

    def argv(self, *argv: str) -> list[str]:
        return ["nsenter", "-t", str(self.pid), "-a", f"--wd={CHECKOUT}", "env", "-i",
                *(f"{k}={v}" for k, v in INNER_ENV.items()),
                *(f"{k}={os.environ[k]}" for k in PASSED_ENV if k in os.environ), *argv]  # fmt: skip

    def run(self, *argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(self.argv(*argv), capture_output=True, text=True, timeout=timeout)
        if check and out.returncode != 0:
            raise AssertionError(f"{argv} exited {out.returncode}: {out.stdout}{out.stderr}")
        return out

    def sh(self, script: str, check: bool = True) -> str:
        return self.run("sh", "-c", script, check=check).stdout

    def netjail(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.run(self.python, "-m", "netjail.app.cli", *args, check=False, timeout=timeout)

    def popen(self, *argv: str) -> subprocess.Popen[str]:
        pipe = subprocess.PIPE
        proc = subprocess.Popen(self.argv(*argv), stdout=pipe, stderr=pipe, text=True, start_new_session=True)
        self._spawned.append(proc)
        return proc

    def cgroup_of(self, pid: int) -> str:
        """A process's cgroup2 path as the container sees it (pid: a container PID)."""
        text = self.run("cat", f"/proc/{pid}/cgroup").stdout
        return next(line[3:] for line in text.splitlines() if line.startswith("0::"))

    def stop(self) -> None:
        for proc in self._spawned:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        if self.nspawn.poll() is None:
            self.nspawn.send_signal(signal.SIGTERM)  # nspawn asks the container's systemd to halt
            try:
                # its final "SIGTERM to remaining processes" may wait 10 s for a process of the
                # namespace: killing its PID 1 ends every process in it at once
                self.nspawn.wait(3)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                try:
                    self.nspawn.wait(10)
                except subprocess.TimeoutExpired:
                    self.nspawn.kill()
                    self.nspawn.wait(5)
        _remove_tree(self.cgroup)
        # on a hybrid host nspawn mirrors its cgroups in the v1 name=systemd hierarchy too, at
        # the same path: they outlive the container unless removed here
        if (mirror := _systemd_v1_mount()) is not None:
            session = mirror / self.cgroup.parent.name
            if (session / self.cgroup.name).is_dir():
                _remove_tree(session / self.cgroup.name)
            with contextlib.suppress(OSError):
                session.rmdir()
        # nspawn leaves its propagation directory behind when the root is the host's "/"
        shutil.rmtree(f"/run/systemd/nspawn/propagate/{self.machine}", ignore_errors=True)


def boot(cgroup2: Path, parent: str, log: Path) -> SystemdHost:
    machine = f"nj{os.getpid()}"
    cgroup = cgroup2 / parent / "nspawn"
    cgroup.mkdir(parents=True, exist_ok=True)
    argv = [
        "systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--volatile=yes", "-D", "/",
        f"--machine={machine}", "--private-network",
        f"--bind={CHECKOUT}", f"--bind-ro={sys.base_prefix}",
        "--bind-ro=/etc/alternatives", "--bind-ro=/etc/ld.so.cache",
        "--bind-ro=/etc/passwd", "--bind-ro=/etc/group",
        "--boot", "systemd.firstboot=off", "systemd.mask=systemd-networkd-wait-online.service",
        "systemd.unit=basic.target",  # the host's own services (databases ...) stay off
    ]  # fmt: skip
    # nspawn runs in the session's own cgroup (it puts the container below where it starts)
    script = f'echo $$ > "{cgroup}/cgroup.procs" && exec "$@"'
    with log.open("wb") as out:
        nspawn = subprocess.Popen(
            ["sh", "-c", script, "sh", *argv], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    host = SystemdHost(nspawn, 0, cgroup, machine, log)
    try:
        host.pid = _wait_for_init(nspawn, log)
        end = time.monotonic() + BOOT_TIMEOUT
        while host.run("systemctl", "is-active", "basic.target", check=False).stdout.strip() != "active":
            if time.monotonic() > end or nspawn.poll() is not None:
                raise RuntimeError(f"container did not reach basic.target: {log.read_text()[-2000:]}")
            time.sleep(0.2)
    except BaseException:
        host.stop()
        raise
    return host


def _wait_for_init(nspawn: subprocess.Popen[bytes], log: Path) -> int:
    """The container's PID 1 as the host sees it: nspawn's child running systemd."""
    end = time.monotonic() + BOOT_TIMEOUT
    while time.monotonic() < end:
        if nspawn.poll() is not None:
            raise RuntimeError(f"systemd-nspawn exited {nspawn.returncode}: {log.read_text()[-2000:]}")
        for task in Path(f"/proc/{nspawn.pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                with contextlib.suppress(OSError):
                    if Path(f"/proc/{child}/comm").read_text().strip() == "systemd":
                        return int(child)
        time.sleep(0.05)
    raise RuntimeError("systemd-nspawn started no systemd")


def _systemd_v1_mount() -> Path | None:
    """Where the v1 name=systemd hierarchy is mounted (hybrid hosts), None when it is not."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields = right.split()
        if fields[:1] == ["cgroup"] and "name=systemd" in fields[-1].split(","):
            return Path(left.split()[4])
    return None


def _remove_tree(top: Path) -> None:
    """The container's cgroups, once its killed processes have left them."""
    end = time.monotonic() + 5
    while top.is_dir():
        for cgroup in sorted(top.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if cgroup.is_dir():
                with contextlib.suppress(OSError):
                    cgroup.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()
        if time.monotonic() > end:
            raise RuntimeError(f"cgroup {top} still busy after the container stopped")
        time.sleep(0.05)
