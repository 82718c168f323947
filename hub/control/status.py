"""The status of each connector, in the `hub_status` KV bucket so that every instance reports the same.

Writers: the control plane when a spec is stored (`provisioning`, or `disabled`), and each instance
that loads it (`active`, or `error` when it cannot: a secret it cannot resolve, say), that serves
it (`lastSuccessAt`), or that polls it (`degraded`, `credential_expired`). Each write is a
read-merge-update on the KV revision, so two instances never undo each other's fields.

The status also carries the connector's SLOs (the objectives of its spec revision and their last
evaluation, hub/control/slo.py) and its certification (hub/control/certification.py): a new spec
revision starts the certification over (`pending`), and a reporter's observation evaluates the SLOs
and advances the certification inside the same merge.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

import orjson
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from events.envelope import rfc3339
from hub.control.buckets import current_entries, status_key
from hub.control.certification import Certification, Observation, advance, pending, seconds_of, seconds_or_none
from hub.control.slo import SloStatus, evaluated

State = Literal["provisioning", "active", "degraded", "error", "credential_expired", "disabled"]
STATES: tuple[State, ...] = ("provisioning", "active", "degraded", "error", "credential_expired", "disabled")
UPDATE_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class ConnectorStatus:
    """What every instance agrees a connector's state is."""

    state: State
    revision: int | None = None
    lastSuccessAt: str | None = None
    lastError: str | None = None
    healthCheckedAt: str | None = None
    certification: Certification | None = None
    slo: SloStatus | None = None
    """None: the spec sets no objectives."""

    def to_dict(self) -> dict[str, Any]:
        """JSON form (every field present; unknown ones null)."""
        return {
            "state": self.state,
            "revision": self.revision,
            "lastSuccessAt": self.lastSuccessAt,
            "lastError": self.lastError,
            "healthCheckedAt": self.healthCheckedAt,
            "certification": self.certification.to_dict() if self.certification else None,
            "slo": self.slo.to_dict() if self.slo else None,
        }

    @classmethod
    def from_json(cls, value: bytes) -> ConnectorStatus:
        """Parse a stored status; an unknown state reads as `error` rather than failing a status page."""
        data = orjson.loads(value)
        state = data.get("state")
        return cls(
            state=state if state in STATES else "error",
            revision=data.get("revision"),
            lastSuccessAt=data.get("lastSuccessAt"),
            lastError=data.get("lastError"),
            healthCheckedAt=data.get("healthCheckedAt"),
            certification=Certification.from_dict(data.get("certification")),
            slo=SloStatus.from_dict(data.get("slo")),
        )


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A partial update: fields left None are kept as stored (`clear_error` empties lastError)."""

    state: State | None = None
    revision: int | None = None
    last_success_at: str | None = None
    last_error: str | None = None
    clear_error: bool = False
    health_checked: bool = False
    slo: dict[str, Any] | None = None
    """The objectives of `revision`'s spec (hub.control.slo.objectives_of); None: unknown to the writer,
    or none set."""
    observation: Observation | None = None

    def merged(self, current: ConnectorStatus | None, now: float) -> ConnectorStatus:
        """The stored status with this change applied; an older spec revision never overrides a newer one's state."""
        base = current or ConnectorStatus(state="provisioning")
        if self.revision is not None and base.revision is not None and self.revision < base.revision:
            return base  # written by an instance that has not seen the latest spec yet
        if self.state == "provisioning" and base.revision == self.revision and base.state != "provisioning":
            return base  # an instance loaded this revision before the writer's own note arrived
        status = base
        if (self.revision is not None and self.revision != base.revision) or current is None:
            # created, or a new spec revision: the certification starts over, with that revision's objectives
            objectives = SloStatus(self.slo) if self.slo is not None else None
            status = replace(status, certification=pending(self.revision, now), slo=objectives)
        elif self.slo is not None and (status.slo is None or status.slo.objectives != self.slo):
            status = replace(status, slo=SloStatus(self.slo))
        if self.state is not None:
            status = replace(status, state=self.state)
        if self.revision is not None:
            status = replace(status, revision=self.revision)
        if self.last_success_at is not None and (status.lastSuccessAt or "") < self.last_success_at:
            status = replace(status, lastSuccessAt=self.last_success_at)
        if self.clear_error:
            status = replace(status, lastError=None)
        if self.last_error is not None:
            status = replace(status, lastError=self.last_error)
        if self.health_checked:
            status = replace(status, healthCheckedAt=rfc3339(now))
        if self.observation is not None:
            status = _observed(status, self.observation, now)
        return status


def _observed(status: ConnectorStatus, observation: Observation, now: float) -> ConnectorStatus:
    """The status with its SLOs evaluated and its certification advanced by one step."""
    certification = status.certification or pending(status.revision, now)
    last_success = seconds_or_none(status.lastSuccessAt)
    slo = status.slo
    if slo is not None:
        quiet_since = seconds_of(certification.since)
        slo = evaluated(slo, observation.minutes, last_success=last_success, quiet_since=quiet_since, now=now)
    results = slo.results if slo is not None else ()
    certification = advance(certification, results, last_success=last_success, now=now, period_s=observation.period_s)
    return replace(status, certification=certification, slo=slo)


class StatusStore:
    """Connector statuses in their bucket."""

    def __init__(self, kv: KeyValue, *, clock: Callable[[], float] = time.time) -> None:
        self._kv = kv
        self._clock = clock
        """The time merges are made at (SLO ages, certification periods); tests inject theirs."""

    async def get(self, tenant: str, name: str) -> ConnectorStatus | None:
        """The stored status, or None."""
        try:
            entry = await self._kv.get(status_key(tenant, name))
        except KeyNotFoundError:
            return None
        return ConnectorStatus.from_json(entry.value or b"{}")

    async def all(self, tenant: str | None = None) -> dict[tuple[str, str], ConnectorStatus]:
        """Every stored status of a tenant (None: of all), by (tenant, name)."""
        found = {}
        for entry in await current_entries(self._kv, ">" if tenant is None else f"{tenant}.*"):
            owner, _, name = entry.key.partition(".")
            found[(owner, name)] = ConnectorStatus.from_json(entry.value or b"{}")
        return found

    async def update(self, tenant: str, name: str, change: StatusChange) -> ConnectorStatus:
        """Apply a partial change with compare-and-set, retrying when another instance wrote first."""
        key = status_key(tenant, name)
        for _ in range(UPDATE_ATTEMPTS):
            try:
                entry = await self._kv.get(key)
                current, revision = ConnectorStatus.from_json(entry.value or b"{}"), entry.revision
            except KeyNotFoundError:
                current, revision = None, None
            status = change.merged(current, self._clock())
            if status == current:
                return status
            value = orjson.dumps(status.to_dict())
            try:
                if revision is None:
                    await self._kv.create(key, value)
                else:
                    await self._kv.update(key, value, last=revision)
                return status
            except KeyWrongLastSequenceError:
                continue
        return status  # lost every race: another instance keeps writing; its status stands

    async def remove(self, tenant: str, name: str) -> None:
        """Forget a deleted connector's status."""
        await self._kv.purge(status_key(tenant, name))
