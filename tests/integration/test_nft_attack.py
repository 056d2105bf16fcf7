"""The attack review of the nftables backend (helper G): what a local user or a jailed process can
make of the text netjail writes and of the cgroup tree it reads back. Real kernel, real packets."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from netjail.backends.firewall.base import JailRules, Match
from netjail.backends.firewall.matches import canonical_rules
from netjail.backends.firewall.nft_backend import NftFirewall
from netjail.backends.firewall.nft_elements import cgroup_paths
from netjail.backends.system.cgroupfs import find_cgroup2

pytestmark = [pytest.mark.root, pytest.mark.backend("nftables")]

NOBODY = 65534
# joins the cgroup it is given, then sends datagrams; prints how many the kernel let out
SENDER = (
    "import os, socket, sys\n"
    "open(os.path.join(sys.argv[1], 'cgroup.procs'), 'w').write(str(os.getpid()))\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "ok = 0\n"
    "for _ in range(50):\n"
    "    try:\n"
    "        s.sendto(b'x', ('127.0.0.1', int(sys.argv[2]))); ok += 1\n"
    "    except OSError:\n"
    "        pass\n"
    "print(ok)\n"
)


@pytest.fixture
def fw() -> Iterator[NftFirewall]:
    firewall = NftFirewall()
    firewall.reset()
    yield firewall
    firewall.reset()


@pytest.fixture
def base() -> Iterator[Path]:
    found = find_cgroup2()
    assert found is not None
    top = Path(found.path) / f"nj-nft-attack-{os.getpid()}"
    top.mkdir()
    yield top
    for p in sorted((d for d in top.rglob("*") if d.is_dir()), key=lambda p: -len(p.parts)):
        p.rmdir()
    top.rmdir()


def rel(path: Path) -> str:
    found = find_cgroup2()
    assert found is not None
    return "/" + str(path.relative_to(found.path))


def cgroup_jail(*paths: str) -> JailRules:
    return JailRules("web", out_selectors=tuple(Match(f, cgroup=p) for p in paths for f in ("inet", "inet6")))


def test_a_unit_cgroup_named_with_systemd_escapes_is_jailed(fw: NftFirewall, base: Path) -> None:
    """systemd escapes unit names with a backslash (wg-quick@wg\\x2d0.service), which nft reads as
    itself between quotes: a process of such a unit was refused a cgroup jail (BadInput)."""
    unit = base / "wg-quick@wg\\x2d0.service"
    unit.mkdir()
    wanted = cgroup_jail(rel(unit))
    fw.sync_jail(wanted)
    assert canonical_rules(fw.read_jail("web")) == canonical_rules(wanted)  # type: ignore[arg-type]
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(0.3)
    with rx:
        out = subprocess.run(
            [sys.executable, "-c", SENDER, str(unit), str(rx.getsockname()[1])],
            capture_output=True,
            text=True,
            check=True,
        )
        got = 0
        try:
            while rx.recv(16):
                got += 1
        except TimeoutError:
            pass
    assert (int(out.stdout), got) == (0, 0)


def test_a_users_cgroup_flood_does_not_slow_naming_the_maps(fw: NftFirewall, base: Path) -> None:
    """A user given a cgroup subtree (systemd's user@UID.service) fills it with 50,000 cgroups;
    a member cgroup of netjail's is deleted, so the next change names an id the tree no longer
    holds. The walk read every user cgroup under netjail's lock (0.9-1.5 s here at 50,000, 1.6-2.9 s
    at 100,000: a few hundred thousand outlast the 10 s every other netjail waits for the lock)."""
    mine = base / "netjail" / "web"
    (mine / "1").mkdir(parents=True)
    (mine / "2").mkdir()
    user = base / "user@65534.service"
    user.mkdir()
    for f in ("", "cgroup.procs", "cgroup.subtree_control"):
        os.chown(user / f if f else user, NOBODY, NOBODY)
    make = (
        "import os, sys\n"
        "for i in range(50):\n"
        "    os.mkdir(f'{sys.argv[1]}/{i}')\n"
        "    for j in range(100):\n"
        "        os.mkdir(f'{sys.argv[1]}/{i}/{j}')\n"
    )
    who = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    subprocess.run([*who, "/usr/bin/python3", "-c", make, str(user)], check=True, cwd="/")
    one, two = rel(mine / "1"), rel(mine / "2")
    fw.sync_jail(cgroup_jail(one, two))
    (mine / "1").rmdir()
    fw._verified_gen = None
    got = fw.read_jail("web")
    assert got is not None and {m.cgroup for m in got.out_selectors} == {two}
    # the walk never goes into the user's tree, however big they make it (5,000 here): a cgroup
    # in there is not found even when asked for by its id
    found = find_cgroup2()
    assert found is not None
    assert cgroup_paths(found.path, {(user / "7" / "7").stat().st_ino}) == {}
    fw.sync_jail(cgroup_jail(two))
    assert canonical_rules(fw.read_jail("web")) == canonical_rules(cgroup_jail(two))  # type: ignore[arg-type]
