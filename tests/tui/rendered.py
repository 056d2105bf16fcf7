"""What the terminal would get: the strips Textual composes, as text and styled segments."""

from __future__ import annotations

from netjail.app.netjail_app import NetjailApp
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

from tests.hostile import assert_terminal_safe


def widget_strips(widget: Widget) -> list[Strip]:
    return widget.render_lines(Region(0, 0, widget.size.width, widget.size.height))


def widget_text(widget: Widget) -> str:
    """The widget's lines joined with single spaces (wrapping happens at spaces: a wrapped
    sentence reads as it was written)."""
    return " ".join(" ".join(strip.text.split()) for strip in widget_strips(widget)).strip()


def screen_strips(app: NetjailApp) -> list[Strip]:
    """Every line of the active screen (toasts included: they are on it)."""
    return app.screen._compositor.render_strips()


def screen_text(app: NetjailApp) -> str:
    return "\n".join(strip.text for strip in screen_strips(app))


def invisible(strips: list[Strip]) -> list[str]:
    """Text drawn in its own background colour: there, yet unreadable."""
    return [
        seg.text
        for strip in strips
        for seg in strip
        if seg.text.strip() and seg.style and seg.style.color and seg.style.color == seg.style.bgcolor
    ]


def assert_screen_safe(app: NetjailApp) -> None:
    strips = screen_strips(app)
    assert_terminal_safe("\n".join(strip.text for strip in strips), f"screen of {type(app.screen).__name__}")
    for strip in strips:
        for seg in strip:
            assert not seg.control, seg  # a control segment goes to the terminal as is
