"""Run the suite as several pytest sessions at once, each test file in a network namespace of
its own, longest files first, once per firewall backend.

    python tests/run_parallel.py [-j N] [--backend B]...           the whole suite (`make test`)
    python tests/run_parallel.py [-j N] [--backend B] ARGS...      one ordinary session, pytest ARGS

Most integration tests wait on the kernel and on real processes (packets counted at a receiver,
a watcher period, a container booting), not on the CPU, so files run side by side finish in a
fraction of the serial time even on 2 cores. Each file gets a fresh `unshare --net` with lo up:
its rules, ipsets and namespaces cannot meet another file's; cgroup parents, named namespaces and
state directories are per process and per test already (tests/conftest.py). A file is the unit
because its module and session fixtures (the systemd container) belong to it.

Every integration and TUI file runs once per backend of the registry (firewall/registry.py), with
NETJAIL_BACKEND (and the older NETJAIL_FIREWALL) naming it: the same receiver-side assertions
prove each backend. tests/unit runs once (no kernel), and so does a file marked
`pytestmark = pytest.mark.every_backend` (it parametrizes over the backends itself: the firewall
contract). A file marked `pytestmark = pytest.mark.backend("NAME")` is about one backend's
internals and runs only in that backend's pass; single tests so marked are deselected in the other
passes by tests/conftest.py, and the summary counts them per backend.

Every job must pass; a file that collects nothing (pytest's exit 5) fails the run like any
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
_FILE_BACKEND = re.compile(r"^pytestmark\b.*pytest\.mark\.backend\(([^)]*)\)", re.M)
_FILE_EVERY = re.compile(r"^pytestmark\b.*pytest\.mark\.every_backend\b", re.M)
BACKEND_ENVS = ("NETJAIL_BACKEND", "NETJAIL_FIREWALL")  # the new name, and the old one until renamed


def registered_backends() -> list[str]:
    """The registry's backends, read as plain data (no rule library is loaded)."""
    from netjail.backends.firewall import registry

    return sorted(registry.BACKENDS)


@dataclass(frozen=True)
class Job:
    path: Path
    backend: str | None  # None: once, with the environment as it is

    @property
    def key(self) -> str:
        rel = str(self.path.relative_to(ROOT))
        return f"{self.backend}:{rel}" if self.backend else rel


@dataclass
class Outcome:
    path: str
    backend: str | None
    code: int
    seconds: float
    output: str

    @property
    def key(self) -> str:
        """The job's key in the durations file (Job.key): the next run's order."""
        return f"{self.backend}:{self.path}" if self.backend else self.path

    @property
    def ok(self) -> bool:
        """Passed, or every test of it belongs to other backends' passes (pytest's exit 5 after
        deselecting them all): that file ran in those passes."""
        deselected_only = re.fullmatch(r"\d+ deselected", self.summary) is not None
        return self.code == 0 or (self.code == NO_TESTS and self.backend is not None and deselected_only)

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


def jobs_for(files: list[Path], backends: list[str]) -> list[Job]:
    """Each file once per backend, except tests/unit, files marked every_backend, and files
    marked for some backends only (those run in their passes alone)."""
    jobs: list[Job] = []
    for path in files:
        text = "" if path.is_dir() else path.read_text()
        only = _FILE_BACKEND.search(text)
        if path.is_dir() or _FILE_EVERY.search(text):
            jobs.append(Job(path, None))
        elif only:
            wanted = set(re.findall(r"[\"']([\w-]+)[\"']", only.group(1)))
            jobs += [Job(path, b) for b in backends if b in wanted]
        else:
            jobs += [Job(path, b) for b in backends]
    return jobs


def ordered(jobs: list[Job]) -> list[Job]:
    """Longest first, so the last job to start is a short one."""
    try:
        known: dict[str, float] = json.loads(DURATIONS.read_text())
    except (OSError, ValueError):
        known = {}

    def weight(job: Job) -> float:
        p = job.path
        sources = sorted(p.rglob("test_*.py")) if p.is_dir() else [p]
        guess = sum(0.2 if p.is_dir() else 2.0 for s in sources for _ in _TEST_DEF.findall(s.read_text()))
        return known.get(job.key, guess)

    return sorted(jobs, key=weight, reverse=True)


