"""Each command imports only what it runs (whole-process speed): checked in a fresh interpreter
started as the installed `netjail` starts (app/launcher.py: `python -I -S`, no .pth files)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from netjail.app import launcher
from netjail.backends.firewall import registry
from netjail.backends.system import identity

HEAVY = ("iptc", "pyroute2", "textual", "psutil")


def loaded_by(
    *argv: str,
    env: dict[str, str] | None = None,
    output: list[str] | None = None,
    dataclasses: list[str] | None = None,
) -> set[str]:
    """Modules present after `netjail ARGV` ran in a new interpreter (its output discarded, or
    appended to `output`)."""
    script = launcher.script(sys.executable, sysconfig.get_paths()["purelib"], launcher.package_root())
    preamble = script.split("\n", 1)[1].removesuffix("from netjail.app.cli import entry\nentry()\n")
    code = preamble + (
        "import contextlib, io, json, os, sys\n"
        "from netjail.app import cli\n"
        "out = sys.stdout = io.StringIO()\n"
        "with contextlib.suppress(SystemExit):\n"
        f"    cli.main({list(argv)!r})\n"
        "sys.stderr.write('OUTPUT ' + json.dumps(out.getvalue()) + '\\n')\n"
        "sys.stderr.write('MODULES ' + json.dumps(sorted(sys.modules)) + '\\n')\n"
        "made = sorted(f'{m.__name__}.{k}' for m in list(sys.modules.values())\n"
        "    if m.__name__.startswith('netjail') for k, v in vars(m).items()\n"
        "    if isinstance(v, type) and v.__module__ == m.__name__ and '__dataclass_fields__' in vars(v))\n"
        "sys.stderr.write('DATACLASSES ' + json.dumps(made) + '\\n')\n"
    )
    full = {**os.environ, **env} if env else None
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60, env=full
    )
    lines = {
        key: json.loads(value)
        for key, _, value in (ln.partition(" ") for ln in out.stderr.splitlines())
        if key in ("OUTPUT", "MODULES", "DATACLASSES")
    }
    if output is not None:
        output.append(lines["OUTPUT"])
    if dataclasses is not None:
        dataclasses.extend(lines["DATACLASSES"])
    return set(lines["MODULES"])


def top(mods: set[str]) -> set[str]:
    return {m.split(".")[0] for m in mods}


def test_ps_loads_no_firewall_no_netlink_library_no_tui() -> None:
    mods = loaded_by("ps", "--json")
    assert "netjail.backends.system.inventory" in mods  # it did take a snapshot
    assert not top(mods) & set(HEAVY), sorted(top(mods) & set(HEAVY))
    assert not {m for m in mods if m.startswith(("netjail.backends.firewall", "netjail.backends.launch"))}
    assert "netjail.backends.engine" not in mods and "netjail.backends.jails.reconcile" not in mods


@pytest.mark.parametrize("argv", [["ps", "--json"], ["counters", "--json"], ["--help"]], ids=" ".join)
def test_no_command_loads_typing_or_shutil(argv: list[str]) -> None:
    """typing is for the type checker only (`TYPE_CHECKING = False` blocks), and argparse's
    formatters get their width without shutil (app/cli.py): ~2 ms and ~1.5 ms a command."""
    mods = loaded_by(*argv)
    assert "typing" not in mods and "shutil" not in mods


def test_help_loads_no_engine_and_no_data_model() -> None:
    mods = loaded_by("--help")
    # hardening runs first in every command (docs/security.md §1): small, no data model
    allowed = {
        "netjail.backends.errors",
        "netjail.backends.hardening",
        "netjail.backends.system",  # the package: a docstring, nothing imported
        "netjail.backends.system.trusted_paths",
    }
    assert not {m for m in mods if m.startswith("netjail.backends.") and m not in allowed}
    assert "orjson" not in mods and "importlib.metadata" not in mods


def test_reading_counters_loads_no_python_iptables() -> None:
    """The counters are one raw table read per family: python-iptables (and libxtables) are for
    writing rules, and the launch code for launching."""
    mods = loaded_by("counters", "--json")
    assert registry.selected().counters_module in mods  # the backend in use's reader (NETJAIL_FIREWALL)
    assert "iptc" not in top(mods) and "netjail.backends.engine_launch" not in mods


def test_reading_counters_loads_no_firewall_interface() -> None:
    mods = loaded_by("counters", "--json")
    assert "netjail.backends.firewall.base" not in mods and "netjail.backends.firewall.matches" not in mods
    assert "orjson" not in mods  # small documents: json's C encoder (cli_output.dumps)
    assert "socket" not in mods  # _socket: socket.py builds its enums at import
    assert "netjail.backends.model_processes" not in mods  # no process or socket dataclasses


@pytest.mark.root
def test_list_with_a_fresh_watcher_reads_the_registry_and_loads_no_engine(tmp_path: Path) -> None:
    """`list` trusts a watcher that reconciled within FRESH_WATCHER: no engine, no
    python-iptables, no netlink library, no TUI (the reconciling case is the engine's)."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "state.json").write_text(
        json.dumps({"schema": 1, "jails": [{"name": "j1", "allow": ["10.0.0.0/8"]}]})
    )
    stand_in = subprocess.Popen(["sleep", "60"])  # a live process for watcher.pid to name
    try:
        me = identity.read_stat(stand_in.pid)
        assert me is not None
        (state / "watcher.pid").write_text(f"{me.pid} {me.start_time}\n")
        now = time.time()  # written a second ago, reconciled after: fresh (watcher.reconciled_within)
        os.utime(state / "state.json", (now - 1, now - 1))
        (state / "watcher.tick").touch()
        os.utime(state / "watcher.tick", (now - 0.5, now - 0.5))
        output: list[str] = []
        mods = loaded_by("list", "--json", env={"NETJAIL_STATE_DIR": str(state)}, output=output)
    finally:
        stand_in.kill()
        stand_in.wait()
    assert [j["name"] for j in json.loads(output[0])] == ["j1"]
    assert "netjail.backends.jails.views" in mods
    assert not top(mods) & set(HEAVY) - {"psutil"}, sorted(top(mods) & set(HEAVY))
    assert not mods & {
        "netjail.backends.engine",
        "netjail.backends.jails.reconcile",
        "netjail.backends.firewall.base",
    }
    assert "orjson" not in mods and "typing" not in mods
    assert "socket" not in mods and "netjail.backends.model_processes" not in mods
    assert "subprocess" not in mods and "signal" not in mods  # watcher.py imports them where used


