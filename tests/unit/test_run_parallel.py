"""tests/run_parallel.py's plan: which files run in which backend's pass, and what counts as a
file that passed."""

from __future__ import annotations

from pathlib import Path

from tests import run_parallel
from tests.run_parallel import Job, Outcome, jobs_for

BACKENDS = ["iptables", "nftables"]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_each_file_runs_once_per_backend_unless_marked(tmp_path: Path) -> None:
    plain = write(tmp_path, "test_plain.py", "def test_x() -> None: ...\n")
    one = write(tmp_path, "test_one.py", 'import pytest\npytestmark = pytest.mark.backend("iptables")\n')
    two = write(tmp_path, "test_two.py", "pytestmark = [pytest.mark.backend('iptables', 'nftables')]\n")
    every = write(tmp_path, "test_every.py", "pytestmark = pytest.mark.every_backend\n")
    inner = write(tmp_path, "test_inner.py", '@pytest.mark.backend("nftables")\ndef test_y() -> None: ...\n')
    unit = tmp_path / "unit"
    unit.mkdir()
    jobs = jobs_for([unit, plain, one, two, every, inner], BACKENDS)
    assert jobs == [
        Job(unit, None),
        Job(plain, "iptables"),
        Job(plain, "nftables"),
        Job(one, "iptables"),
        Job(two, "iptables"),
        Job(two, "nftables"),
        Job(every, None),
        Job(inner, "iptables"),  # a test's own marker: deselected in the pass, by conftest
        Job(inner, "nftables"),
    ]


def test_a_backend_pass_sets_both_names_of_the_variable() -> None:
    env = run_parallel.backend_env("nftables")
    assert env["NETJAIL_BACKEND"] == env["NETJAIL_FIREWALL"] == "nftables"


def test_only_a_pass_that_deselected_everything_may_exit_5() -> None:
    def outcome(backend: str | None, code: int, summary: str) -> Outcome:
        return Outcome("tests/x.py", backend, code, 1.0, f"===== {summary} in 0.10s =====\n")

    assert outcome("nftables", 5, "3 deselected").ok
    assert not outcome("nftables", 5, "no tests ran").ok
    assert not outcome(None, 5, "3 deselected").ok
    assert not outcome("iptables", 1, "1 failed, 2 passed").ok
    assert outcome("iptables", 0, "2 passed, 1 deselected").ok


def test_a_green_runs_durations_are_keyed_like_the_jobs_that_read_them() -> None:
    """A run with no failure writes each file's duration under its job's key (it crashed there
    once: only an all-green run reaches that line)."""
    job = run_parallel.Job(run_parallel.ROOT / "tests" / "integration" / "test_run.py", "nftables")
    done = run_parallel.Outcome("tests/integration/test_run.py", "nftables", 0, 1.0, "")
    assert done.key == job.key
    once = run_parallel.Outcome("tests/unit", None, 0, 1.0, "")
    assert once.key == run_parallel.Job(run_parallel.ROOT / "tests" / "unit", None).key
