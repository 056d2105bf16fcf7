"""Parsing and validation behind the launch dialog's fields (pure: unit-tested on plain text).

Each check returns the parsed value or raises FieldError with one line naming what is wrong.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shlex
import shutil
from collections.abc import Collection
from pathlib import Path

from netjail.backends.errors import BadInput
from netjail.backends.jails import names as jail_names


class FieldError(ValueError):
    """One line for the user, shown under the field."""


def parse_command(text: str) -> tuple[str, ...]:
    """Split like a shell would (quotes, backslashes), without running one."""
    try:
        argv = tuple(shlex.split(text))
    except ValueError as exc:
        raise FieldError(f"command: {str(exc).lower()}") from None
    if not argv:
        raise FieldError("type the command to run, e.g. curl -s https://example.org")
    return argv


def check_executable(argv0: str, path: str | None = None) -> None:
    """The program exists and can be executed (found on PATH when it has no slash)."""
    if "/" in argv0:
        if not os.path.isfile(argv0):
            raise FieldError(f"command not found: {argv0}")
        if not os.access(argv0, os.X_OK):
            raise FieldError(f"not executable: {argv0}")
        return
    if shutil.which(argv0, path=path if path is not None else os.environ.get("PATH", os.defpath)) is None:
        raise FieldError(f"command not found on PATH: {argv0}")


def check_user(text: str) -> str:
    """A user name, or a number that is a uid."""
    user = text.strip()
    if not user:
        raise FieldError("run-as user: empty (type a user name)")
    try:
        pwd.getpwnam(user)
        return user
    except KeyError:
        pass
    if user.isdigit():
        try:
            pwd.getpwuid(int(user))
            return user
        except KeyError:
            pass
    raise FieldError(f"no such user: {user!r}")


def check_jail_name(text: str) -> str | None:
    """None: the default name (derived from the command)."""
    name = text.strip()
    if not name:
        return None
    try:
        return jail_names.check_jail_name(name)
    except BadInput as exc:
        raise FieldError(str(exc)) from None


def default_jail_name(argv0: str, taken: Collection[str]) -> str:
    """`<program>-<N>`, the first N not in use: two launches of one program get two jails."""
    for n in itertools.count(1):
        name = jail_names.derive_jail_name(Path(argv0).name, f"-{n}")
        if name not in taken:
            return name
    raise AssertionError("unreachable")
