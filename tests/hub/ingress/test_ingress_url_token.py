"""A url-token connector end to end: `connector-hub url-token` issues the URL, the ingress admits it,
and rotating the signing key revokes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub import cli
from tests.conftest import HubFactory

pytestmark = pytest.mark.integration

SPECS = """
apiVersion: hub/v1
kind: Connector
metadata: {name: legacy, tenant: acme}
spec:
  type: webhook
  provider: url-token
  secrets: [{name: signing-key, secretRef: {source: env, name: URL_SIGNING_KEY_TEST}}]
  webhook: {options: {idPath: id, typePath: kind}}
"""
BODY = b'{"id": "evt_9", "kind": "report.ready"}'


async def test_issued_url_admits_and_rotation_revokes(
    make_hub: HubFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub = await make_hub(SPECS, env={"URL_SIGNING_KEY_TEST": "signing key one"})
    specs = tmp_path / "connectors-0.yaml"  # where make_hub wrote them
    assert cli.main(["url-token", "acme/legacy", "--connectors", str(specs), "--base-url", hub.url]) == 0
    url = capsys.readouterr().out.strip()
    assert url.startswith(f"{hub.url}/hooks/acme/legacy?token=")
    token = url.split("token=", 1)[1]

    async with hub.session.post(url, data=BODY) as response:
        assert response.status == 202
    assert (await hub.post("acme/legacy", BODY)).status == 401  # no token

    rotated = await make_hub(SPECS, env={"URL_SIGNING_KEY_TEST": "signing key two"})
    async with rotated.session.post(f"{rotated.url}/hooks/acme/legacy?token={token}", data=BODY) as response:
        assert response.status == 401
        assert (await response.json())["reason"] == "no_match"
