"""``_speedups_untracked.c``'s functions on objects Python itself leaves untracked (a dict
of atoms); the futures ``send()`` untracks are tests/fake/test_untracked_futures.py's."""

from __future__ import annotations

import gc

import pytest

_speedups = pytest.importorskip("asyncproducer._speedups", reason="the extension did not build")


def test_track_has_the_collector_walk_an_untracked_object_again() -> None:
    atoms = {"a": 1}  # a dict of atoms starts untracked
    assert not gc.is_tracked(atoms)
    _speedups.track(atoms)
    assert gc.is_tracked(atoms)
    _speedups.track(atoms)  # already tracked: nothing to do
    assert gc.is_tracked(atoms)


def test_track_leaves_what_the_collector_never_walks() -> None:
    _speedups.track(7)  # not a container: no error, nothing to walk
    assert not gc.is_tracked(7)


def test_track_decorated_skips_none_and_what_cannot_have_attributes() -> None:
    atoms = {"a": 1}
    _speedups.track_decorated([None, atoms, 7])
    assert not gc.is_tracked(atoms)  # a dict has no attributes of its own


def test_track_decorated_takes_a_list_only() -> None:
    with pytest.raises(TypeError, match="takes a list"):
        _speedups.track_decorated((None,))
