"""Top of the screen: which host this is, its kernel, whether we can act on it, the firewall."""

from __future__ import annotations

from netjail.backends.model import HostInfo
from netjail.widgets.safe_text import printable
from rich.text import Text
from textual.widgets import Static


def host_line(host: HostInfo | None, error: str | None = None) -> Text:
    text = Text.assemble(("netjail", "bold"), "  ")
    if error:
        return text.append(f"host info unavailable: {printable(error)}", style="red")
    if host is None:
        return text.append("reading host…", style="dim")
    mode = ("root", "bold green") if host.privileged else ("read-only", "bold yellow")
    parts: list[tuple[str, str | tuple[str, str]]] = [
        ("host", printable(host.hostname, 64)),  # a UTS name is any bytes root (or a container) set
        ("kernel", printable(host.kernel, 64)),
        ("mode", mode),
        ("firewall", printable(host.firewall or "none", 64)),
    ]
    for i, (label, value) in enumerate(parts):
        if i:
            text.append("  ")
        text.append(f"{label} ", style="dim")
        text.append_text(Text(*value) if isinstance(value, tuple) else Text(value, style="bold"))
    return text


class HostHeader(Static):
    DEFAULT_CSS = """
    HostHeader { height: 1; padding: 0 1; background: $panel; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(host_line(None), id=id)

    def show_host(self, host: HostInfo | None, error: str | None = None) -> None:
        self.update(host_line(host, error))


READ_ONLY_TEXT = (
    "read-only: netjail is not running as root, so block, launch, relaunch, unblock and release are disabled"
)
