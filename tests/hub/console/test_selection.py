"""The Events filters and the Replay form read the same selection fields the same way."""

from __future__ import annotations

from hub.console.events_page import MAX_FIELD_CHARS as EVENTS_MAX
from hub.console.events_page import EventFilters
from hub.console.replay_page import MAX_FIELD_CHARS as REPLAY_MAX
from hub.console.replay_page import ReplayForm
from hub.console.selection import SelectionFields, typed_values


def test_a_value_is_stripped_cut_and_a_non_text_part_reads_as_empty() -> None:
    source = {"tenant": "  acme ", "id": "x" * 40, "since": b"2h"}
    assert typed_values(source, ("tenant", "id", "since", "until"), 10) == {
        "tenant": "acme",
        "id": "x" * 10,
        "since": "",
        "until": "",
    }


def test_both_forms_carry_the_selection_fields_and_their_own_default() -> None:
    typed = {"tenant": "acme", "connector": "gh", "type": "github.*", "since": "2h", "until": "", "id": "e1"}
    filters, form = EventFilters.of(typed | {"order": ""}), ReplayForm.of(typed | {"mode": ""})
    assert isinstance(filters, SelectionFields)
    assert isinstance(form, SelectionFields)
    for name, value in typed.items():
        assert getattr(filters, name) == getattr(form, name) == value
    assert (filters.order, form.mode) == ("newest", "gate")
    assert len(EventFilters.of({"id": "y" * 1000}).id) == EVENTS_MAX
    assert len(ReplayForm.of({"id": "y" * 1000}).id) == REPLAY_MAX
