"""Redaction and truncation of an event's data before its envelope is published.

A connector's `spec.redact` rules (schemas/redaction.py) are compiled once when it is built; each
event's data is then parsed, redacted rule by rule, cut to `spec.truncateOver` if it is larger, and
embedded re-serialized. A connector with neither has no `Redaction` at all, and its events keep the
fast path: the validated body embedded as is (`orjson.Fragment`), never parsed again.

The event's id, type, time and subject come from the adapter (or the poll selectors), computed from
the original payload before this runs, so no rule can change them; a rule that touches a field they
are read from is refused anyway unless it says `allowHubFields` (`hub_field_problems`), so that a
spec states it knowingly. `hubbodysha256` stays the hash of what the provider signed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import jmespath
import orjson

from adapters.base import InboundRequest, NormalizedEvent, WebhookAdapter
from adapters.errors import RequestRejected
from adapters.signing import body_sha256
from hub.errors import ConfigError, Problem
from hub.ingest.secrets import SecretResolutionError, SecretResolver
from schemas.connector import ConnectorDocument
from schemas.redaction import HASH_KEY_SECRET, WILDCARD, RedactionRule, pointer_segments
from schemas.secrets import SecretEntry, SecretRef

MASK = "[redacted]"
_INDEX = re.compile(r"0|[1-9][0-9]{0,8}")
"""An array index segment (RFC 6901: no leading zeros)."""

Visit = Callable[[dict[str, Any] | list[Any], str | int], None]


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule with its pointer split into segments."""

    path: str
    segments: tuple[str, ...]
    action: str
    allow_hub_fields: bool

    @classmethod
    def of(cls, rule: RedactionRule) -> CompiledRule:
        """Compile a validated rule."""
        return cls(rule.path, pointer_segments(rule.path), rule.action, rule.allowHubFields)


def _children(node: Any, segment: str) -> Iterator[str | int]:
    """The keys (object) or indexes (array) of `node` that `segment` selects, existing ones only."""
    if isinstance(node, dict):
        if segment == WILDCARD:
            yield from list(node)
        elif segment in node:
            yield segment
    elif isinstance(node, list):
        if segment == WILDCARD:
            yield from range(len(node) - 1, -1, -1)  # backwards: a drop keeps the next indexes valid
        elif _INDEX.fullmatch(segment) and int(segment) < len(node):
            yield int(segment)


def _walk(node: Any, segments: tuple[str, ...], visit: Visit) -> int:
    """Call `visit(container, key)` for every value the segments select; how many there were.

    Each node is reached through one path only, so a rule visits every node of the document at most
    once, whatever its wildcards.
    """
    head, rest = segments[0], segments[1:]
    count = 0
    for key in _children(node, head):
        if rest:
            count += _walk(node[key], rest, visit)
        else:
            visit(node, key)
            count += 1
    return count


def _cut_strings(node: Any, cap: int) -> Any:
    """A copy of `node` with every string value longer than `cap` characters cut to `cap` (keys kept)."""
    if isinstance(node, str):
        return node[:cap]
    if isinstance(node, dict):
        return {key: _cut_strings(value, cap) for key, value in node.items()}
    if isinstance(node, list):
        return [_cut_strings(value, cap) for value in node]
    return node


def _longest_string(node: Any) -> int:
    if isinstance(node, str):
        return len(node)
    if isinstance(node, dict):
        return max((_longest_string(value) for value in node.values()), default=0)
    if isinstance(node, list):
        return max((_longest_string(value) for value in node), default=0)
    return 0


def truncated(data: Any, limit: int) -> Any:
    """`data` with its strings cut to the longest length that makes it serialize within `limit` bytes
    (a binary search over that length: each step one copy and one serialization), or None when even
    empty strings do not fit (the data is mostly structure)."""
    if len(orjson.dumps(_cut_strings(data, 0))) > limit:
        return None
    low, high = 0, _longest_string(data)  # `low` always fits
    while low < high:
        middle = (low + high + 1) // 2
        if len(orjson.dumps(_cut_strings(data, middle))) <= limit:
            low = middle
        else:
            high = middle - 1
    return _cut_strings(data, low)


@dataclass(frozen=True, slots=True)
class Redacted:
    """An event's data as it is published, and the envelope attributes that say what was done to it."""

    data: Any
    attributes: dict[str, str]


