"""Engine calls that launch commands already jailed (netns, gid, seccomp), block whole users
and groups (owner), and relaunch a running process jailed.

A launch jail is registered before any kernel object exists, with the launching netjail as a
`launcher` member: if netjail dies before the command starts, the next command finds that
member gone and removes the jail, its group, namespace and rules.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import signal
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from netjail.backends import identity, policy, watcher
from netjail.backends.errors import BadInput, NetjailError, ProtectedProcess
from netjail.backends.firewall.base import MAX_JAIL_NAME
from netjail.backends.jail_rules import desired_rules
from netjail.backends.launch import groups, netns
from netjail.backends.launch.spawn import ForegroundSignals, exit_status, spawn_jailed
from netjail.backends.model import (
    BlockResult,
    LaunchRequest,
    LaunchResult,
    Member,
    OwnerBlockRequest,
    Process,
)
from netjail.backends.state import ACTIVE, LAUNCHER, JailState, MemberState
from netjail.backends.strategies import LAUNCH_STRATEGIES

if TYPE_CHECKING:
    from netjail.backends.engine import Engine

Stdio = int | IO[Any] | None


def _name(base: str, suffix: str) -> str:
    clean = "".join(c if c.isalnum() or c in "_.-" else "_" for c in base).lstrip("-._") or "jail"
    return clean[: MAX_JAIL_NAME - len(suffix)] + suffix


class Launches:
    """The launch side of the Engine (which delegates to it): uses the engine's store,
    firewall, inventory and reconciliation."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ---- launch ----------------------------------------------------------------------------

    def launch(
        self,
        req: LaunchRequest,
        *,
        stdin: Stdio = None,
        stdout: Stdio = None,
        stderr: Stdio = None,
        start_new_session: bool = False,
    ) -> tuple[LaunchResult, subprocess.Popen[bytes]]:
        """Start req.argv jailed and return at once (the TUI; `run` waits)."""
        jail = self._prepare_launch(req)
        try:
            proc = spawn_jailed(
                req.argv,
                user=req.user,
                netns=jail.netns if jail and jail.netns else None,
                gid=jail.gid if jail and jail.strategy == "gid" else None,
                seccomp=req.strategy == "seccomp",
                cwd=req.cwd,
                env=dict(req.env) if req.env is not None else None,
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                start_new_session=start_new_session,
            )
        except BaseException:
            if jail is not None:
                self._drop_launch_jail(jail.name)
            raise
        name = jail.name if jail else ""
        if jail is not None:
            self._record_launched(jail.name, proc.pid)
            if self.engine.spawn_watcher:
                watcher.ensure_running(self.engine.store.dir)
        return LaunchResult(name, req.strategy, proc.pid), proc

    def run(self, req: LaunchRequest) -> LaunchResult:
        """Run req.argv jailed in the foreground (terminal passed through) and return its exit
        code; the jail goes when its last process has exited, unless req.keep."""
        with ForegroundSignals() as signals:
            result, proc = self.launch(req)
            signals.attach(proc)
            code = exit_status(proc.wait())
        if result.jail:
            with contextlib.suppress(NetjailError):
                self.engine.reconcile()  # removes the jail now when nothing of it is left
        return replace(result, exit_code=code)

    def _validate(self, req: LaunchRequest) -> tuple[list[str], str]:
        """Everything about a launch that can be refused without touching anything:
        (allow-list, jail name)."""
        if req.strategy not in LAUNCH_STRATEGIES:
            raise BadInput(
                f"strategy {req.strategy!r} cannot launch a command (one of: {', '.join(LAUNCH_STRATEGIES)})"
            )
        if not req.argv:
            raise BadInput("no command given: netjail run --STRATEGY -- CMD ARGS...")
        allow = [str(a) for a in policy.parse_allow_list(req.allow)]
        if req.strategy == "seccomp" and allow:
            raise BadInput(
                "seccomp refuses every network socket: it has no allow-list (use --netns or --gid)"
            )
        if req.strategy == "gid" and req.gid is not None and not req.force:
            self._refuse_shared_gid(req.gid)
        name = (
            policy.validate_jail_name(req.jail)
            if req.jail
            else _name(Path(req.argv[0]).name, f"-{os.getpid()}")
        )
        if not (req.strategy == "seccomp" and not self.engine.privileged()):
            self.engine._require_root(f"netjail run --{req.strategy}")
        return allow, name

    def _refuse_shared_gid(self, gid: int) -> None:
        """--gid N drops everything N sends, now and later: N must belong to the jail alone."""
        _refuse_own_owner("group", str(gid), None, gid)
        users = [p for p in self.engine.inventory.snapshot(all_processes=True).processes if p.gid == gid]
        if users:
            shown = ", ".join(f"{p.pid} ({p.name})" for p in users[:5])
            raise BadInput(
                f"group {gid} is in use by running processes ({shown}): their traffic would "
                "be dropped too; pick an unused group, or --force"
            )

    def _prepare_launch(self, req: LaunchRequest) -> JailState | None:
        allow, name = self._validate(req)
        if req.strategy == "seccomp" and not self.engine.privileged():
            return None  # works without root; the registry (root's) simply does not list it
        me = identity.current(os.getpid())
        with self.engine.store.locked():
            reg = self.engine._load()
            if name in reg.jails:
                raise BadInput(f"jail {name!r} exists already: pick another --jail")
            jail = JailState(
                name,
                req.strategy,
                allow=allow,
                allow_loopback=req.allow_loopback,
                keep=req.keep,
                created_at=time.time(),
                members=[MemberState(me.pid, me.start_time, "netjail", status=LAUNCHER)],
            )
            if req.strategy == "gid":
                jail.gid = req.gid
                jail.group_created = req.gid is None and groups.group_gid(groups.group_name(name)) is None
            if req.strategy == "netns":
                jail.netns = netns.netns_name(name)
                jail.veth = netns.host_iface(name) if allow else ""
            reg.jails[name] = jail
            self.engine.store.save(reg)  # journal first: a crash from here on is undone by the next command
            try:
                self._create_launch_objects(jail, bool(allow))
            except BaseException:
                self.engine.notes += self.engine._reconciler().release(
                    reg, jail, list(jail.members), remove_jail=True
                )
                self.engine.store.save(reg)
                raise
            self.engine.store.save(reg)
        return jail

    def _create_launch_objects(self, jail: JailState, link: bool) -> None:
        if jail.strategy == "gid" and jail.gid is None:
            jail.gid, _ = groups.ensure_group(jail.name)
        if jail.strategy == "netns":
            made = netns.create_netns(jail.name, veth=link)
            if made.forwarding_before is not None:
                jail.forwarding_before = [made.forwarding_before.ipv4, made.forwarding_before.ipv6]
        rules = desired_rules(jail, {})
        if rules is not None:
            self.engine.firewall.sync_jail(rules)

    def _record_launched(self, name: str, pid: int) -> None:
        """The command runs: it holds the jail now, instead of the launching netjail."""
        stat = identity.read_stat(pid)
        with self.engine.store.locked():
            reg = self.engine.store.load()
            jail = reg.jails.get(name)
            if jail is None:
                return
            jail.members = [m for m in jail.members if m.status != LAUNCHER]
            if stat is not None:
                jail.members.append(
                    MemberState(pid, stat.start_time, stat.name, "/", root=pid, status=ACTIVE)
                )
            else:
                jail.members.append(MemberState(pid, 0, "", "/", root=pid, status=ACTIVE))
            self.engine.store.save(reg)

    def _drop_launch_jail(self, name: str) -> None:
        with self.engine.store.locked():
            reg = self.engine.store.load()
            if (jail := reg.jails.get(name)) is not None:
                self.engine.notes += self.engine._reconciler().release(
                    reg, jail, list(jail.members), remove_jail=True
                )
                self.engine.store.save(reg)

    # ---- whole users and groups ------------------------------------------------------------

    @staticmethod
    def resolve_owner(user: str | None, group: str | None) -> tuple[str, int | None, int | None]:
        """(label, uid, gid) for --user NAME|UID or --group NAME|GID."""
        if (user is None) == (group is None):
            raise BadInput("give exactly one of --user and --group")
        try:
            if user is not None:
                pw = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
                return pw.pw_name, pw.pw_uid, None
            assert group is not None
            gr = grp.getgrgid(int(group)) if group.isdigit() else grp.getgrnam(group)
            return gr.gr_name, None, gr.gr_gid
        except KeyError:
            raise BadInput(f"no such {'user' if user is not None else 'group'}: {user or group!r}") from None

    def preview_owner(
        self, user: str | None = None, group: str | None = None, force: bool = False
    ) -> tuple[Process, ...]:
        """Every process the user/group block would affect right now (refused, like the block,
        for root and for netjail's own session unless force)."""
        label, uid, gid = self.resolve_owner(user, group)
        if not force:
            _refuse_own_owner("user" if uid is not None else "group", label, uid, gid)
        snap = self.engine.inventory.snapshot(all_processes=True)
        return tuple(
            p
            for p in snap.processes
            if (uid is not None and p.uid == uid) or (gid is not None and p.gid == gid)
        )

    def block_owner(self, req: OwnerBlockRequest, force: bool = False) -> BlockResult:
        label, uid, gid = self.resolve_owner(req.user, req.group)
        allow = policy.parse_allow_list(req.allow)
        kind = "user" if uid is not None else "group"
        name = policy.validate_jail_name(req.jail) if req.jail else _name(f"{kind}-{label}", "")
        if not force:
            _refuse_own_owner(kind, label, uid, gid)
        self.engine._require_root(f"blocking a {kind}")
        with self.engine.store.locked():
            reg = self.engine._load()
            if name in reg.jails:
                raise BadInput(f"jail {name!r} exists already: pick another --jail")
            procs = self.preview_owner(req.user, req.group, force=True)
            jail = JailState(
                name,
                "owner",
                allow=[str(a) for a in allow],
                allow_loopback=req.allow_loopback,
                uid=uid,
                gid=gid,
                created_at=time.time(),
                members=[
                    MemberState(p.pid, p.start_time, p.name, p.cgroup or "/", root=p.pid) for p in procs
                ],
            )
            jail.pre_inodes = [s.inode for p in procs for s in p.sockets]
            rules = desired_rules(jail, {p.pid: p.sockets for p in procs})
            assert rules is not None
            reg.jails[name] = jail
            self.engine.firewall.sync_jail(rules)  # one commit per table: either all of it or nothing
            self.engine.store.save(reg)
        if self.engine.spawn_watcher:
            watcher.ensure_running(self.engine.store.dir)
        sockets = sum(
            1 for m in rules.out_selectors + rules.in_selectors if m.uid_owner is None and m.gid_owner is None
        )
        return BlockResult(
            name,
            "owner",
            tuple(Member(p.pid, p.start_time, True, p.name) for p in procs),
            socket_rules=sockets,
        )

    # ---- relaunch --------------------------------------------------------------------------

    def relaunch(self, pid: int, start_time: int | None, req: LaunchRequest) -> LaunchResult:
        """Terminate a running process and start the same argv, cwd, environment and user under
        a launch strategy (the process cannot be moved into a netns alive, DESIGN.md fact 5)."""
        proc = self.engine.check_target(pid, start_time)
        if not proc.cmdline:
            raise BadInput(f"PID {pid} ({proc.name}) has no command line to start again")
        if not req.jail:  # named after the process it replaces: a TUI relaunches more than one
            req = replace(req, jail=_name(Path(proc.cmdline[0]).name, f"-{pid}"))
        _, name = self._validate(req if req.argv else replace(req, argv=proc.cmdline))
        if name in self.engine.store.load().jails:  # everything refusable, before killing it
            raise BadInput(f"jail {name!r} exists already: pick another jail name")
        cwd = _read_link(f"/proc/{pid}/cwd")
        env = _read_environ(pid)
        launch = replace(req, argv=proc.cmdline, cwd=cwd, env=env, user=proc.user or None)
        with os.fdopen(self.engine.store.open_log(name), "ab") as out:  # checked dir, O_NOFOLLOW
            _terminate(pid, proc.start_time)
            result, child = self.launch(
                launch, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
            )
        # we are its parent: reap it when it exits, or it lingers as a zombie
        threading.Thread(target=child.wait, name=f"reap-{child.pid}", daemon=True).start()
        return result


