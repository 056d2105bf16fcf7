"""Every external program the suite and the benchmarks run is one the Makefile installs.

`make system` installs SYSTEM_TOOLS (each `program:debian-package`) and `make test` refuses to
start when one is missing; this test keeps that list honest. It reads tests/ and bench/ with
`ast` and collects the programs they start: the first element of an argv handed to
subprocess/os.exec*/shutil.which (directly, through a variable, or through a module's own
wrapper such as `sh(*args)`), with names resolved through module constants and for-loops
(`for tool in TOOLS.values()`, `f"{tool}-save"`, `*cmd.split()` over a tuple of command lines).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNNERS = {"run", "Popen", "check_output", "check_call", "call", "which"}
RUNNERS |= {"execvp", "execv", "execvpe", "execlp", "spawnvp"}
RUNNERS |= {"spawn_jailed", "run_jailed"}  # netjail's launcher under test runs their argv
CLI_RUNNERS = {"cli", "run_cli"}  # `cli("run", ..., "--", PROGRAM, ...)`
PASS_ON = {"nsenter", "unshare", "setpriv", "flock", "env", "timeout"}  # run the argv they are given
PROGRAM = re.compile(r"^[a-z][a-z0-9_.+-]*$")


def makefile_tools() -> dict[str, str]:
    text = (ROOT / "Makefile").read_text()
    joined = text.replace("\\\n", " ")
    line = next(ln for ln in joined.splitlines() if ln.startswith("SYSTEM_TOOLS"))
    pairs = line.split(":=", 1)[1].split()
    assert all(p.count(":") == 1 for p in pairs), f"SYSTEM_TOOLS entries are program:package: {pairs}"
    return dict(p.split(":") for p in pairs)


def _own_nodes(scope: ast.AST) -> Iterator[ast.AST]:
    """The nodes of a scope, not those of the functions defined inside it."""
    todo = list(ast.iter_child_nodes(scope))
    while todo:
        node = todo.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            todo.extend(ast.iter_child_nodes(node))


class _Scope:
    """Names bound in one module or function: the strings and argv literals they may hold."""

    def __init__(self, node: ast.AST, parent: _Scope | None) -> None:
        self.parent = parent
        self.values: dict[str, set[str]] = {}
        self.argvs: dict[str, list[ast.expr]] = {}
        self.dicts: dict[str, list[ast.Dict]] = {}
        for n in _own_nodes(node):
            if isinstance(n, ast.Assign):
                for target in n.targets:
                    if isinstance(target, ast.Name):
                        self.values.setdefault(target.id, set()).update(self.strings(n.value))
                        if isinstance(n.value, (ast.List, ast.Tuple)):
                            self.argvs.setdefault(target.id, []).append(n.value)
                        if isinstance(n.value, ast.Dict):
                            self.dicts.setdefault(target.id, []).append(n.value)
        for n in _own_nodes(node):
            if isinstance(n, (ast.For, ast.comprehension)):
                self._bind_loop(n.target, n.iter)

    def lookup(self, name: str, table: str) -> list[object] | set[str]:
        scope: _Scope | None = self
        while scope is not None:
            found = getattr(scope, table).get(name)
            if found:
                return found  # type: ignore[no-any-return]
            scope = scope.parent
        return set()

    def _bind_loop(self, target: ast.expr, it: ast.expr) -> None:
        if isinstance(target, ast.Name):
            self.values.setdefault(target.id, set()).update(self._elements(it))
        elif isinstance(target, ast.Tuple) and isinstance(it, ast.Call):
            # `for key, tool in TOOLS.items()`: the last name takes the values
            last = target.elts[-1]
            if isinstance(last, ast.Name) and isinstance(it.func, ast.Attribute) and it.func.attr == "items":
                self.values.setdefault(last.id, set()).update(self._dict_values(it.func.value))

    def _dict_values(self, node: ast.expr) -> set[str]:
        if not isinstance(node, ast.Name):
            return set()
        return {s for d in self.lookup(node.id, "dicts") for v in d.values for s in self.strings(v)}  # type: ignore[attr-defined]

    def _elements(self, it: ast.expr) -> set[str]:
        if isinstance(it, (ast.Tuple, ast.List, ast.Set)):
            return {s for e in it.elts for s in self.strings(e)}
        if isinstance(it, ast.Name):
            return set(self.lookup(it.id, "values"))  # type: ignore[arg-type]
        if isinstance(it, ast.Call) and isinstance(it.func, ast.Attribute) and it.func.attr == "values":
            return self._dict_values(it.func.value)
        return set()

    def strings(self, node: ast.expr) -> set[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return {node.value}
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return {s for e in node.elts for s in self.strings(e)}
        if isinstance(node, ast.Name):
            return set(self.lookup(node.id, "values"))  # type: ignore[arg-type]
        if isinstance(node, ast.JoinedStr):
            # f"{tool}-save": every value of `tool`, then the literal parts
            out = {""}
            for part in node.values:
                if isinstance(part, ast.Constant):
                    out = {o + str(part.value) for o in out}
                elif isinstance(part, ast.FormattedValue):
                    vals = self.strings(part.value)
                    if not vals:
                        return set()
                    out = {o + v for o in out for v in vals}
            return out
        return set()

    def argv0(self, node: ast.expr) -> set[str]:
        if isinstance(node, (ast.List, ast.Tuple)):
            return self.first_word(node.elts)
        if isinstance(node, ast.Name):
            literals = self.lookup(node.id, "argvs")
            if literals:
                return {p for lit in literals for p in self.argv0(lit)}  # type: ignore[arg-type]
            return {s.split()[0] for s in self.strings(node) if s.strip()}
        if isinstance(node, ast.Constant) and isinstance(node.value, str):  # shutil.which("x")
            return {node.value}
        return set()

    def first_word(self, elts: list[ast.expr]) -> set[str]:
        """The program among an argv's first elements (a literal, a resolved name, or a
        `*cmd.split()` / `*other_argv` spread)."""
        for e in elts:
            if isinstance(e, ast.Starred):
                inner = e.value
                if (
                    isinstance(inner, ast.Call)
                    and isinstance(inner.func, ast.Attribute)
                    and inner.func.attr == "split"
                ):
                    return {s.split()[0] for s in self.strings(inner.func.value) if s.strip()}
                if isinstance(inner, ast.Name) and self.lookup(inner.id, "argvs"):
                    return self.argv0(inner)
                return set()  # e.g. *python_for(user): the interpreter
            if isinstance(e, (ast.List, ast.Tuple)):  # a wrapper's argv given as a list
                return self.argv0(e)
            strings = self.strings(e)
            return {s.split()[0] for s in strings if s.strip()}  # empty: sys.executable, a path ...
        return set()


def _after_dashes(node: ast.expr) -> set[str]:
    """`netjail run ... -- PROGRAM`: the program netjail is asked to start."""
    if not isinstance(node, (ast.List, ast.Tuple)):
        return set()
    words = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
    if "run" not in words or "--" not in words:
        return set()
    after = words[words.index("--") + 1 :]
    return {after[0]} if after and isinstance(after[0], str) else set()


def _wrapper_index(fn: ast.FunctionDef) -> int | None:
    """Where a function's argv starts among its arguments, when it hands its own
    (star-)argument to a runner, alone or inside a longer argv (`sh(*args)`, `in_netns(ns, *argv)`)."""
    params = [a.arg for a in fn.args.args]
    star = fn.args.vararg.arg if fn.args.vararg else None
    for node in ast.walk(fn):
        if isinstance(node, ast.Call) and _callee(node) in RUNNERS and node.args:
            first = node.args[0]
            parts = first.elts if isinstance(first, (ast.List, ast.Tuple)) else [first]
            head = parts[0] if parts else None
            passes_on = isinstance(head, ast.Constant) and head.value in PASS_ON
            for pos, part in enumerate(parts):
                inner = part.value if isinstance(part, ast.Starred) else part
                if pos and not passes_on:
                    break  # `["ip", *args]`: the arguments are not a program
                if isinstance(inner, ast.Name) and inner.id == star:
                    return len(params)
                if isinstance(inner, ast.Name) and inner.id in params:
                    return params.index(inner.id)
    return None


def _programs(tree: ast.Module) -> Iterator[tuple[str, int]]:
    # name -> (where its argv starts, whether it takes the argv as words (*args) or whole)
    wrappers = {
        n.name: (i, i == len(n.args.args))
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef) and (i := _wrapper_index(n)) is not None
    }

    def visit(node: ast.AST, scope: _Scope) -> Iterator[tuple[str, int]]:
        for n in _own_nodes(node):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                yield from visit(n, _Scope(n, scope))
            elif isinstance(n, ast.Call) and n.args:
                name = _callee(n)
                if name in RUNNERS:
                    for prog in scope.argv0(n.args[0]) | _after_dashes(n.args[0]):
                        yield prog, n.lineno
                elif name in CLI_RUNNERS:
                    for prog in _after_dashes(ast.List(elts=list(n.args))):
                        yield prog, n.lineno
                elif name in wrappers:
                    at, words = wrappers[name]
                    found = scope.first_word(n.args[at:]) if words else set()
                    if not words and len(n.args) > at:  # `start(cmd, peers)`: cmd is a whole argv
                        found = scope.argv0(n.args[at]) | _after_dashes(n.args[at])
                    for prog in found:
                        yield prog, n.lineno

    yield from visit(tree, _Scope(tree, None))


def _callee(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    if isinstance(node.func, ast.Name):
        return node.func.id
    return None


def programs_run() -> dict[str, list[str]]:
    """program -> where it is started ("tests/x.py:12")."""
    found: dict[str, list[str]] = {}
    for folder in ("tests", "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for prog, line in _programs(ast.parse(path.read_text(), str(path))):
                if PROGRAM.match(prog) and not prog.startswith("no-such-"):  # refusals tested
                    found.setdefault(prog, []).append(f"{path.relative_to(ROOT)}:{line}")
    return found


def test_every_program_the_suite_and_benches_run_is_installed_by_make_system() -> None:
    listed = makefile_tools()
    found = programs_run()
    missing = {p: where[:3] for p, where in found.items() if p not in listed}
    assert not missing, f"add to SYSTEM_TOOLS in the Makefile (program:package): {missing}"


def test_the_scan_sees_the_programs_started_each_way() -> None:
    """The scanner itself: each way of starting a program used in tests/ and bench/ is seen."""
    found = programs_run()
    assert "nft" in found  # `for cmd in ("nft add table ...",)` + in_netns(netns, *cmd.split())
    assert "iptables-legacy" in found  # sh("iptables-legacy", ...) through a local wrapper
    assert "ip6tables-legacy-save" in found  # f"{tool}-save" over TOOLS
    assert "iptables-legacy-restore" in found  # f"{tool}-restore" over TOOLS.values()
    assert "ss" in found  # shutil.which("ss")
    assert "unshare" in found  # os.execvp("unshare", [...])
    assert "ip" in found  # cmd = ["ip", "netns", "exec", ...]; Popen(cmd)
    assert "setpriv" in found


def test_makefile_installs_each_listed_program_by_its_package() -> None:
    text = (ROOT / "Makefile").read_text()
    tools = makefile_tools()
    assert tools["nft"] == "nftables"
    assert tools["iptables-legacy"] == "iptables" and tools["ss"] == "iproute2"
    # the system target installs the packages of the programs it found missing, nothing else
    assert "$${t##*:}" in text and "apt-get install" in text
