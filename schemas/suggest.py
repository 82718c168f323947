""" "Did you mean" for names a person typed: an unknown field of a spec, an unknown provider."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel
from pydantic_core import ErrorDetails


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """` (did you mean X?)` for the closest known name (case ignored), or nothing."""
    names = list(known)
    by_lower = {name.lower(): name for name in names}
    if word.lower() in by_lower:
        return f" (did you mean {by_lower[word.lower()]}?)"
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return f" (did you mean {by_lower[close[0]]}?)" if close else ""


def error_message(model: type[BaseModel], error: ErrorDetails) -> str:
    """A validation error's message, with the closest field name when the field is unknown."""
    message = error["msg"]
    if error["type"] != "extra_forbidden" or not error["loc"]:
        return message
    parent = _model_at(model, error["loc"][:-1])
    if parent is None:
        return message
    return message + did_you_mean(str(error["loc"][-1]), parent.model_fields)


def _model_at(model: type[BaseModel], loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model a location inside `model` points at (list indices and dict keys pass through)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            return None
        current = _inner_model(current.model_fields[part].annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    """The model inside `X`, `X | None`, `list[X]`, `dict[str, X]`, else the annotation itself."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        inner = _inner_model(arg)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return inner
    return annotation
