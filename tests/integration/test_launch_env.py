"""Finding 7: a launched command starts in its user's home (or --cwd) with a minimal environment,
not in root's directory with root's environment. Through the real CLI, as nobody."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
from pathlib import Path
from typing import Any

from netjail.backends.launch import credentials

from tests.conftest import python_for

# What the command sees: where it is, what it can read from there, its environment.
_REPORT = """
import json, os
seen = {"cwd": os.getcwd(), "env": dict(os.environ)}
try:
    seen["secret"] = open("secret.txt").read()
except OSError as exc:
    seen["secret"] = exc.errno
print(json.dumps(seen))
"""

ROOTS = {"ROOT_API_TOKEN": "tok-123", "LD_PRELOAD": "/nonexistent/evil.so", "PYTHONPATH": "/tmp/x"}


def _root_only_workdir(tmp_path: Path) -> Path:
    """root's 0700 directory with an open (0755) directory inside holding a readable file: only a
    process already inside can read it."""
    outer = tmp_path / "root-only"
    outer.mkdir(mode=0o700)
    work = outer / "work"
    work.mkdir(mode=0o755)
    (work / "secret.txt").write_text("root's secret")
    (work / "secret.txt").chmod(0o644)
    return work


def _run(cwd: Path | None, *opts: str, user: str = "nobody") -> tuple[int, dict[str, Any], str]:
    """`netjail run --seccomp --user USER OPTS -- python -c REPORT`, started in `cwd` with root's
    environment plus ROOTS, as an operator's shell would start it."""
    argv = [python_for(user)[0], "-c", _REPORT]
    out = subprocess.run(
        [*python_for(None), "-m", "netjail.app.cli", "run", "--seccomp", "--user", user, *opts, "--", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, **ROOTS, "LANG": "C.UTF-8", "TERM": "xterm-test"},
    )
    lines = out.stdout.strip().splitlines()
    return out.returncode, json.loads(lines[-1]) if lines else {}, out.stderr


def test_command_starts_in_the_users_home_with_a_minimal_environment(tmp_path: Path) -> None:
    work = _root_only_workdir(tmp_path)
    rc, seen, err = _run(work)
    assert rc == 0, err
    assert seen["secret"] != "root's secret", "nobody read root's file through the inherited cwd"
    nobody = pwd.getpwnam("nobody")
    home = nobody.pw_dir if os.path.isdir(nobody.pw_dir) else "/"
    assert seen["cwd"] == home
    env = seen["env"]
    assert not set(ROOTS) & set(env), env
    assert env["PATH"] == credentials.SAFE_PATH
    assert (env["HOME"], env["USER"], env["LOGNAME"], env["SHELL"]) == (
        nobody.pw_dir,
        "nobody",
        "nobody",
        nobody.pw_shell,
    )
    assert env["LANG"] == "C.UTF-8" and env["TERM"] == "xterm-test"
    assert set(env) <= {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "TERM", "PWD", "LC_CTYPE"}


def test_keep_env_and_cwd(tmp_path: Path) -> None:
    work = _root_only_workdir(tmp_path)
    rc, seen, err = _run(work, "--keep-env", "ROOT_API_TOKEN", "--keep-env", "UNSET_X", "--cwd", "/tmp")
    assert rc == 0, err
    assert seen["cwd"] == "/tmp" and seen["env"]["ROOT_API_TOKEN"] == "tok-123"
    assert "UNSET_X" not in seen["env"] and "LD_PRELOAD" not in seen["env"]
    rc, seen, err = _run(None, user="root")  # root's own home, root's safe PATH
    assert rc == 0, err
    assert seen["cwd"] == pwd.getpwnam("root").pw_dir and seen["env"]["PATH"] == credentials.ROOT_PATH


def test_cwd_the_user_cannot_enter_and_bad_names_are_refused(tmp_path: Path) -> None:
    work = _root_only_workdir(tmp_path)
    rc, _, err = _run(None, "--cwd", str(work))
    ours = [line for line in err.splitlines() if not line.startswith("ERROR: ld.so")]  # LD_PRELOAD's
    assert rc == 2 and len(ours) == 1 and "as nobody" in ours[0] and "Traceback" not in err
    rc, _, err = _run(None, "--keep-env", "A=B")
    assert rc == 2 and "not an environment variable name" in err
