"""Deltas between JSON documents and the skip-delta schedule (``engine/deltas.py``)."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workflows_app.engine import WorkflowCheckpointError
from workflows_app.engine.deltas import diff, patch, skip_base, skip_path

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner,
                                                               max_size=4),
    max_leaves=20)


def same_json(a, b) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@settings(max_examples=300, deadline=None)
@given(json_values, json_values)
def test_patch_of_diff_gives_the_new_value_and_leaves_the_old_one(old, new):
    before = json.dumps(old, sort_keys=True)
    delta = diff(old, new)
    json.dumps(delta)  # a delta is JSON itself
    assert same_json(patch(old, delta), new)
    assert json.dumps(old, sort_keys=True) == before


def test_a_grown_list_is_stored_as_what_was_appended():
    old = {"items": ["a" * 100] * 50, "count": 50, "gone": 1}
    new = {"items": ["a" * 100] * 51, "count": 51, "new": True}
    delta = diff(old, new)
    assert delta == ["o", {"items": ["a", ["a" * 100]], "count": ["r", 51], "new": ["r", True]},
                     ["gone"]]
    assert patch(old, delta) == new


def test_a_change_of_json_type_is_not_hidden_by_python_equality():
    # 1 == 1.0 == True in Python; in JSON they are three different values.
    for old, new in ((1, 1.0), (1, True), ([1, 2], [1.0, 2]), ({"a": [0]}, {"a": [False]})):
        assert same_json(patch(old, diff(old, new)), new), (old, new)


@pytest.mark.parametrize("delta", [None, [], ["x", 1], ["a", 3], ["o", [], []], ["r"]])
def test_malformed_deltas_are_refused(delta):
    with pytest.raises(WorkflowCheckpointError):
        patch([1, 2], delta)


def test_a_delta_that_does_not_fit_its_base_is_refused():
    with pytest.raises(WorkflowCheckpointError, match="does not fit"):
        patch({"a": 1}, ["a", [2]])


def test_skip_deltas_keep_every_restore_short():
    assert [skip_base(n) for n in range(1, 9)] == [0, 0, 2, 0, 4, 4, 6, 0]
    assert skip_path(7) == [7, 6, 4, 0]
    # Restoring any of a million positions applies at most 20 deltas over the whole record.
    assert max(len(skip_path(n)) for n in range(1, 2 ** 20)) == 21
    # The bytes a growing list stores stay near n log n of what was appended.
    appended = sum(n - skip_base(n) for n in range(1, 2001))
    assert appended <= 2000 * 12
    with pytest.raises(ValueError):
        skip_base(0)
