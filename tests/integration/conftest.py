"""Integration tests touch the real kernel: they need root and a private network namespace.

`make test` provides both. Run outside them, every test here errors out (never skips): a core
test that silently skips is a defect, and iptables rules must never land in the machine's own
network namespace.
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import in_private_netns


@pytest.fixture(autouse=True)
def _require_root_private_netns() -> None:
    if os.geteuid() != 0:
        pytest.fail("integration tests need root: run `make test`", pytrace=False)
    if not in_private_netns():
        pytest.fail("refusing to run in the machine's own network namespace: run `make test`",
                    pytrace=False)