def _refuse_own_owner(kind: str, label: str, uid: int | None, gid: int | None) -> None:
    if uid == 0 or gid == 0:
        raise ProtectedProcess(
            f"refusing to block {kind} {label}: root runs the system (--force if you mean it)"
        )
    for pid in identity.ancestors():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        ids = {
            line.split(":")[0]: line.split()[1:]
            for line in status.splitlines()
            if line.startswith(("Uid:", "Gid:"))
        }
        if (uid is not None and str(uid) in ids.get("Uid", [])) or (
            gid is not None and str(gid) in ids.get("Gid", [])
        ):
            raise ProtectedProcess(
                f"refusing to block {kind} {label}: netjail's own session runs as it (--force if you mean it)"
            )


def _read_link(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _read_environ(pid: int) -> tuple[tuple[str, str], ...] | None:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    pairs = []
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep and key:
            pairs.append((key.decode(errors="surrogateescape"), value.decode(errors="surrogateescape")))
    return tuple(pairs)


def _terminate(pid: int, start_time: int, grace: float = 3.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; returns once the process is gone."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        end = time.monotonic() + wait
        while time.monotonic() < end:
            stat = identity.read_stat(pid)
            if stat is None or stat.start_time != start_time or stat.state == "Z":
                return
            time.sleep(0.02)
    raise NetjailError(f"PID {pid} did not exit after SIGKILL")
