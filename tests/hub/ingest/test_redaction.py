"""Redaction rules: the pointer syntax, mask/hash/drop, truncation, the hub-field refusal, the fast
path left untouched, and `validate`'s warning about a rule that matches nothing."""

from __future__ import annotations

import hashlib
import hmac
import textwrap
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from pydantic import ValidationError

from adapters.base import InboundRequest, NormalizedEvent, Verification
from events.envelope import headers_to_attributes
from hub.cli.validate import validate_paths
from hub.control.checks import ServingLimits
from hub.errors import ConfigError
from hub.ingest.connectors import build_connector
from hub.ingest.ingestor import Provenance, build_envelope
from hub.ingest.redaction import MASK, Redaction, truncated
from hub.ingest.secrets import SecretResolver, store_secrets_of
from hub.ingress.handler import envelopes_for
from hub.poll.sources import build_source
from schemas.connector import ConnectorDocument
from schemas.redaction import RedactionRule

DEFAULTS = {"publish_timeout_s": 5.0, "claim_ttl_s": 30.0, "duplicate_window_s": 900.0}
KEY = b"tenant-redaction-key"


def document(spec: str, *, provider: str = "stripe", tenant: str = "acme") -> ConnectorDocument:
    text = f"""\
    apiVersion: hub/v1
    kind: Connector
    metadata: {{name: c, tenant: {tenant}}}
    spec:
      type: webhook
      provider: {provider}
      secrets: [{{secretRef: {{source: env, name: REDACTION_TEST_SECRET}}}}]
    """
    return ConnectorDocument.model_validate(yaml.safe_load(textwrap.dedent(text) + textwrap.indent(spec, "  ")))


def rules(*pairs: tuple[str, str]) -> list[RedactionRule]:
    return [RedactionRule(path=path, action=action) for path, action in pairs]  # type: ignore[arg-type]


def hmac_hex(key: bytes, value: Any) -> str:
    return hmac.new(key, orjson.dumps(value, option=orjson.OPT_SORT_KEYS), hashlib.sha256).hexdigest()


PAYLOAD = {
    "customer": {"email": "ada@example.com", "name": "Ada"},
    "items": [{"card": "4242424242424242", "sku": "a"}, {"card": "5555555555554444", "sku": "b"}],
    "a/b": {"~x": "escaped"},
    "count": 3,
}


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDACTION_TEST_SECRET", "whsec_redaction_unit")


