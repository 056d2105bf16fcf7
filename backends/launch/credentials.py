"""Who a jailed command runs as (the user, their groups, the jail's group, resolved up front),
and the minimal environment it starts with.

Everything that needs NSS (getpwnam, getgrouplist) happens here, in the parent: a forked child of
a threaded process must not call into NSS (nscd/sssd clients take locks a dead thread may hold).
The child only applies the numbers with setgroups/setresgid/setresuid.
"""

from __future__ import annotations

import os
import pwd
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from netjail.backends import hardening
from netjail.backends.errors import BadInput, InsufficientPrivilege


@dataclass(frozen=True, slots=True)
class Credentials:
    """The identity to switch to before exec. `gid` is the primary (real, effective, saved and
    filesystem) group: xt_owner's `--gid-owner` matches a socket opener's fsgid, so a jail group
    must be the primary group for a plain `-m owner --gid-owner` rule to match."""

    user: str
    uid: int
    gid: int
    groups: tuple[int, ...]  # supplementary groups: the user's own, as initgroups(3) would set
    home: str
    change: bool  # apply them in the child (root); False: an unprivileged caller runs as itself
    shell: str = "/bin/sh"


def default_user() -> str:
    """The invoking user: SUDO_USER when root came from sudo, else whoever runs netjail."""
    sudo_user = os.environ.get("SUDO_USER")
    if os.geteuid() == 0 and sudo_user and sudo_user != "root":
        return sudo_user
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def lookup_user(user: str) -> pwd.struct_passwd:
    """A user by name, or by number when no user has that name."""
    try:
        return pwd.getpwnam(user)
    except KeyError:
        pass
    if user.isdigit():
        try:
            return pwd.getpwuid(int(user))
        except KeyError:
            pass
    raise BadInput(f"no such user: {user!r}")


def resolve(user: str | None = None, gid: int | None = None) -> Credentials:
    """Credentials for `user` (default: the invoking user), with `gid` as primary group if given.

    Switching to anyone else, or to another group, needs root: InsufficientPrivilege otherwise.
    """
    if gid is not None and (isinstance(gid, bool) or not 0 <= gid < 2**32 - 1):
        raise BadInput(f"bad group id {gid!r}")
    pw = lookup_user(user or default_user())
    primary = pw.pw_gid if gid is None else gid
    try:
        groups = tuple(sorted(set(os.getgrouplist(pw.pw_name, pw.pw_gid))))
    except OSError:
        groups = (pw.pw_gid,)
    if os.geteuid() != 0:
        # Unprivileged: only "as yourself, with your own groups" is possible, and changes nothing.
        if pw.pw_uid != os.geteuid():
            raise InsufficientPrivilege(f"running a command as {pw.pw_name} needs root")
        if gid is not None and gid != os.getegid():
            raise InsufficientPrivilege(f"running a command with group {gid} needs root")
    return Credentials(
        user=pw.pw_name,
        uid=pw.pw_uid,
        gid=primary,
        groups=groups,
        home=pw.pw_dir,
        change=os.geteuid() == 0,
        shell=pw.pw_shell or "/bin/sh",
    )


# A PATH with nothing a user can write to: root's own PATH may hold ~/bin or ".".
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Taken from netjail's environment when set: how the terminal and the messages look, nothing
# that changes what a program loads or runs (LD_*, PYTHON*, PERL5LIB, IFS ... need --keep-env).
PASSED = frozenset({"TERM", "COLORTERM", "LANG", "LANGUAGE"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_env_names(names: Sequence[str]) -> tuple[str, ...]:
    """--keep-env names, refused (BadInput) unless they are plain variable names."""
    for name in names:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise BadInput(f"--keep-env {name!r}: not an environment variable name")
    return tuple(names)


def environment(
    creds: Credentials,
    keep: Sequence[str] = (),
    extra: Mapping[str, str] | None = None,
    source: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The minimal environment of a launched command: a safe PATH; HOME, USER, LOGNAME and SHELL
    of the target user; TERM, LANG and LC_* from `source` (default: the environment netjail was
    started with, before hardening.harden() sanitised ours); the variables named in `keep` from
    `source`; then `extra` as given."""
    src = hardening.caller().environ if source is None else source
    env = {
        "PATH": ROOT_PATH if creds.uid == 0 else SAFE_PATH,
        "HOME": creds.home,
        "USER": creds.user,
        "LOGNAME": creds.user,
        "SHELL": creds.shell,
    }
    env.update((k, v) for k, v in src.items() if k in PASSED or k.startswith("LC_"))
    env.update((k, src[k]) for k in check_env_names(keep) if k in src)
    if extra:
        env.update(extra)
    return env