@pytest.mark.parametrize("argv", [["ps", "--json"], ["counters", "--json"], ["--help"]], ids=" ".join)
def test_no_command_loads_openssl_for_a_hash(argv: list[str]) -> None:
    """hashlib loads OpenSSL's _hashlib (~2.5 ms a command): the rule-table digest uses the
    built-in _blake2, the netns interface name imports hashlib where it hashes."""
    mods = loaded_by(*argv)
    assert "_hashlib" not in mods and "hashlib" not in mods


def test_the_engine_loads_no_openssl_for_a_hash() -> None:
    """`block`, `unblock`, `reset` and `list` reconciling load the engine, the firewall backend
    and the launch code (bench/cli.py's block + first drop): none of them hashes with OpenSSL."""
    modules = (
        "netjail.backends.engine",
        "netjail.backends.jails.reconcile",
        "netjail.backends.firewall.iptc_backend",
        "netjail.backends.firewall.counters",
        "netjail.backends.firewall.nft_backend",
        "netjail.backends.firewall.nft_counters",
        "netjail.backends.launch.netns",
    )
    code = f"import json, sys\nfor m in {modules!r}: __import__(m)\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    mods = set(json.loads(out.stdout))
    assert "_hashlib" not in mods and "hashlib" not in mods


def test_counters_creates_only_the_dataclasses_its_output_is_made_of() -> None:
    """Each @dataclass compiles its generated methods at import (~1 ms a class on a busy
    machine): `counters` builds the model's jail types and the registry's, not the firewall
    decoder's layouts (plain classes, firewall/xt_layout.py)."""
    made: list[str] = []
    loaded_by("counters", "--json", dataclasses=made)
    assert "netjail.backends.model.JailCounters" in made  # it does see the ones it makes
    assert not [name for name in made if name.startswith("netjail.backends.firewall.")], made
    assert len(made) <= 10, made  # model: 6, jails.state: 3, hardening: 1


def launcher_preamble() -> str:
    """The installed `netjail`'s path setup (app/launcher.py), without its call of the CLI."""
    script = launcher.script(sys.executable, sysconfig.get_paths()["purelib"], launcher.package_root())
    return script.split("\n", 1)[1].removesuffix("from netjail.app.cli import entry\nentry()\n")


@pytest.mark.root
def test_loading_python_iptables_lists_each_library_directory_once() -> None:
    """The system's library directory holds ~1,000 files: the library pins and the lookups of
    each library name (libc, libxtables, libip4tc, libip6tc, libxtwrapper) read one listing of
    it, not a glob each (firewall/iptc_import.names_in). Counted by the interpreter's audit
    events for every directory listing, the import system's own included."""
    code = launcher_preamble() + (
        "import collections, json, os, sys\n"
        "seen = collections.Counter()\n"
        "def hook(event, args):\n"
        "    if event in ('os.listdir', 'os.scandir') and args and not isinstance(args[0], int):\n"
        "        seen[os.path.realpath(os.fsdecode(args[0] or '.'))] += 1\n"
        "sys.addaudithook(hook)\n"
        "from netjail.backends.firewall.libiptc import load_iptc\n"
        "load_iptc()\n"
        "print(json.dumps(seen))\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    seen: dict[str, int] = json.loads(out.stdout)
    libdirs = [
        d for d in seen if os.path.isdir(d) and any(n.startswith("libxtables.so.") for n in os.listdir(d))
    ]
    assert libdirs, seen  # it did look there
    assert max(seen.values()) == 1, seen


@pytest.mark.root
def test_block_loads_no_launch_code_and_creates_only_its_own_types(
    cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    """`block PID` creates its own request and result types (model_block.py), not the other
    commands' (launch, unblock, reset, doctor: model_actions.py), and loads none of the launch
    code (reconciliation asks launch/netns_names.py which jails have a namespace)."""
    target = subprocess.Popen(["sleep", "60"])
    output: list[str] = []
    made: list[str] = []
    try:
        mods = loaded_by(
            "block", str(target.pid), "--jail", "imports", "--json", output=output, dataclasses=made
        )
    finally:
        target.kill()
        target.wait()
        cli("reset", "--json")
    assert json.loads(output[0])["jail"] == "imports"  # it did block
    assert "netjail.backends.model_block.BlockResult" in made  # it does see the ones it makes
    assert not [
        n for n in made if n.startswith(("netjail.backends.model_actions.", "netjail.backends.launch."))
    ]
    launch = {m for m in mods if m.startswith("netjail.backends.launch.")}
    assert launch == {"netjail.backends.launch.netns_names"}, sorted(launch)
    assert "netjail.backends.model_actions" not in mods
