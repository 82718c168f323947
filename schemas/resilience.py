"""Retry-shaping parts shared by routes and poll sources: backoff and circuit breakers."""

from __future__ import annotations

from datetime import timedelta
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.durations import Duration


class Circuit(BaseModel):
    """A circuit breaker: after consecutive failures, stop calling for a cooldown."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    failureThreshold: int = Field(default=5, ge=1, le=1000)
    cooldown: Duration = Field(default=timedelta(seconds=30), description="Open time before a half-open probe")

    @model_validator(mode="after")
    def _sane(self) -> Self:
        if not timedelta(milliseconds=100) <= self.cooldown <= timedelta(hours=1):
            raise ValueError("cooldown must be between 100ms and 1h")
        return self


class Backoff(BaseModel):
    """Exponential backoff with jitter between failed attempts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    initial: Duration = timedelta(seconds=5)
    max: Duration = timedelta(minutes=10)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not timedelta(milliseconds=10) <= self.initial <= self.max <= timedelta(days=1):
            raise ValueError("backoff needs 10ms <= initial <= max <= 24h")
        return self
