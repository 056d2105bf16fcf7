"""Run the suite as several pytest sessions at once, each test file in a network namespace of
its own, longest files first.

    python tests/run_parallel.py [-j N]            the whole suite (what `make test` runs)
    python tests/run_parallel.py [-j N] ARGS...    one ordinary session with pytest ARGS

Most integration tests wait on the kernel and on real processes (packets counted at a receiver,
a watcher period, a container booting), not on the CPU, so files run side by side finish in a
fraction of the serial time even on 2 cores. Each file gets a fresh `unshare --net` with lo up:
its rules, ipsets and namespaces cannot meet another file's; cgroup parents, named namespaces and
state directories are per process and per test already (tests/conftest.py). A file is the unit
because its module and session fixtures (the systemd container) belong to it.

Every file must pass; a file that collects nothing (pytest's exit 5) fails the run like any
failure. The per-file durations of the last run (.pytest_cache/netjail-durations.json, local,
not in the repository) order the next one; without them the count of tests orders it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DURATIONS = ROOT / ".pytest_cache" / "netjail-durations.json"
NO_TESTS = 5
_SUMMARY = re.compile(r"^=*\s*(\d+ \w+.*) in [\d.]+s", re.M)
_TEST_DEF = re.compile(r"^(?:async )?def test_", re.M)


@dataclass
class Outcome:
    path: str
    code: int
    seconds: float
    output: str

    @property
    def summary(self) -> str:
        found = _SUMMARY.findall(self.output)
        return found[-1].strip("= ") if found else f"exit {self.code}, no summary"


def in_private_netns(cmd: list[str]) -> list[str]:
    return ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', *cmd]


def test_files() -> list[Path]:
    """The jobs: tests/unit as one (pure logic, fast: a session each would cost more to start
    than to run), every other test file on its own."""
    unit = ROOT / "tests" / "unit"
    files = [p for p in (ROOT / "tests").rglob("test_*.py") if unit not in p.parents]
    return ([unit] if unit.is_dir() else []) + sorted(files)


def ordered(files: list[Path]) -> list[Path]:
    """Longest first, so the last file to start is a short one."""
    try:
        known: dict[str, float] = json.loads(DURATIONS.read_text())
    except (OSError, ValueError):
        known = {}

    def weight(p: Path) -> float:
        rel = str(p.relative_to(ROOT))
        sources = sorted(p.rglob("test_*.py")) if p.is_dir() else [p]
        guess = sum(0.2 if p.is_dir() else 2.0 for s in sources for _ in _TEST_DEF.findall(s.read_text()))
        return known.get(rel, guess)

    return sorted(files, key=weight, reverse=True)


def run_file(path: Path) -> Outcome:
    rel = str(path.relative_to(ROOT))
    cmd = in_private_netns([sys.executable, "-m", "pytest", "-q", "-ra", "-p", "no:cacheprovider", rel])
    start = time.monotonic()
    done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return Outcome(rel, done.returncode, time.monotonic() - start, done.stdout)


def run_all(jobs: int) -> int:
    files = ordered(test_files())
    if not files:
        print("run_parallel: no test files found", file=sys.stderr)
        return NO_TESTS
    start = time.monotonic()
    outcomes: list[Outcome] = []
    print(f"run_parallel: {len(files)} jobs, {jobs} at a time, each in its own network namespace", flush=True)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for future in as_completed([pool.submit(run_file, f) for f in files]):
            o = future.result()
            outcomes.append(o)
            status = "ok" if o.code == 0 else "FAIL"
            print(f"  {status:<4} {o.path}: {o.summary} ({o.seconds:.0f} s)", flush=True)
    failed = [o for o in outcomes if o.code != 0]
    for o in failed:
        print(f"\n===== {o.path} (exit {o.code}{', no tests collected' if o.code == NO_TESTS else ''})")
        print(o.output.rstrip())
    for o in outcomes:  # a skip is a defect here: say it, whatever the exit code
        for line in o.output.splitlines():
            if line.startswith(("SKIPPED", "XFAIL")):
                print(f"{o.path}: {line}")
    counted = r"(\d+) (passed|failed|errors?|xfailed|xpassed|skipped)"
    with_numbers = [m for o in outcomes for m in re.findall(counted, o.summary)]
    totals: dict[str, int] = {}
    for n, what in with_numbers:
        totals[what.rstrip("s")] = totals.get(what.rstrip("s"), 0) + int(n)
    words = ", ".join(f"{n} {what}" for what, n in sorted(totals.items()))
    print(f"\nrun_parallel: {words or 'nothing ran'} in {time.monotonic() - start:.0f} s wall")
    if not failed:
        DURATIONS.parent.mkdir(exist_ok=True)
        DURATIONS.write_text(json.dumps({o.path: round(o.seconds, 1) for o in outcomes}, indent=1))
    return 1 if failed else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-j", "--jobs", type=int, default=int(os.environ.get("NETJAIL_TEST_JOBS", "0")) or None)
    args, rest = p.parse_known_args()
    if rest:  # a chosen subset: one ordinary session
        cmd = in_private_netns([sys.executable, "-m", "pytest", "-q", "-ra", *rest])
        return subprocess.run(cmd, cwd=ROOT).returncode
    return run_all(args.jobs or (os.cpu_count() or 1) + 1)


if __name__ == "__main__":
    sys.exit(main())
