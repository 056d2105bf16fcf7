"""The mark range netjail owns and the values it hands to jails (pure parts of socket_marks)."""

from __future__ import annotations

import pytest
from netjail.backends.errors import BadInput, OperationFailed
from netjail.backends.socket_marks import DEFAULT_MASK, allocate, mark_mask


def test_mask_default_and_hex() -> None:
    assert mark_mask("") == DEFAULT_MASK == 0xFF000000
    assert mark_mask("0x0ff00000") == 0x0FF00000
    assert mark_mask("f0") == 0xF0


@pytest.mark.parametrize("text", ["zz", "0", "0x101", "0x1ffffffff", "-0x10", "12.5"])
def test_bad_masks_refused(text: str) -> None:
    with pytest.raises(BadInput, match="NETJAIL_MARK_MASK"):
        mark_mask(text)


def test_values_are_allocated_inside_the_mask_and_free() -> None:
    assert allocate(0xFF000000, []) == 0x01000000
    assert allocate(0xFF000000, [0x01000000, 0x02000000]) == 0x03000000
    assert allocate(0x30, [0x10]) == 0x20
    with pytest.raises(OperationFailed, match="no free socket mark"):
        allocate(0x30, [0x10, 0x20, 0x30])
