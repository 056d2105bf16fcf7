from __future__ import annotations

import pytest
from netjail.backends.errors import BadInput
from netjail.backends.jails.names import check_jail_name, derive_jail_name
from netjail.backends.jails.policy import parse_allow, parse_allow_list
from netjail.backends.model import AllowEntry


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.0/8", AllowEntry("10.0.0.0/8")),
        ("10.1.2.3", AllowEntry("10.1.2.3/32")),
        ("10.1.2.3/24", AllowEntry("10.1.2.0/24")),
        ("10.1.2.3:443", AllowEntry("10.1.2.3/32", 443)),
        ("192.168.1.0/24:53", AllowEntry("192.168.1.0/24", 53)),
        ("fd00::/64", AllowEntry("fd00::/64")),
        ("FD00::1", AllowEntry("fd00::1/128")),
        ("[fd00::1]:443", AllowEntry("fd00::1/128", 443)),
        ("[fd00::/64]:53", AllowEntry("fd00::/64", 53)),
        ("[::1]", AllowEntry("::1/128")),
    ],
)
def test_parse_allow_accepts(text: str, expected: AllowEntry) -> None:
    assert parse_allow(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "10.0.0.300",
        "10.0.0.0/33",
        "10.0.0.1:0",
        "10.0.0.1:65536",
        "10.0.0.1:http",
        "host.example",
        "fd00::1:443x",
        "[fd00::1]:",
        "[fd00::1]:99999",
        "[nope]:1",
        "10.0.0.1:1:2",
        "::1/129",
        "10.0.0.1:\u00b2",  # str.isdigit() takes superscripts, int() does not: was a ValueError
        "[::1]:\u00b9",
        "10.0.0.1:\u0664\u0664\u0663",  # Arabic-Indic 443: int() took it
    ],
)
def test_parse_allow_rejects_and_names_the_entry(text: str) -> None:
    with pytest.raises(BadInput) as info:
        parse_allow(text)
    assert "\n" not in str(info.value)
    if text:
        assert repr(text) in str(info.value)


def test_allow_entry_renders_back() -> None:
    assert str(parse_allow("[fd00::1]:443")) == "[fd00::1/128]:443"
    assert str(parse_allow("10.0.0.0/8:53")) == "10.0.0.0/8:53"
    assert parse_allow("fd00::/64").family == "inet6"


def test_allow_list_splits_and_dedupes() -> None:
    assert parse_allow_list(["10.0.0.1, 10.0.0.1/32 fd00::/64", "127.0.0.0/8"]) == (
        AllowEntry("10.0.0.1/32"),
        AllowEntry("fd00::/64"),
        AllowEntry("127.0.0.0/8"),
    )


@pytest.mark.parametrize("name", ["web", "a", "curl-1.2_x", "x" * 23])
def test_jail_names_ok(name: str) -> None:
    assert check_jail_name(name) == name


@pytest.mark.parametrize("name", ["", "-x", "a b", "x" * 24, "a/b", "ä"])
def test_jail_names_bad(name: str) -> None:
    with pytest.raises(BadInput):
        check_jail_name(name)


def test_v4_mapped_entries_become_ipv4() -> None:
    assert parse_allow("::ffff:10.1.2.3") == AllowEntry("10.1.2.3/32")
    assert parse_allow("[::ffff:10.1.2.0/120]:53") == AllowEntry("10.1.2.0/24", 53)


def test_one_jail_name_rule_and_message_for_every_caller() -> None:
    """The CLI, the launch dialog, the firewall and the netns/group names refuse the same names
    with the same line."""
    from netjail.backends.firewall.matches import check_jail_name as firewall_check
    from netjail.backends.launch.groups import group_name
    from netjail.backends.launch.netns import netns_name
    from netjail.widgets.launch_form import FieldError
    from netjail.widgets.launch_form import check_jail_name as field_check

    for name in ("-x", "x" * 24, "ä", "a b"):
        with pytest.raises(BadInput) as said:
            check_jail_name(name)
        assert "starting with a letter or digit" in str(said.value)
        for other in (firewall_check, group_name, netns_name):
            with pytest.raises(BadInput) as also:
                other(name)
            assert str(also.value) == str(said.value)
        with pytest.raises(FieldError) as field:
            field_check(name)
        assert str(field.value) == str(said.value)


@pytest.mark.parametrize(
    ("base", "suffix", "expected"),
    [
        ("curl", "-1", "curl-1"),
        ("./.hidden prog", "-7", "hidden_prog-7"),
        ("prøg", "-42", "pr_g-42"),  # str.isalnum() would keep the ø: not a valid name
        ("café", "", "caf_"),
        ("...", "-3", "jail-3"),
        ("a" * 40, "-12345", "a" * 17 + "-12345"),
    ],
)
def test_derived_names_are_valid(base: str, suffix: str, expected: str) -> None:
    assert derive_jail_name(base, suffix) == check_jail_name(expected)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("10.0.0.300", "not an IP address"),
        ("10.0.0.1:0", "(1-65535)"),
        ("[fd00::1]:http", "(1-65535)"),
        ("10.0.0.1, bad", "'bad'"),
    ],
)
def test_allow_list_errors_are_one_line(text: str, error: str) -> None:
    with pytest.raises(BadInput) as info:
        parse_allow_list([text])
    assert error in str(info.value) and "\n" not in str(info.value)
