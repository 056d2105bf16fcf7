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
import shlex
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from netjail.backends.errors import BadInput, NetjailError, ProtectedProcess
from netjail.backends.jails import policy, watcher
from netjail.backends.jails.names import check_jail_name, derive_jail_name
from netjail.backends.jails.rules import desired_rules
from netjail.backends.jails.state import ACTIVE, LAUNCHER, JailState, MemberState, StrategyName
from netjail.backends.jails.strategies import LAUNCH_STRATEGIES, strategy
from netjail.backends.jails.strategies.owner import OwnerState
from netjail.backends.launch import credentials, logs, relaunch_target
from netjail.backends.launch.relaunch_target import Target
from netjail.backends.launch.spawn import run_foreground, spawn_jailed
from netjail.backends.model import (
    BlockResult,
    LaunchRequest,
    LaunchResult,
    Member,
    OwnerBlockRequest,
    Process,
)
from netjail.backends.system import identity

if TYPE_CHECKING:
    from netjail.backends.engine import Engine

Stdio = int | IO[Any] | None
LINKS = ("pasta", "veth")


class Launches:
    """The launch side of the Engine (which delegates to it): uses the engine's store,
    firewall, inventory and reconciliation."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._filtered = False  # a launch wrote firewall rules (run then notes what they cover)

    # ---- launch ----------------------------------------------------------------------------

    def launch(
        self,
        req: LaunchRequest,
        *,
        stdin: Stdio = None,
        stdout: Stdio = None,
        stderr: Stdio = None,
        ctty: int | None = None,
        detached: bool = False,
    ) -> tuple[LaunchResult, subprocess.Popen[bytes]]:
        """Start req.argv jailed, in a session of its own, and return at once (the TUI; `run`
        waits). `detached`: stdin from /dev/null, output to the jail's log under the state
        directory (its path in the result), whatever stdio says."""
        log = self._open_log(req, None) if detached else None
        return self._launch(req, stdin, stdout, stderr, ctty, log, None)

    def log_path(self, jail: str) -> Path:
        return logs.log_path(self.engine.store.dir, check_jail_name(jail))

    def _open_log(self, req: LaunchRequest, target: Target | None) -> tuple[str, int]:
        """(path, fd) of the log a background launch writes to, opened before anything happens."""
        name = _jail_name(req)
        header = (
            f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} netjail "
            f"{'relaunch' if target else 'launch'} [{req.strategy}] jail {name}: "
            f"{shlex.join(target.argv if target else req.argv)}\n"
        )
        path, fd = logs.open_log(self.engine.store, name, header)
        return str(path), fd

    def _launch(
        self,
        req: LaunchRequest,
        stdin: Stdio,
        stdout: Stdio,
        stderr: Stdio,
        ctty: int | None,
        log: tuple[str, int] | None,
        target: Target | None,
    ) -> tuple[LaunchResult, subprocess.Popen[bytes]]:
        """`log`: (path, fd) from _open_log, closed here, whatever happens."""
        jail: JailState | None = None
        notes: list[str] = []
        try:
            jail = self._prepare_launch(req, notes)
            if log is not None:
                stdin, stdout, stderr = subprocess.DEVNULL, log[1], log[1]
            gid = strategy(jail.strategy).launch_gid(jail) if jail else None
            if target is not None and gid is None:
                gid = target.gid
            proc = spawn_jailed(
                target.argv if target else req.argv,
                user=req.user,
                netns=strategy(jail.strategy).launch_netns(jail) if jail else None,
                gid=gid,
                seccomp=strategy(req.strategy).spawn_seccomp,
                cwd=None if target else req.cwd,
                preferred_cwd=target.cwd if target else None,
                env=dict(req.env) if req.env is not None else None,
                keep_env=req.keep_env,
                executable=target.exe if target else None,
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                ctty=ctty,
            )
        except BaseException:
            if jail is not None:
                self._drop_launch_jail(jail.name)
            raise
        finally:
            if log is not None:
                os.close(log[1])
        if jail is not None:
            self._record_launched(jail.name, proc.pid)
            if self.engine.spawn_watcher:
                watcher.ensure_running(self.engine.store.dir)
        path = log[0] if log else ""
        result = LaunchResult(jail.name if jail else "", req.strategy, proc.pid, log=path, notes=tuple(notes))
        return result, proc

    def run(self, req: LaunchRequest) -> LaunchResult:
        """Run req.argv jailed in the foreground and return its exit code: netjail's terminal is
        never the command's (a relayed pty when interactive, see launch.terminal); the jail goes
        when its last process has exited, unless req.keep."""
        started: list[LaunchResult] = []

        def start(stdin: Stdio, stdout: Stdio, stderr: Stdio, ctty: int | None) -> subprocess.Popen[bytes]:
            result, proc = self.launch(req, stdin=stdin, stdout=stdout, stderr=stderr, ctty=ctty)
            started.append(result)
            return proc

        code = run_foreground(start)
        (result,) = started
        coverage = self.engine.coverage_notes() if self._filtered else []
        after: list[str] = []
        if result.jail:
            with contextlib.suppress(NetjailError):
                after = self.engine.reconcile()  # removes the jail now when nothing of it is left
        # what the launch said (host-wide changes) is still news, and what its rules cover
        said = [n for n in result.notes if n not in after] + after
        said[:0] = [n for n in coverage if n not in said]
        own = f"jail {result.jail!r} removed"  # expected once the command is done: not news
        notes = tuple(n for n in said if not n.startswith(own))
        return replace(result, exit_code=code, notes=notes)

    def _validate(self, req: LaunchRequest) -> tuple[list[str], str]:
        """Everything about a launch that can be refused without touching anything:
        (allow-list, jail name)."""
        if req.strategy not in LAUNCH_STRATEGIES:
            raise BadInput(
                f"strategy {req.strategy!r} cannot launch a command (one of: {', '.join(LAUNCH_STRATEGIES)})"
            )
        if not req.argv:
            raise BadInput("no command given: netjail run --STRATEGY -- CMD ARGS...")
        credentials.check_env_names(req.keep_env)
        allow = [str(a) for a in policy.parse_allow_list(req.allow)]
        if req.link not in ("", *LINKS):
            raise BadInput(f"unknown link {req.link!r} (one of: {', '.join(LINKS)})")
        kind = strategy(req.strategy)
        kind.check_launch(self, req, allow)
        name = _jail_name(req)
        if kind.launch_needs_root or self.engine.privileged():
            self.engine.require_root(f"netjail run --{req.strategy}")
        return allow, name

    def refuse_shared_gid(self, gid: int) -> None:
        """--gid N drops everything N sends, now and later: N must belong to the jail alone."""
        _refuse_own_owner("group", str(gid), None, gid)
        users = [p for p in self.engine.inventory.snapshot(all_processes=True).processes if p.gid == gid]
        if users:
            shown = ", ".join(f"{p.pid} ({p.name})" for p in users[:5])
            raise BadInput(
                f"group {gid} is in use by running processes ({shown}): their traffic would "
                "be dropped too; pick an unused group, or --force"
            )

    def _prepare_launch(self, req: LaunchRequest, notes: list[str]) -> JailState | None:
        allow, name = self._validate(req)
        if not strategy(req.strategy).launch_needs_root and not self.engine.privileged():
            return None  # works without root; the registry (root's) simply does not list it
        me = identity.current(os.getpid())
        with self.engine.store.locked():
            reg, drift = self.engine.load_reconciled()
            notes += drift
            if name in reg.jails:
                raise BadInput(f"jail {name!r} exists already: pick another --jail")
            jail = JailState(
                name,
                StrategyName(req.strategy),
                allow=allow,
                allow_loopback=req.allow_loopback,
                keep=req.keep,
                created_at=time.time(),
                members=[MemberState(me.pid, me.start_time, "netjail", status=LAUNCHER)],
            )
            strategy(req.strategy).launch_state(jail, req, reg, allow)
            reg.jails[name] = jail
            self.engine.store.save(reg)  # journal first: a crash from here on is undone by the next command
            try:
                notes += self._create_launch_objects(jail, bool(allow))
            except BaseException:
                self.engine.reconciler().release(  # its notes go with the error raised
                    reg, jail, list(jail.members), remove_jail=True
                )
                self.engine.store.save(reg)
                raise
            self.engine.store.save(reg)
        return jail

    def _create_launch_objects(self, jail: JailState, link: bool) -> list[str]:
        kind = strategy(jail.strategy)
        notes = kind.create_launch_objects(self, jail, link)
        rules = desired_rules(jail, {})
        if rules is not None:  # before a link starts: its first packet already meets the allow-list
            self.engine.firewall.sync_jail(rules)
            self._filtered = True
        kind.after_launch_rules(self, jail)
        return notes

    def filterable(self) -> tuple[str, ...]:
        """The address families the firewall filters here (a netns link carries only those)."""
        from netjail.backends.firewall.families import usable

        found = self.engine.firewall.coverage()
        return usable(found) if found else ("inet", "inet6")

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
                # the launch failed: its error is what is said, not the release's notes
                self.engine.reconciler().release(reg, jail, list(jail.members), remove_jail=True)
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
        name = check_jail_name(req.jail) if req.jail else derive_jail_name(f"{kind}-{label}")
        if not force:
            _refuse_own_owner(kind, label, uid, gid)
        self.engine.require_root(f"blocking a {kind}")
        with self.engine.store.locked():
            reg, notes = self.engine.load_reconciled()
            if name in reg.jails:
                raise BadInput(f"jail {name!r} exists already: pick another --jail")
            procs = self.preview_owner(req.user, req.group, force=True)
            jail = JailState(
                name,
                StrategyName.OWNER,
                allow=[str(a) for a in allow],
                allow_loopback=req.allow_loopback,
                created_at=time.time(),
                members=[
                    MemberState(p.pid, p.start_time, p.name, p.cgroup or "/", root=p.pid) for p in procs
                ],
                detail=OwnerState(uid=uid, gid=gid),
            )
            jail.pre_inodes = [s.inode for p in procs for s in p.sockets]
            rules = desired_rules(jail, {p.pid: p.sockets for p in procs})
            assert rules is not None
            reg.jails[name] = jail
            self.engine.firewall.sync_jail(rules)  # one commit per table: either all of it or nothing
            notes += self.engine.coverage_notes()
            self.engine.store.save(reg)
        if self.engine.spawn_watcher:
            watcher.ensure_running(self.engine.store.dir)
        sockets = sum(
            1 for m in rules.out_selectors + rules.in_selectors if m.uid_owner is None and m.gid_owner is None
        )
        return BlockResult(
            name,
            StrategyName.OWNER,
            tuple(Member(p.pid, p.start_time, True, p.name) for p in procs),
            socket_rules=sockets,
            set_entries=len(rules.set_entries),
            notes=tuple(notes),
        )

    # ---- relaunch --------------------------------------------------------------------------

    def relaunch(
        self, pid: int, start_time: int | None, req: LaunchRequest, force: bool = False
    ) -> LaunchResult:
        """Terminate a running process and start its program again under a launch strategy (it
        cannot be moved into a netns alive, docs/kernel-facts.md #5): the same arguments, as its real
        user and group, in its directory when that user may enter it (else their home), with the
        minimal launch environment; output to the jail's log. A setuid/setgid process (real and
        effective ids differ) is refused unless `force`, which runs it as the real user."""
        proc = self.engine.check_target(pid, start_time)
        with relaunch_target.hold(pid, proc.start_time) as target:
            if target.setid and not force:
                raise BadInput(
                    f"PID {pid} ({proc.name}) runs with ids it did not start with ({target.setid}): "
                    "a relaunch would run it as its real user; --force to do that"
                )
            if not req.jail:  # named after the process it replaces: a TUI relaunches more than one
                req = replace(req, jail=derive_jail_name(Path(target.exe).name, f"-{pid}"))
            req = replace(req, argv=target.argv, user=_user_name(target.uid), cwd=None)
            _, name = self._validate(req)
            if name in self.engine.store.load().jails:  # everything refusable, before killing it
                raise BadInput(f"jail {name!r} exists already: pick another jail name")
            if credentials.resolve(req.user).uid != target.uid:
                raise BadInput(f"PID {pid}: uid {target.uid} is not user {req.user}'s")
            log = self._open_log(req, target)
            try:
                target.terminate()
            except BaseException:
                os.close(log[1])
                raise
            result, child = self._launch(req, None, None, None, None, log, target)
        # we are its parent: reap it when it exits, or it lingers as a zombie
        threading.Thread(target=child.wait, name=f"reap-{child.pid}", daemon=True).start()
        return result


def _jail_name(req: LaunchRequest) -> str:
    if req.jail:
        return check_jail_name(req.jail)
    return derive_jail_name(Path(req.argv[0]).name, f"-{os.getpid()}")


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        raise BadInput(f"uid {uid} has no user entry: cannot start a command as it") from None


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