class Redaction:
    """One connector's compiled rules, its tenant's hash key and its truncation limit."""

    __slots__ = ("_key", "rules", "truncate_over")

    def __init__(self, rules: Sequence[RedactionRule], key: bytes | None, truncate_over: int | None) -> None:
        self.rules = tuple(CompiledRule.of(rule) for rule in rules)
        self._key = key
        self.truncate_over = truncate_over

    def __repr__(self) -> str:  # never the key
        return f"Redaction(rules={len(self.rules)}, truncate_over={self.truncate_over})"

    def hashed(self, value: Any) -> str:
        """HMAC-SHA256 hex of a value's canonical JSON (so "1" and 1 differ), keyed per tenant.

        Without the key (a build made before the hub has its store, for checks only) the value is
        masked: a redaction never fails open.
        """
        if self._key is None:
            return MASK
        return hmac.new(self._key, orjson.dumps(value, option=orjson.OPT_SORT_KEYS), hashlib.sha256).hexdigest()

    def redact(self, data: Any) -> tuple[Any, int, list[str]]:
        """A redacted copy of `data` (JSON value or `orjson.Fragment`), how many values the rules
        touched, and the paths of the rules that touched any."""
        document = orjson.loads(orjson.dumps(data))  # a Fragment's bytes, or a copy the caller keeps intact
        total, paths = 0, []
        for rule in self.rules:
            count = _walk(document, rule.segments, self._visitor(rule.action))
            if count:
                total += count
                paths.append(rule.path)
        return document, total, paths

    def _visitor(self, action: str) -> Visit:
        def visit(container: dict[str, Any] | list[Any], key: str | int) -> None:
            if action == "drop":
                del container[key]  # type: ignore[arg-type]
            elif action == "hash":
                container[key] = self.hashed(container[key])  # type: ignore[index]
            else:
                container[key] = MASK  # type: ignore[index]

        return visit

    def apply(self, data: Any) -> Redacted:
        """The data to publish and the attributes (`hubredactions`, `hubtruncated`, `huboriginalsize`)."""
        attributes: dict[str, str] = {}
        if self.rules:
            data, count, paths = self.redact(data)
            if count:
                attributes["hubredactions"] = orjson.dumps({"count": count, "paths": paths}).decode()
        if self.truncate_over is not None:
            size = len(orjson.dumps(data))
            if size > self.truncate_over:
                parsed = data if self.rules else orjson.loads(orjson.dumps(data))
                data = truncated(parsed, self.truncate_over)
                attributes["hubtruncated"] = "true"
                attributes["huboriginalsize"] = str(size)
        return Redacted(data, attributes)


HASH_KEY = SecretEntry(secretRef=SecretRef(source="store", name=HASH_KEY_SECRET))


def build_redaction(document: ConnectorDocument, resolver: SecretResolver) -> Redaction | None:
    """The connector's Redaction, or None when it has no rule and no limit (the fast path).

    A `hash` rule needs the tenant's `redaction-key` store secret: one that cannot be read refuses
    the connector (ConfigError naming spec.redact). Before the hub has its store (checks), the key is
    left out and hashed values are masked.
    """
    spec = document.spec
    if not spec.redact and spec.truncateOver is None:
        return None
    key = None
    if any(rule.action == "hash" for rule in spec.redact):
        try:
            secret = resolver.resolve(document.metadata.tenant, HASH_KEY)
        except SecretResolutionError as exc:
            raise ConfigError(
                [
                    Problem(
                        _label(document),
                        "spec.redact",
                        f"a hash rule needs the tenant's store secret {HASH_KEY_SECRET} "
                        f"(`connector-hub secrets set {document.metadata.tenant}/{HASH_KEY_SECRET}`): {exc}",
                    )
                ]
            ) from None
        key = secret.value if secret is not None else None
    return Redaction(spec.redact, key, spec.truncateOver)


def _label(document: ConnectorDocument) -> str:
    return "/".join(document.key)


_PROBE_KEY = b"hub-field-probe"


def _derived(events: Sequence[NormalizedEvent]) -> list[tuple[str, str, object]]:
    """(id, type, time) of each event: what the hub takes from the adapter."""
    return [(event.id, event.type, event.time) for event in events]


def _normalized(
    adapter: WebhookAdapter,  # type: ignore[type-arg]
    headers: dict[str, str],
    body: bytes,
    now: float,
) -> list[NormalizedEvent] | None:
    """The events the adapter derives from a request with this body; None if it refuses it."""
    request = InboundRequest(method="POST", url="/", headers=headers, body=body, received_at=now)
    try:
        return adapter.normalize(request)
    except RequestRejected:
        return None


def _matches(rule: RedactionRule, events: Sequence[NormalizedEvent]) -> bool:
    return any(Redaction([rule], _PROBE_KEY, None).redact(event.data)[1] for event in events)


