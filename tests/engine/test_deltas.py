"""Deltas between JSON documents and the skip-delta schedule (``engine/deltas.py``)."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workflows_app.engine import WorkflowCheckpointError
from workflows_app.engine.deltas import ChainLink, diff, patch, restore, skip_base, skip_path

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


def _chain_of(documents):
    """``documents`` stored as a skip path: the first whole, each next as a delta against
    the one before, as ``restore`` receives them (JSON round trip: stored values are fresh)."""
    chain = [("k0", 0, True, documents[0])]
    for index, (old, new) in enumerate(zip(documents, documents[1:]), start=1):
        chain.append((f"k{index}", index, False, diff(old, new)))
    return json.loads(json.dumps(chain))


@settings(max_examples=200, deadline=None)
@given(st.lists(json_values, min_size=1, max_size=6))
def test_restore_gives_every_document_of_a_chain_and_modifies_nothing_stored(documents):
    chain = _chain_of(documents)
    stored_before = json.dumps(chain, sort_keys=True)
    links = restore(chain)
    assert same_json(links[-1].record, documents[-1])  # built at once
    assert json.dumps(chain, sort_keys=True) == stored_before
    for link, document in zip(links, documents):  # the others on demand
        assert same_json(link.record, document)
    assert json.dumps(chain, sort_keys=True) == stored_before
    assert [link.key for link in links] == [f"k{i}" for i in range(len(documents))]


def test_restore_copies_each_list_once_and_keeps_earlier_documents_intact():
    documents = [{"log": [f"item {i}" for i in range(n)], "n": n} for n in (0, 3, 5, 9)]
    links = restore(_chain_of(documents))
    newest = links[-1].record
    assert newest == documents[-1]
    # The newest document's list is its own: changing it changes no earlier document.
    newest["log"].append("changed by a caller")
    assert [link.record for link in links[:-1]] == documents[:-1]


def test_restore_names_the_checkpoint_whose_delta_does_not_fit():
    chain = [("whole", 0, True, {"log": []}), ("fine", 1, False, ["o", {"log": ["a", [1]]}, []]),
             ("broken", 2, False, ["o", {"log": ["o", {}, []]}, []])]
    with pytest.raises(WorkflowCheckpointError, match="checkpoint broken is corrupt"):
        restore(chain)
    with pytest.raises(ValueError, match="either its record or a way to build it"):
        ChainLink(0, "k")
