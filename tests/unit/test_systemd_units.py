"""Which unit a cgroup path belongs to (systemd_units), from paths systemd 252 makes."""

from __future__ import annotations

import pytest
from netjail.backends.doctor.checks import pid1_check
from netjail.backends.system import systemd_units

USER = "/user.slice/user-1000.slice/user@1000.service"  # a user's own systemd (delegated)


@pytest.mark.parametrize(
    ("cgroup", "unit"),
    [
        ("/system.slice/nginx.service", "nginx.service"),
        ("/user.slice/user-0.slice/session-3.scope", "session-3.scope"),
        (
            "/user.slice/user-1000.slice/user@1000.service/app.slice/app-firefox-1234.scope",
            "app-firefox-1234.scope",
        ),
        (f"{USER}/init.scope", "init.scope"),
        ("/system.slice/docker.service/payload", "docker.service"),  # a delegated unit's own cgroup
        # netjail's directory inside a unit: a jail may be called "x.service", the unit is the unit
        ("/system.slice/a.service/netjail-net-4026531840/x.service/12.34", "a.service"),
        ("/netjail/net-4026531840/x.service/12.34", None),
        ("/system.slice", None),
        ("/", None),
        ("", None),
    ],
)
def test_unit_name(cgroup: str, unit: str | None) -> None:
    assert systemd_units.unit_name(cgroup) == unit


def test_doctor_says_whether_systemd_manages_the_tree_and_what_is_delegated() -> None:
    assert pid1_check("process_api").detail.endswith("no cgroup manager to share the tree with")
    booted = pid1_check("systemd", True, ["user@0.service", "docker.service"])
    assert booted.status == "ok"
    assert "systemd manages the cgroup tree" in booted.detail
    assert booted.detail.endswith("delegated units (Delegate=): docker.service, user@0.service")
    assert pid1_check("systemd", True, []).detail.endswith("no unit is delegated (Delegate=)")
