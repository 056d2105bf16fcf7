"""Who a jailed command runs as: the user, their groups, and the jail's group, resolved up front.

Everything that needs NSS (getpwnam, getgrouplist) happens here, in the parent: a forked child of
a threaded process must not call into NSS (nscd/sssd clients take locks a dead thread may hold).
The child only applies the numbers with setgroups/setresgid/setresuid.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping
from dataclasses import dataclass

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
    )


def environment(creds: Credentials, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (default: ours) with HOME, USER and LOGNAME of the target user when switching, so
    a command run back as the sudo user does not write into root's home."""
    env = dict(os.environ if base is None else base)
    if creds.uid != os.geteuid():
        env.update(HOME=creds.home, USER=creds.user, LOGNAME=creds.user)
    return env
