"""The bytes of a checkpoint row (``row_bytes.py``): Zstandard, older zlib rows, exact JSON."""

import json
import threading
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workflows_app.row_bytes import CorruptBytes, encode, pack, unpack

# Everything json.dumps writes, floats at full precision and integers beyond 64 bits included.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=2 ** 63 - 2)
    | st.integers(max_value=-2 ** 63 + 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=4), inner,
                                                               max_size=5),
    max_leaves=30)


def typed(value):
    """``value`` with every JSON type spelled out: 1, 1.0 and True differ here."""
    return json.dumps(value, sort_keys=True, default=str), repr(value)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_unpack_gives_exactly_what_json_loads_gives(value):
    encoded = encode(value)
    assert typed(unpack(pack(encoded))) == typed(json.loads(encoded))


@pytest.mark.parametrize("value", [
    2 ** 64, -(2 ** 70), 10 ** 40, 5e-324, 1.7976931348623157e308, -0.0, 0.1 + 0.2,
    "\ud800 lone surrogate", ["\udfff", {"k": "\U0001f600"}], "caf\u00e9 \U0001f600",
])
def test_values_a_fast_parser_could_get_wrong_come_back_exactly(value):
    back = unpack(pack(encode(value)))
    assert typed(back) == typed(value)
    assert type(back) is type(value)


def test_rows_written_with_zlib_are_still_read():
    value = {"checkpoint": {"n": 1}, "outputs": [2 ** 80]}
    assert unpack(zlib.compress(encode(value), 1)) == value


def test_zstandard_rows_are_smaller_than_their_json():
    encoded = encode({"log": [f"{i:06d}:" + "x" * 100 for i in range(500)]})
    assert pack(encoded)[:4] == b"\x28\xb5\x2f\xfd"
    assert len(pack(encoded)) * 10 < len(encoded)


@pytest.mark.parametrize("data, error", [
    (b"", "neither a Zstandard frame nor a zlib stream"),
    (b"{\"plain\": \"json\"}", "neither a Zstandard frame nor a zlib stream"),
    (b"\x28\xb5\x2f\xfd" + b"\x00" * 12, "does not decompress"),
    (b"\x78\x9c" + b"\x00" * 12, "does not decompress"),
    (zlib.compress(b"{\"cut\": "), "not JSON"),
    (pack(b"[1, 2"), "not JSON"),
])
def test_bytes_that_are_not_a_stored_row_are_refused_with_what_is_wrong(data, error):
    with pytest.raises(CorruptBytes, match=error):
        unpack(data)


def test_threads_pack_and_unpack_at_the_same_time():
    values = [{"thread": n, "log": [f"{n}:{i}" * 20 for i in range(300)]} for n in range(8)]
    failures = []

    def work(value):
        for _ in range(50):
            if unpack(pack(encode(value))) != value:
                failures.append(value["thread"])

    threads = [threading.Thread(target=work, args=(value,)) for value in values]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_a_truncated_frame_is_refused():
    data = pack(encode({"log": [f"{i}" * 50 for i in range(200)]}))
    with pytest.raises(CorruptBytes, match="does not decompress"):
        unpack(data[: len(data) // 2])