# --- the rule model ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("customer/email", "starting with `/`"),
        ("", "starting with `/`"),
        ("/a~2b", "must be escaped"),
        ("/" + "/".join(["x"] * 33), "at most 32 segments"),
    ],
)
def test_a_path_that_is_no_json_pointer_is_refused_naming_the_rule(path: str, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        document(f"redact: [{{path: {orjson.dumps(path).decode()}, action: mask}}]\n")
    (error,) = caught.value.errors()
    assert error["loc"][:4] == ("spec", "redact", 0, "path")
    assert message in error["msg"]


def test_an_unknown_action_is_refused() -> None:
    with pytest.raises(ValidationError, match="'mask', 'hash' or 'drop'"):
        document("redact: [{path: /x, action: encrypt}]\n")


# --- mask, hash, drop -----------------------------------------------------------------------


def test_mask_hash_and_drop_with_wildcards_indexes_and_escapes() -> None:
    redaction = Redaction(
        rules(("/customer/email", "mask"), ("/items/*/card", "hash"), ("/items/1/sku", "drop"), ("/a~1b/~0x", "drop")),
        KEY,
        None,
    )
    result = redaction.apply(orjson.Fragment(orjson.dumps(PAYLOAD)))
    assert result.data == {
        "customer": {"email": MASK, "name": "Ada"},
        "items": [{"card": hmac_hex(KEY, "4242424242424242"), "sku": "a"}, {"card": hmac_hex(KEY, "5555555555554444")}],
        "a/b": {},
        "count": 3,
    }
    assert orjson.loads(result.attributes["hubredactions"]) == {
        "count": 5,
        "paths": ["/customer/email", "/items/*/card", "/items/1/sku", "/a~1b/~0x"],
    }
    assert "hubtruncated" not in result.attributes


def test_the_recorded_paths_are_the_rules_never_the_values() -> None:
    result = Redaction(rules(("/customer/*", "hash")), KEY, None).apply(PAYLOAD)
    recorded = result.attributes["hubredactions"]
    assert "ada@example.com" not in recorded
    assert "Ada" not in recorded
    assert orjson.loads(recorded) == {"count": 2, "paths": ["/customer/*"]}


def test_the_callers_data_is_not_changed() -> None:
    item = {"customer": {"email": "ada@example.com"}}
    Redaction(rules(("/customer/email", "drop")), KEY, None).apply(item)
    assert item == {"customer": {"email": "ada@example.com"}}


def test_equal_values_hash_equal_and_another_key_hashes_otherwise() -> None:
    acme = Redaction(rules(("/*/card", "hash")), KEY, None)
    other = Redaction(rules(("/*/card", "hash")), b"another tenant's key", None)
    data = {"a": {"card": "4242"}, "b": {"card": "4242"}, "c": {"card": 4242}}
    mine = acme.apply(data).data
    assert mine["a"]["card"] == mine["b"]["card"] == hmac_hex(KEY, "4242")
    assert mine["c"]["card"] != mine["a"]["card"]  # the number 4242 is not the string "4242"
    assert other.apply(data).data["a"]["card"] != mine["a"]["card"]


def test_a_whole_object_or_list_is_masked_hashed_or_dropped_as_one_value() -> None:
    data = {"customer": {"email": "e", "tags": [1, 2]}, "items": [1, 2, 3]}
    assert Redaction(rules(("/customer", "mask")), KEY, None).apply(data).data["customer"] == MASK
    assert Redaction(rules(("/customer", "hash")), KEY, None).apply(data).data["customer"] == hmac_hex(
        KEY, data["customer"]
    )
    assert Redaction(rules(("/items/*", "drop")), KEY, None).apply(data).data["items"] == []


@pytest.mark.parametrize("path", ["/missing", "/items/2/card", "/items/01/card", "/items/-/card", "/count/x"])
def test_a_path_that_matches_nothing_changes_nothing_and_records_nothing(path: str) -> None:
    result = Redaction(rules((path, "mask")), KEY, None).apply(PAYLOAD)
    assert result.data == PAYLOAD
    assert result.attributes == {}


def test_without_the_key_a_hash_masks_rather_than_leaks() -> None:
    data = Redaction(rules(("/customer/email", "hash")), None, None).apply(PAYLOAD).data
    assert data["customer"]["email"] == MASK


# --- truncation -------------------------------------------------------------------------------


def test_data_over_the_limit_has_its_longest_strings_cut_to_fit() -> None:
    data = {"id": "evt_1", "body": "x" * 10_000, "note": "short", "n": 7}
    size = len(orjson.dumps(data))
    result = Redaction([], None, 2048).apply(orjson.Fragment(orjson.dumps(data)))
    assert result.attributes == {"hubtruncated": "true", "huboriginalsize": str(size)}
    out = result.data
    assert 2048 - 2 <= len(orjson.dumps(out)) <= 2048  # the longest cut that fits, not a shorter one
    assert out["n"] == 7
    assert out["body"] == "x" * len(out["body"])
    assert out["id"] == "evt_1"
    assert out["note"] == "short"


def test_data_within_the_limit_is_embedded_as_received() -> None:
    fragment = orjson.Fragment(b'{"a":  "spaced as sent"}')
    result = Redaction([], None, 2048).apply(fragment)
    assert result.data is fragment
    assert result.attributes == {}


def test_data_that_is_mostly_structure_becomes_null() -> None:
    data = [{"k": i} for i in range(500)]
    assert truncated(data, 1024) is None
    result = Redaction([], None, 1024).apply(data)
    assert result.data is None
    assert result.attributes["hubtruncated"] == "true"


def test_truncation_comes_after_redaction() -> None:
    data = {"secret": "s" * 5000, "keep": "k" * 10}
    result = Redaction(rules(("/secret", "drop")), KEY, 1024).apply(data)
    assert result.data == {"keep": "k" * 10}
    assert "hubtruncated" not in result.attributes


# --- the connector: fast path, key, hub fields --------------------------------------------------


class _Store:
    """A secret store holding acme's redaction key only."""

    def resolve(self, tenant: str, name: str, version: int | None = None) -> bytes:
        if (tenant, name) == ("acme", "redaction-key"):
            return KEY
        raise LookupError(f"secret {name} of tenant {tenant} is not in the store")


def inbound(body: bytes) -> InboundRequest:
    return InboundRequest(method="POST", url="/hooks/acme/c", headers={}, body=body, received_at=1_700_000_000.0)


STRIPE_BODY = b'{"id": "evt_1",  "type": "invoice.paid", "created": 1700000000, "data": {"object": {"email": "e@x"}}}'
VERIFIED = Verification(scheme="hmac-sha256", key_id="k1")


def test_without_rules_the_envelope_is_byte_for_byte_the_one_built_before() -> None:
    connector = build_connector(document(""), **DEFAULTS)  # type: ignore[arg-type]
    assert connector.redaction is None
    (envelope,) = envelopes_for(connector, inbound(STRIPE_BODY), VERIFIED)
    (event,) = connector.adapter.normalize(inbound(STRIPE_BODY))
    provenance = Provenance(VERIFIED, 1_700_000_000.0, envelope.hubbodysha256, envelope.traceparent)
    assert envelope.to_json() == build_envelope(connector, event, provenance).to_json()
    assert b'"data":' + STRIPE_BODY in envelope.to_json()  # the body as sent (its double space too)
    assert not {"hubredactions", "hubtruncated", "huboriginalsize"} & set(envelope.attributes())


def test_with_rules_hub_fields_come_from_the_original_and_the_body_hash_from_the_signed_bytes() -> None:
    spec = "redact: [{path: /data/object/email, action: hash}, {path: /type, action: drop, allowHubFields: true}]\n"
    connector = build_connector(document(spec), **DEFAULTS, resolver=SecretResolver(_Store()))  # type: ignore[arg-type]
    (envelope,) = envelopes_for(connector, inbound(STRIPE_BODY), VERIFIED)
    assert (envelope.id, envelope.type, envelope.time) == ("evt_1", "stripe.invoice.paid", "2023-11-14T22:13:20.000Z")
    assert envelope.hubbodysha256 == hashlib.sha256(STRIPE_BODY).hexdigest()
    body = orjson.loads(envelope.to_json())
    assert body["data"] == {"id": "evt_1", "created": 1700000000, "data": {"object": {"email": hmac_hex(KEY, "e@x")}}}
    assert orjson.loads(body["hubredactions"]) == {"count": 2, "paths": ["/data/object/email", "/type"]}
    assert headers_to_attributes(envelope.to_headers())["hubredactions"] == body["hubredactions"]


def test_a_hash_rule_without_the_tenants_key_refuses_the_connector() -> None:
    spec = "redact: [{path: /data/object/email, action: hash}]\n"
    doc = document(spec, tenant="beta")
    assert "redaction-key" in store_secrets_of(doc)  # the watcher rebuilds on its change; apply checks it exists
    with pytest.raises(ConfigError) as caught:
        build_connector(doc, **DEFAULTS, resolver=SecretResolver(_Store()))  # type: ignore[arg-type]
    (problem,) = caught.value.problems
    assert problem.field == "spec.redact"
    assert "redaction-key" in problem.message
    assert "secrets set beta/redaction-key" in problem.message


def test_mask_and_drop_need_no_key() -> None:
    doc = document("redact: [{path: /data, action: drop}]\n", tenant="beta")
    assert "redaction-key" not in store_secrets_of(doc)
    connector = build_connector(doc, **DEFAULTS, resolver=SecretResolver(_Store()))  # type: ignore[arg-type]
    assert connector.redaction is not None


@pytest.mark.parametrize(("path", "action"), [("/id", "mask"), ("/type", "hash"), ("/created", "drop")])
def test_a_rule_on_a_field_the_adapter_reads_for_id_type_or_time_is_refused(path: str, action: str) -> None:
    doc = document(f"redact: [{{path: /data/object/customer, action: mask}}, {{path: {path}, action: {action}}}]\n")
    with pytest.raises(ConfigError) as caught:
        build_connector(doc, **DEFAULTS, resolver=SecretResolver(_Store()))  # type: ignore[arg-type]
    (problem,) = caught.value.problems
    assert problem.field == "spec.redact[1].path"
    assert "allowHubFields" in problem.message
    allowed = document(f"redact: [{{path: {path}, action: {action}, allowHubFields: true}}]\n")
    assert build_connector(allowed, **DEFAULTS, resolver=SecretResolver(_Store())).redaction is not None  # type: ignore[arg-type]


def test_an_id_taken_from_a_header_leaves_every_body_path_free() -> None:
    """GitHub's id is the delivery header and its type the event header: no body path is a hub field."""
    doc = document("redact: [{path: /pusher/email, action: mask}, {path: /ref, action: drop}]\n", provider="github")
    assert build_connector(doc, **DEFAULTS).redaction is not None  # type: ignore[arg-type]


def poll_document(rules_yaml: str, items: str = "{path: items, id: meta.id, type: kind}") -> ConnectorDocument:
    text = f"""\
    apiVersion: hub/v1
    kind: Connector
    metadata: {{name: api, tenant: acme}}
    spec:
      type: poll
      provider: acme-api
      poll: {{kind: http_json, interval: 1h, request: {{url: "https://api.example.com/items"}}, items: {items}}}
      redact: {rules_yaml}
    """
    return ConnectorDocument.model_validate(yaml.safe_load(textwrap.dedent(text)))


@pytest.mark.parametrize("path", ["/meta/id", "/meta", "/*/id", "/kind"])
def test_a_poll_rule_on_an_item_selector_is_refused(path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_source(poll_document(f"[{{path: {path}, action: mask}}]"), publish_timeout_s=5.0)
    (problem,) = caught.value.problems
    assert problem.field == "spec.redact[0].path"
    assert "spec.poll.items" in problem.message


def test_a_poll_rule_elsewhere_or_allowed_is_accepted() -> None:
    fine = "[{path: /meta/etag, action: drop}, {path: /kind, action: mask, allowHubFields: true}]"
    source = build_source(poll_document(fine), publish_timeout_s=5.0)
    assert source.redaction is not None
    assert [rule.path for rule in source.redaction.rules] == ["/meta/etag", "/kind"]


def test_a_poll_selector_beyond_a_field_chain_counts_every_field_it_names() -> None:
    with pytest.raises(ConfigError, match="item's id"):
        build_source(
            poll_document("[{path: /ref, action: mask}]", "{id: \"join('-', [ref, seq])\"}"), publish_timeout_s=5.0
        )


# --- validate --------------------------------------------------------------------------------


def test_validate_warns_about_a_rule_that_matches_nothing_in_the_sample(tmp_path: Path) -> None:
    spec = tmp_path / "c.yaml"
    spec.write_text(
        textwrap.dedent("""\
        apiVersion: hub/v1
        kind: Connector
        metadata: {name: other, tenant: acme}
        spec: {type: webhook, provider: github, secrets: [{secretRef: {source: env, name: X}}]}
        ---
        apiVersion: hub/v1
        kind: Connector
        metadata: {name: gh, tenant: acme}
        spec:
          type: webhook
          provider: github
          secrets: [{secretRef: {source: env, name: X}}]
          redact:
            - {path: /pusher/email, action: mask}
            - {path: /pusher/emial, action: mask}
            - {path: /head_commit/author/*, action: drop}
        """)
    )
    report = validate_paths([spec], ServingLimits(900.0, 30.0))
    assert report.problems == []
    assert report.connectors == 2
    assert report.warnings == [
        f"{spec}: document 2: spec.redact[1]: /pusher/emial matches nothing in the github sample payload"
    ]


def test_validate_refuses_a_hub_field_rule(tmp_path: Path) -> None:
    spec = tmp_path / "c.yaml"
    spec.write_text(
        textwrap.dedent("""\
        apiVersion: hub/v1
        kind: Connector
        metadata: {name: st, tenant: acme}
        spec:
          type: webhook
          provider: stripe
          secrets: [{secretRef: {source: env, name: X}}]
          redact: [{path: /id, action: mask}]
        """)
    )
    report = validate_paths([spec], ServingLimits(900.0, 30.0))
    (problem,) = report.problems
    assert problem.startswith(
        f"{spec}: document 1: spec.redact[0].path: /id is where the hub reads the stripe event's id"
    )


def test_events_without_a_redaction_take_no_detour() -> None:
    """`build_envelope` without a redaction embeds a Fragment as the same object (never parsed)."""
    fragment = orjson.Fragment(b'{"k":1}')
    connector = build_connector(document(""), **DEFAULTS)  # type: ignore[arg-type]
    event = NormalizedEvent(id="e", type="stripe.x", data=fragment)
    envelope = build_envelope(connector, event, Provenance(VERIFIED, 0.0, "h", None))
    assert envelope.data is fragment
