"""The connectors listing: filters, sorts and pages (pure, no server)."""

from __future__ import annotations

import pytest

from hub.console.connectors_page import PAGE_SIZE, Filters, Row, select
from hub.console.refusal import Refusal


def rows(n: int) -> list[Row]:
    states = ("active", "error", "disabled")
    return [
        Row(f"t{i % 3}", f"hook-{i:04d}", "github" if i % 2 else "stripe", "webhook", states[i % 3], 1, None)
        for i in range(n)
    ]


def test_pages_are_page_size_long_and_a_page_past_the_end_is_the_last() -> None:
    listing = select(rows(120), Filters())
    assert (len(listing.rows), listing.total, listing.pages) == (PAGE_SIZE, 120, 3)
    last = select(rows(120), Filters(page=99))
    assert last.page == 3
    assert len(last.rows) == 120 - 2 * PAGE_SIZE


def test_text_and_state_filters_combine() -> None:
    listing = select(rows(120), Filters(text="STRIPE".lower(), state="error"))
    assert listing.total == len([r for r in rows(120) if r.provider == "stripe" and r.state == "error"])
    assert all(r.provider == "stripe" and r.state == "error" for r in listing.rows)


@pytest.mark.parametrize("sort", ["name", "state", "provider"])
def test_sorts_order_by_their_column_then_tenant_and_name(sort: str) -> None:
    listing = select(rows(30), Filters(sort=sort))
    column = {"name": lambda r: (r.tenant, r.name), "state": lambda r: (r.state, r.tenant, r.name)}
    key = column.get(sort, lambda r: (r.provider, r.tenant, r.name))
    assert listing.rows == sorted(listing.rows, key=key)


@pytest.mark.parametrize(
    ("query", "named"),
    [({"sort": "secret"}, "sort"), ({"state": "on"}, "state"), ({"page": "-1"}, "page"), ({"q": "x" * 101}, "q")],
)
def test_a_bad_query_parameter_is_a_400_naming_it(query: dict[str, str], named: str) -> None:
    with pytest.raises(Refusal) as raised:
        Filters.of(query)
    assert raised.value.status == 400
    assert raised.value.message.startswith(named)


def test_links_keep_the_filters() -> None:
    assert Filters(text="gh", state="active", sort="state").link(page=2) == "?q=gh&state=active&sort=state&page=2"
