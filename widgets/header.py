"""Top of the screen: which host this is, its kernel, whether we can act on it, the firewall."""

from __future__ import annotations

from netjail.backends.model import HostInfo
from netjail.widgets.fit import Part, fit_parts
from netjail.widgets.safe_text import printable
from rich.text import Text
from textual import events
from textual.widgets import Static

UNLIMITED = 10_000


def _field(label: str, value: Text) -> Text:
    return Text.assemble((f"{label} ", "dim"), value)


def host_line(host: HostInfo | None, error: str | None = None, width: int = UNLIMITED) -> Text:
    """Within `width` cells: the mode stays longest (it says whether keys can act), then the
    host; the kernel and firewall shorten to their first word, then drop out."""
    text = Text.assemble(("netjail", "bold"), "  ")
    if error:
        return text.append(f"host info unavailable: {printable(error)}", style="red")
    if host is None:
        return text.append("reading host…", style="dim")
    mode = Text("root", "bold green") if host.privileged else Text("read-only", "bold yellow")
    kernel = printable(host.kernel, 64)  # a UTS name is any bytes root (or a container) set
    firewall = printable(host.firewall or "none", 64)
    parts = [
        Part(_field("host", Text(printable(host.hostname, 64), "bold")), priority=1),
        Part(_field("kernel", Text(kernel, "bold")), Text(kernel.split("-")[0], "bold"), priority=3),
        Part(_field("mode", mode), mode, priority=0),
        Part(_field("firewall", Text(firewall, "bold")), Text(firewall.split()[0], "bold"), priority=2),
    ]
    return text.append_text(fit_parts(parts, width - text.cell_len, sep="  "))


class HostHeader(Static):
    DEFAULT_CSS = """
    HostHeader { height: 1; padding: 0 1; background: $panel; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(host_line(None), id=id)
        self._host: HostInfo | None = None
        self._error: str | None = None

    def show_host(self, host: HostInfo | None, error: str | None = None) -> None:
        self._host, self._error = host, error
        self.update(host_line(host, error, self.content_size.width or UNLIMITED))

    def on_resize(self, event: events.Resize) -> None:
        self.update(host_line(self._host, self._error, self.content_size.width or UNLIMITED))


READ_ONLY_TEXT = (
    "read-only: netjail is not running as root, so block, launch, relaunch, unblock and release are disabled"
)
