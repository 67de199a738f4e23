"""helpers.changes: one typed value for what a helper did, readable in a notebook."""
from __future__ import annotations

from helpers.changes import Change, Deleted


def test_unchanged_and_already_gone_are_not_changes_and_the_rest_are():
    assert {c for c in Change if not c.changed} == {Change.UNCHANGED, Change.ALREADY_GONE}


def test_a_change_shows_as_its_word_and_still_compares_as_one():
    assert str(Change.UNCHANGED) == "unchanged" and repr(Change.UNCHANGED) == "'unchanged'"
    assert Change.ALREADY_GONE == "already gone"
    assert Change.DELETED._repr_markdown_() == "**deleted**"


def test_a_delete_lists_what_it_removed_or_says_it_was_already_gone():
    removed = Deleted.of(["m-1", "m-2"])
    assert removed and removed.change is Change.DELETED and removed.ids == ("m-1", "m-2")
    assert str(removed) == "deleted: m-1, m-2"
    gone = Deleted.of([])
    assert not gone and gone.change is Change.ALREADY_GONE and str(gone) == "already gone"
