"""Configuration that changes while the hub runs, replaced as a whole.

Readers take `current` once per unit of work (a request, a message), so work already under way
finishes with the version it started with, and the next unit sees the new one: a change never
drops or half-applies an in-flight request.
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class Live(Generic[T]):
    """One piece of live configuration."""

    def __init__(self, value: T) -> None:
        self._value = value

    @property
    def current(self) -> T:
        """The version in force now."""
        return self._value

    def replace(self, value: T) -> None:
        """Put a new version in force (an attribute swap: atomic for every reader on the loop)."""
        self._value = value
