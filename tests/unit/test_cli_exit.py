"""The CLI exits without Python's teardown (app/cli.py exit_now) only when nothing is pending:
output complete, exit code kept, other threads and exit handlers still honoured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_buffered_output_is_complete_and_the_code_kept() -> None:
    out = run(
        "import sys\n"
        "from netjail.app.cli import exit_now\n"
        "sys.stdout.write('x' * 200_000)\n"
        "sys.stdout.buffer.write(b'|tail')\n"
        "sys.stderr.write('note')\n"
        "exit_now(3)\n"
    )
    assert out.returncode == 3
    assert out.stdout == "x" * 200_000 + "|tail" and out.stderr == "note"


def test_a_running_thread_and_an_exit_handler_get_the_normal_exit(tmp_path: Path) -> None:
    done, handled = tmp_path / "thread", tmp_path / "atexit"
    out = run(
        "import atexit, pathlib, threading, time\n"
        "from netjail.app.cli import exit_now\n"
        f"threading.Thread(target=lambda: (time.sleep(0.3), pathlib.Path({str(done)!r}).touch())).start()\n"
        "exit_now(0)\n"
    )
    assert out.returncode == 0 and done.exists()
    out = run(
        "import atexit, pathlib\n"
        "from netjail.app.cli import exit_now\n"
        f"atexit.register(pathlib.Path({str(handled)!r}).touch)\n"
        "exit_now(4)\n"
    )
    assert out.returncode == 4 and handled.exists()


def test_ps_json_through_a_pipe_is_whole_and_a_reader_that_leaves_is_no_error() -> None:
    cmd = [sys.executable, "-m", "netjail.app.cli", "ps", "--all", "--json"]
    whole = subprocess.run(cmd, capture_output=True, timeout=60)
    assert whole.returncode == 0 and isinstance(json.loads(whole.stdout), list)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(10)
    proc.stdout.close()  # `netjail ps --json | head -c 10`
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 0
    assert "Traceback" not in err and "Exception" not in err and "Broken pipe" not in err
