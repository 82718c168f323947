"""http_json selectors run within one budget per page, proportional to the response: a selector costing more
fails the run with `InvalidPayload` naming it, quickly; large ordinary pages still read in full."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from adapters.pollers.base import FetchRequest, FetchResponse, InvalidPayload, PollState
from adapters.pollers.http_json import HttpJsonPoller
from schemas.poll import PollSettings

API = "https://api.example.com/v1/items"
QUICK_S = 1.0
LITERAL_100 = "`[" + ",".join(["0"] * 100) + "]`"
NESTED_FILTERS = f"{LITERAL_100}[?{LITERAL_100}[?{LITERAL_100}[?{LITERAL_100}[?`false`]]]]"
"""Within the shape limits; 100**4 filter steps whatever the response."""
WIDE = "[" + ",".join(["@"] * 50) + "]"


class OneResponse:
    """A poll client answering every request with the same body."""

    def __init__(self, body: Any) -> None:
        self.body = orjson.dumps(body)

    async def fetch(self, request: FetchRequest) -> FetchResponse:
        return FetchResponse(200, {}, self.body, request.url)


def poller(**items: str) -> HttpJsonPoller:
    settings = PollSettings.model_validate(
        {"kind": "http_json", "interval": "1m", "request": {"url": API}, "items": {"path": "items", "id": "id"} | items}
    )
    configured = HttpJsonPoller.configure("acme", settings)
    assert isinstance(configured, HttpJsonPoller)
    return configured


async def refused(selectors: dict[str, str], body: Any) -> str:
    started = time.monotonic()
    with pytest.raises(InvalidPayload) as raised:
        await poller(**selectors).fetch_page(OneResponse(body), PollState(), None)
    assert time.monotonic() - started < QUICK_S
    return raised.value.reason


SMALL = {"items": [{"id": n, "kind": "k"} for n in range(3)]}


@pytest.mark.parametrize("field", ["path", "id", "type", "time", "subject", "cursor"])
async def test_a_costly_selector_fails_the_page_naming_it(field: str) -> None:
    reason = await refused({field: NESTED_FILTERS}, SMALL)
    assert reason.startswith(f"items.{field} exceeded the evaluation budget of this page: evaluation cost more")


async def test_a_costly_next_link_fails_the_page() -> None:
    settings = PollSettings.model_validate(
        {
            "kind": "http_json",
            "interval": "1m",
            "request": {"url": API},
            "items": {"path": "items", "id": "id"},
            "pagination": {"nextLink": NESTED_FILTERS},
        }
    )
    configured = HttpJsonPoller.configure("acme", settings)
    with pytest.raises(InvalidPayload, match=r"^pagination\.nextLink exceeded the evaluation budget"):
        await configured.fetch_page(OneResponse(SMALL), PollState(), None)


async def test_items_built_of_shared_references_are_sized() -> None:
    """50 items, each 50**3 copies of the response: cheap to select, ruinous to turn into events."""
    reason = await refused({"path": f"{WIDE}|{WIDE}|{WIDE}|{WIDE}", "id": "`1`"}, SMALL)
    assert reason.startswith("items.path exceeded the evaluation budget of this page")


async def test_the_budget_is_shared_by_the_items_of_a_page() -> None:
    """Each item's selector is well within a budget of its own, but costs far more than twice the item's
    bytes: over 600 items, the page's budget runs out."""
    body = {"items": [{"id": n, "tags": list(range(200))} for n in range(600)]}
    reason = await refused({"type": "to_string([" + ", ".join(["tags"] * 20) + "])"}, body)
    assert reason.startswith("items.type exceeded the evaluation budget of this page")


async def test_a_large_ordinary_page_is_read_in_full() -> None:
    """The budget grows with the response: 20,000 items with several selectors each are well within it."""
    items = [{"id": n, "kind": "order", "at": "2024-05-01T12:00:00Z", "who": {"name": f"n{n}"}} for n in range(20_000)]
    page = await poller(type="kind", time="at", subject="who.name", cursor="id").fetch_page(
        OneResponse({"items": items}), PollState(), None
    )
    assert len(page.events) == 20_000
    assert (page.events[-1].id, page.events[-1].type, page.events[-1].subject) == ("19999", "acme.order", "n19999")