def hub_field_problems(document: ConnectorDocument, adapter: WebhookAdapter, now: float) -> list[Problem]:  # type: ignore[type-arg]
    """The rules (without `allowHubFields`) that change the id, type or time the adapter derives from
    its own sample: each rule that matches the sample events' data is applied alone to the sample's
    body, and the adapter normalizes it again.

    An id the adapter falls back on (the body's hash) changes with any edit and is not counted. The
    check sees what the sample carries: a path the sample lacks cannot be judged here, nor a provider
    whose events' data is not its JSON body (a batch's element: the rule's path is not the body's).
    """
    candidates = [(i, rule) for i, rule in enumerate(document.spec.redact) if not rule.allowHubFields]
    if not candidates:
        return []
    sample = adapter.sample(now)
    events = _normalized(adapter, sample.headers, sample.body, now)
    try:
        parsed = orjson.loads(sample.body)
    except orjson.JSONDecodeError:  # a form-encoded provider: its data is no JSON body to redact here
        return []
    if events is None:
        return []
    problems = []
    for index, rule in candidates:
        if not _matches(rule, events):
            continue
        body = orjson.dumps(Redaction([rule], _PROBE_KEY, None).redact(parsed)[0])
        after = _normalized(adapter, sample.headers, body, now)
        fallback = body_sha256(body)
        if (
            after is None
            or len(after) != len(events)
            or any(
                (new_id != old_id and new_id != fallback) or new_type != old_type or new_time != old_time
                for (old_id, old_type, old_time), (new_id, new_type, new_time) in zip(
                    _derived(events), _derived(after), strict=True
                )
            )
        ):
            what = f"the {document.spec.provider} event's id, type or time"
            problems.append(_hub_field_problem(document, index, what))
    return problems


def _hub_field_problem(document: ConnectorDocument, index: int, what: str) -> Problem:
    path = document.spec.redact[index].path
    return Problem(
        _label(document),
        f"spec.redact[{index}].path",
        f"{path} is where the hub reads {what} from (kept from the original payload whatever the rule "
        "does): set allowHubFields: true to redact it in the data anyway",
    )


def _selector_fields(expression: str) -> tuple[tuple[str, ...], bool]:
    """The field chain of a JMESPath selector (`meta.id` -> ("meta", "id"), True), or every field
    name it mentions (False) when it is more than a chain."""
    names: list[str] = []
    pure = True

    def visit(node: Any) -> None:
        nonlocal pure
        if node["type"] == "field":
            names.append(node["value"])
        elif node["type"] != "subexpression":
            pure = False
        for child in node.get("children", []):
            visit(child)

    visit(jmespath.compile(expression).parsed)
    return tuple(names), pure


def _touches(segments: tuple[str, ...], fields: tuple[str, ...], pure: bool) -> bool:
    if not pure:
        return any(segment == WILDCARD or segment in fields for segment in segments)
    return all(segment in (WILDCARD, name) for segment, name in zip(segments, fields, strict=False))


def poll_hub_field_problems(document: ConnectorDocument) -> list[Problem]:
    """The rules (without `allowHubFields`) whose path overlaps a poll item selector of the id, type
    or time (a parent or a child of the selected field, `*` matching any name); a selector that is
    more than a field chain counts as reading every field it names."""
    items = document.spec.poll.items if document.spec.poll is not None else None
    if items is None or not document.spec.redact:
        return []
    selectors = {
        name: _selector_fields(expression)
        for name, expression in (("id", items.id), ("type", items.type), ("time", items.time))
        if expression is not None
    }
    problems = []
    for index, rule in enumerate(document.spec.redact):
        if rule.allowHubFields:
            continue
        segments = pointer_segments(rule.path)
        hit = [name for name, (fields, pure) in selectors.items() if _touches(segments, fields, pure)]
        if hit:
            problems.append(_hub_field_problem(document, index, f"the item's {' and '.join(hit)} (spec.poll.items)"))
    return problems


def unmatched_rules(document: ConnectorDocument, adapter: WebhookAdapter, now: float) -> list[int]:  # type: ignore[type-arg]
    """Indexes of the rules that match nothing in the data of the provider's sample events (a typo,
    or a field this provider does not send): for `validate` to warn about."""
    if not document.spec.redact:
        return []
    sample = adapter.sample(now)
    events = _normalized(adapter, sample.headers, sample.body, now)
    if events is None:
        return []
    return [index for index, rule in enumerate(document.spec.redact) if not _matches(rule, events)]
