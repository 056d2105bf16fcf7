"""cgroup2 mount discovery and /proc/PID/cgroup parsing, on text captured from real machines."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from netjail.backends.errors import NoSuchProcess
from netjail.backends.system.cgroupfs import (
    Cgroup2Mount,
    find_cgroup2,
    parse_cgroup,
    parse_mountinfo,
    read_cgroup,
)

# This machine (Linux 6.18): v1 controllers beside cgroup2 at /sys/fs/cgroup/unified.
HYBRID = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""

# Debian 12 with systemd: cgroup2 only, with an optional "shared:N" field before the separator.
PURE = """\
22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
28 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro
30 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate
"""

# cgroup v1 only (CentOS 7 style): no cgroup2 anywhere.
V1_ONLY = """\
25 18 0:21 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755
26 25 0:22 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw,name=systemd
29 25 0:25 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,memory
"""

# A container sharing the host's cgroup namespace: only its own subtree is bind-mounted.
CONTAINER_SUBTREE = (
    "1071 1066 0:26 /system.slice/docker-3f1c.scope /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime"
    " - cgroup2 cgroup ro,nsdelegate\n"
)


def test_hybrid_mount_of_this_machine() -> None:
    assert parse_mountinfo(HYBRID) == Cgroup2Mount("/sys/fs/cgroup/unified", "hybrid", "/")


def test_pure_mount_with_optional_fields() -> None:
    assert parse_mountinfo(PURE) == Cgroup2Mount("/sys/fs/cgroup", "pure", "/")


def test_no_cgroup2_mount() -> None:
    assert parse_mountinfo(V1_ONLY) is None
    assert parse_mountinfo("") is None


def test_subtree_bind_mount_reports_its_root() -> None:
    mount = parse_mountinfo(CONTAINER_SUBTREE)
    assert mount == Cgroup2Mount("/sys/fs/cgroup", "pure", "/system.slice/docker-3f1c.scope")


def test_whole_hierarchy_mount_preferred_over_a_bind_mounted_subtree() -> None:
    text = (
        "50 27 0:38 /netjail /srv/jails rw - cgroup2 cgroup2 rw\n"
        "51 27 0:38 / /mnt/cg\\040two rw - cgroup2 cgroup2 rw\n"  # "\040": a space in the path
    )
    assert parse_mountinfo(text) == Cgroup2Mount("/mnt/cg two", "pure", "/")


def test_dir_of_maps_a_cgroup_path_under_the_mount() -> None:
    mount = Cgroup2Mount("/sys/fs/cgroup/unified", "hybrid")
    assert mount.dir_of("/netjail/web") == Path("/sys/fs/cgroup/unified/netjail/web")
    assert mount.dir_of("/") == Path("/sys/fs/cgroup/unified")


def test_parse_cgroup_takes_the_v2_line_of_a_hybrid_host() -> None:
    text = "9:name=systemd:/\n4:memory:/process_api/1a04\n1:cpu:/\n0::/netjail/web\n"
    assert parse_cgroup(text) == "/netjail/web"
    assert parse_cgroup("0::/\n") == "/"
    assert parse_cgroup("4:memory:/x\n") == ""


def test_read_cgroup_of_this_process_matches_proc() -> None:
    v2 = [line for line in Path("/proc/self/cgroup").read_text().splitlines() if line.startswith("0::")]
    assert read_cgroup(os.getpid()) == v2[0][3:]
    assert read_cgroup() == read_cgroup(os.getpid())


def test_read_cgroup_of_a_gone_process() -> None:
    gone = max(int(Path("/proc/sys/kernel/pid_max").read_text()) - 1, 2)
    while Path(f"/proc/{gone}").exists():
        gone -= 1
    with pytest.raises(NoSuchProcess):
        read_cgroup(gone)


def test_find_cgroup2_reads_this_machine() -> None:
    # This machine is hybrid; docs/kernel-facts.md, intro.
    assert find_cgroup2() == Cgroup2Mount("/sys/fs/cgroup/unified", "hybrid", "/")


def test_the_firewall_finds_the_same_cgroup2_mount(tmp_path: Path) -> None:
    """iptc_backend checks that a rule's cgroup exists under the mount cgroupfs names: a bind
    mount of one group listed first (containers) and escaped mount points included."""
    from netjail.backends.firewall.iptc_backend import cgroup2_mount

    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "40 31 0:38 /docker/abc /srv/cg rw,relatime - cgroup2 cgroup2 rw\n"
        "41 31 0:38 / /sys/fs/cgroup/un\\011ified rw,relatime - cgroup2 cgroup2 rw\n"
    )
    found = find_cgroup2(mountinfo)
    assert found is not None and found.path == "/sys/fs/cgroup/un\tified"
    assert cgroup2_mount(mountinfo) == Path(found.path)
