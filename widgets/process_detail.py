"""The selected process: identity, cgroup, network namespace and every socket."""

from __future__ import annotations

from collections.abc import Sequence

from netjail.backends.model import Process
from netjail.widgets.format import NEW_ATTEMPT_SECONDS, attempt_target, endpoint, human_count
from netjail.widgets.safe_text import printable
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

TYPE_CHECKING = False
if TYPE_CHECKING:
    from netjail.backends.attempts.store import AttemptRow

CMDLINE_LIMIT = 4096  # characters shown of a command line (the kernel allows megabytes)


def _field(label: str, value: str | Text) -> Text:
    """`value`: a str is text a process or user chose (escaped here); a Text is ours."""
    return Text.assemble((f"{label:<8}", "dim"), printable(value) if isinstance(value, str) else value)


def title(process: Process | None) -> Text:
    """The panel's border title: a Text, since a str border title is read as markup."""
    return Text(f"Process {process.pid} {printable(process.name, 64)}" if process else "Process")


def render_process(
    process: Process | None,
    own_netns: int | None,
    netns_name: str = "",
    tried: Sequence[AttemptRow] = (),
    now: float = 0.0,
) -> RenderableType:
    """`netns_name`: the process's namespace as `ip netns` names it ("" when it has no name);
    `tried`: its jail's top rows of the attempts log (what it tried to reach), at time `now`."""
    if process is None:
        return Text("no process selected", style="dim")
    cmdline = printable(" ".join(process.cmdline) or f"[{process.name}]", CMDLINE_LIMIT)
    netns_name = printable(netns_name)
    if process.netns is None:
        netns = Text("unknown (access denied)", style="dim")
    elif own_netns is not None and process.netns != own_netns:
        netns = Text.assemble(str(process.netns), (f" {netns_name or 'other namespace'}", "yellow"))
    else:
        netns = Text(str(process.netns))
        if netns_name:
            netns.append(f" {netns_name}")
    jail = Text(printable(process.jail), style="bold red") if process.jail else Text("—", style="dim")
    uid, gid = ("?" if v is None else str(v) for v in (process.uid, process.gid))
    ids = f"uid {uid}  gid {gid}"
    fields = [
        _field("cmdline", cmdline),
        _field("exe", process.exe or "?"),
        _field("user", f"{process.user}  {ids}"),
        _field("ppid", f"{process.ppid}  state {process.state}  start {process.start_time}"),
        _field("cgroup", process.cgroup or "?"),
        _field(
            "unit",
            Text(printable(process.unit)) if process.unit else Text("— (not in a systemd unit)", style="dim"),
        ),
        _field("netns", netns),
        _field("jail", jail),
        _field("traffic", traffic(process)),
    ]
    if process.unfilterable:
        fields.append(_field("warning", unfilterable_warning(process)))
    if process.jail:  # what it is trying to reach comes first for a jailed process
        fields.insert(1, _field("tried", tried_text(tried, now)))
    if not process.sockets and not process.unfilterable:
        return Group(*fields, Text(""), Text("no sockets", style="dim"))
    table = Table(box=None, padding=(0, 1), pad_edge=False, show_edge=False, header_style="bold")
    for name in ("PROTO", "LOCAL", "REMOTE", "STATE"):
        table.add_column(name, no_wrap=True, overflow="ellipsis")
    for s in process.sockets:
        proto = f"{s.proto}{'6' if s.family == 'inet6' else ''}"
        remote = endpoint(s.remote_addr, s.remote_port) if s.remote_port else "*"
        state = Text(
            s.state, style="green" if s.state == "ESTABLISHED" else "cyan" if s.state == "LISTEN" else ""
        )
        # Text, not str: a Rich table reads str as markup, and `[fd00::1]:443` looks like a tag
        table.add_row(Text(proto), Text(endpoint(s.local_addr, s.local_port)), Text(remote), state)
    for u in process.unfilterable:
        where = "any" if u.ifindex == 0 else u.interface or f"ifindex {u.ifindex}"
        table.add_row(Text(u.kind), Text(where), Text("*"), Text("UNFILTERABLE", style="bold yellow"))
    return Group(*fields, Text(""), table)


def tried_text(tried: Sequence[AttemptRow], now: float) -> Text:
    """The destinations its jail dropped, most attempted first: `203.0.113.7:443/tcp 12 tries new`,
    with the DNS name asked for where there is one. Names and addresses come from the jailed
    program's own packets: escaped."""
    if not tried:
        return Text("nothing dropped and logged yet (netjail attempts)", style="dim")
    out = Text()
    for i, r in enumerate(tried):
        if i:
            out.append("  ")
        style = "bold yellow" if now and now - r.first <= NEW_ATTEMPT_SECONDS else ""
        out.append(printable(f"{attempt_target(r.remote, r.port, r.proto)}/{r.proto}"), style=style)
        if r.name:
            out.append(f" {printable(r.name, 48)}", style="cyan")
        out.append(f" {human_count(r.count)} tries", style="dim")
        if style:
            out.append(" new", style=style)
    return out


def traffic(process: Process) -> Text:
    if process.send_rate is None or process.recv_rate is None:
        return Text("not counted (only TCP is, from the second refresh on)", style="dim")
    sent, received = human_count(round(process.send_rate)), human_count(round(process.recv_rate))
    return Text(f"TCP {sent} B/s sent (acknowledged), {received} B/s received")


def unfilterable_warning(process: Process) -> Text:
    n = len(process.unfilterable)
    return Text(
        f"not fully blockable: {n} packet socket{'s' if n != 1 else ''} (AF_PACKET) netfilter cannot "
        "see stay open under a block; relaunch it under seccomp (R) to refuse them",
        style="bold yellow",
    )


class ProcessDetail(VerticalScroll):
    """Focusable (so it scrolls and can be maximised); renders only what it is given."""

    ALLOW_MAXIMIZE = True

    DEFAULT_CSS = """
    ProcessDetail > Static { width: 1fr; }
    """

    def compose(self) -> ComposeResult:
        yield Static(render_process(None, None), id="detail-body")

    process: Process | None = None

    def show(
        self,
        process: Process | None,
        own_netns: int | None,
        netns_name: str = "",
        tried: Sequence[AttemptRow] = (),
        now: float = 0.0,
    ) -> None:
        self.process = process
        body = render_process(process, own_netns, netns_name, tried, now)
        self.query_one("#detail-body", Static).update(body)
        self.border_title = title(process)
