"""Integration tests touch the real kernel: they need root and a private network namespace.

`make test` provides both. Run outside them, every test here errors out (never skips): a core
test that silently skips is a defect, and iptables rules must never land in the machine's own
network namespace.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import CGROUP2, CGROUP_PARENT, in_private_netns, run_cli
from tests.integration.systemd_host import SystemdHost, boot


@pytest.fixture(autouse=True)
def _require_root_private_netns() -> None:
    if os.geteuid() != 0:
        pytest.fail("integration tests need root: run `make test`", pytrace=False)
    if not in_private_netns():
        pytest.fail("refusing to run in the machine's own network namespace: run `make test`", pytrace=False)


@pytest.fixture(autouse=True)
def _netjail_reset_after(state_dir: Path) -> Iterator[None]:
    """Whatever a test jailed is released, its rules and cgroups removed, its watcher stopped."""
    yield
    if state_dir.exists():
        out = run_cli("reset")
        assert out.returncode == 0, out.stderr


@pytest.fixture(scope="session")
def systemd_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SystemdHost]:
    """A container with systemd as PID 1, booted once per session (systemd_host.py)."""
    host = boot(CGROUP2, CGROUP_PARENT, tmp_path_factory.mktemp("nspawn") / "console.log")
    try:
        yield host
    finally:
        host.stop()
