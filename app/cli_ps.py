"""`netjail ps`: placeholder until the inventory lands."""
from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("ps", help="list processes and their sockets")
    p.set_defaults(func=lambda a: 0)
