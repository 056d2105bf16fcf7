"""Parsers for what `netjail doctor` reads: /proc/PID/status, kernel .config, `iptables
--version`, iptables-save and `nft -j list ruleset` output. Pure functions over text."""

from __future__ import annotations

import json
import re
from collections import Counter

# Chains and chain-name prefixes netjail owns (see firewall/base.py); everything else is foreign.
OWN_CHAIN_PREFIXES = ("NETJAIL-", "NJ-")
_APPEND = re.compile(r"^(?:\[\d+:\d+\] )?-A (\S+)(?:.* -[jg] (\S+))?")  # optional -c counters


def parse_cap_eff(status: str) -> int | None:
    """The effective capability mask from /proc/PID/status text."""
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return None


def parse_kernel_config(text: str) -> dict[str, str]:
    """CONFIG_X -> "y"/"m"/"n"/value from a kernel .config ("# CONFIG_X is not set" -> "n")."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            key, _, value = line.partition("=")
            values[key] = value.strip().strip('"')
        elif line.startswith("# CONFIG_") and line.endswith(" is not set"):
            values[line[2:].split()[0]] = "n"
    return values


def parse_iptables_version(text: str) -> tuple[str, str] | None:
    """("1.8.9", "nf_tables"|"legacy") from `iptables --version` (old versions print no variant)."""
    found = re.search(r"v(\d[\w.]*)(?:\s+\(([\w-]+)\))?", text)
    if not found:
        return None
    return found.group(1), found.group(2) or "legacy"


def _is_own(chain: str | None) -> bool:
    return chain is not None and chain.startswith(OWN_CHAIN_PREFIXES)


def count_save_rules(save: str) -> tuple[Counter[str], int]:
    """From iptables-save text: foreign rules per table, and netjail's own rule count. A rule is
    netjail's when it sits in a netjail chain or jumps to one."""
    foreign: Counter[str] = Counter()
    own = 0
    table = "?"
    for line in save.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif found := _APPEND.match(line):
            if _is_own(found.group(1)) or _is_own(found.group(2)):
                own += 1
            else:
                foreign[table] += 1
    return foreign, own


def save_chains(save: str) -> set[str]:
    return {line[1:].split()[0] for line in save.splitlines() if line.startswith(":") and len(line) > 1}


def parse_nft_ruleset(text: str) -> tuple[Counter[str], set[str], set[str]]:
    """From `nft -j list ruleset`: rules per "family table", table names, chain names."""
    rules: Counter[str] = Counter()
    tables: set[str] = set()
    chains: set[str] = set()
    for item in json.loads(text).get("nftables", []):
        if "table" in item:
            tables.add(item["table"]["name"])
        elif "chain" in item:
            chains.add(item["chain"]["name"])
        elif "rule" in item:
            rule = item["rule"]
            rules[f"{rule['family']} {rule['table']}"] += 1
    return rules, tables, chains