def backend_env(backend: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if backend:
        env.update(dict.fromkeys(BACKEND_ENVS, backend))
    return env


def run_job(job: Job) -> Outcome:
    rel = str(job.path.relative_to(ROOT))
    cmd = in_private_netns([sys.executable, "-m", "pytest", "-q", "-ra", "-p", "no:cacheprovider", rel])
    start = time.monotonic()
    done = subprocess.run(
        cmd,
        cwd=ROOT,
        env=backend_env(job.backend),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return Outcome(rel, job.backend, done.returncode, time.monotonic() - start, done.stdout)


_COUNTED = re.compile(r"(\d+) (passed|failed|errors?|xfailed|xpassed|skipped|deselected)")


def totals(outcomes: list[Outcome]) -> str:
    counted: dict[str, int] = {}
    for o in outcomes:
        for n, what in _COUNTED.findall(o.summary):
            counted[what.rstrip("s")] = counted.get(what.rstrip("s"), 0) + int(n)
    return ", ".join(f"{n} {what}" for what, n in sorted(counted.items())) or "nothing ran"


def label(o: Outcome) -> str:
    return f"[{o.backend}] {o.path}" if o.backend else o.path


def run_all(workers: int, backends: list[str]) -> int:
    jobs = ordered(jobs_for(test_files(), backends))
    if not jobs:
        print("run_parallel: no test files found", file=sys.stderr)
        return NO_TESTS
    start = time.monotonic()
    outcomes: list[Outcome] = []
    print(
        f"run_parallel: {len(jobs)} jobs (backends: {', '.join(backends)}), {workers} at a time,"
        " each in its own network namespace",
        flush=True,
    )
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in as_completed([pool.submit(run_job, j) for j in jobs]):
            o = future.result()
            outcomes.append(o)
            status = "ok" if o.ok else "FAIL"
            print(f"  {status:<4} {label(o)}: {o.summary} ({o.seconds:.0f} s)", flush=True)
    failed = [o for o in outcomes if not o.ok]
    for o in failed:
        print(f"\n===== {label(o)} (exit {o.code}{', no tests collected' if o.code == NO_TESTS else ''})")
        print(o.output.rstrip())
    for o in outcomes:  # a skip is a defect here: say it, whatever the exit code
        for line in o.output.splitlines():
            if line.startswith(("SKIPPED", "XFAIL")):
                print(f"{label(o)}: {line}")
    print()
    for name in [None, *backends]:  # one line per pass: a failure in any fails the run
        mine = [o for o in outcomes if o.backend == name]
        if mine:
            bad = sum(not o.ok for o in mine)
            cpu = sum(o.seconds for o in mine)
            verdict = f"{bad} of {len(mine)} jobs FAILED" if bad else f"{len(mine)} jobs ok"
            print(f"run_parallel: {name or 'once'}: {totals(mine)}; {verdict} ({cpu:.0f} s of job time)")
    print(f"run_parallel: {totals(outcomes)} in {time.monotonic() - start:.0f} s wall")
    if not failed:
        DURATIONS.parent.mkdir(exist_ok=True)
        DURATIONS.write_text(json.dumps({o.key: round(o.seconds, 1) for o in outcomes}, indent=1))
    return 1 if failed else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-j", "--jobs", type=int, default=int(os.environ.get("NETJAIL_TEST_JOBS", "0")) or None)
    p.add_argument(
        "--backend",
        action="append",
        help="a backend's pass only (repeatable; default: every registered backend;"
        " with pytest ARGS: the backend of that one session)",
    )
    args, rest = p.parse_known_args()
    known = registered_backends()
    chosen: list[str] = args.backend or known
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        print(
            f"run_parallel: no such backend {', '.join(unknown)} (known: {', '.join(known)})", file=sys.stderr
        )
        return 2
    if rest:  # a chosen subset: one ordinary session
        if args.backend and len(chosen) > 1:
            print("run_parallel: one --backend for a session with pytest ARGS", file=sys.stderr)
            return 2
        cmd = in_private_netns([sys.executable, "-m", "pytest", "-q", "-ra", *rest])
        return subprocess.run(cmd, cwd=ROOT, env=backend_env(args.backend and chosen[0])).returncode
    return run_all(args.jobs or (os.cpu_count() or 1) + 1, chosen)


if __name__ == "__main__":
    sys.exit(main())
