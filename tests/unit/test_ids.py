"""Ids: prefixed, well-formed, strictly increasing in creation order, even within one millisecond."""

from __future__ import annotations

from assistd import ids


def test_shape_and_prefix() -> None:
    for kind, prefix in ids.PREFIXES.items():
        value = ids.new_id(kind)
        assert value.startswith(prefix) and len(value) == len(prefix) + ids.BODY_LENGTH
        assert ids.is_valid(kind, value)
    assert not ids.is_valid("assistant", ids.new_id("thread"))
    assert not ids.is_valid("assistant", "asst_" + "U" * ids.BODY_LENGTH)
    assert not ids.is_valid("assistant", "asst_short")


def test_strictly_increasing_in_a_burst() -> None:
    burst = [ids.new_id("message") for _ in range(20_000)]
    assert burst == sorted(burst) and len(set(burst)) == len(burst)


def test_time_prefix_orders_across_milliseconds() -> None:
    encoded = [ids._encode(ms, 10) for ms in (0, 1, 31, 32, 1_795_547_221_000, 2**50 - 1)]
    assert encoded == sorted(encoded)
