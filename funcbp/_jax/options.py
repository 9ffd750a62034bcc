"""One options object per family of functions, with keyword overrides of its fields.

``fit(..., epochs=5)`` and ``fit(..., FitOptions(epochs=5))`` mean the same: the
keywords are the options class's fields, defined once in it, never repeated in
the signatures of the functions that take it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def with_overrides(cls: type[T], options: T | None, overrides: Mapping[str, Any], what: str) -> T:
    """``options`` (``cls()``'s defaults when ``None``) with ``overrides`` applied by field name.

    Args:
      cls: a dataclass that validates itself when made.
      what: the function taking them, for messages, e.g. ``"fit"``.

    Raises:
      TypeError: an override that is not a field of ``cls`` (as Python does for any
        unexpected keyword), naming it and the valid ones; ``options`` not a ``cls``.
    """
    fields = [field.name for field in dataclasses.fields(cls)]
    unknown = [name for name in overrides if name not in fields]
    if unknown:
        raise TypeError(
            f"{what}() got unexpected keyword argument(s) {', '.join(map(repr, unknown))}; "
            f"its options ({cls.__name__} fields) are: {', '.join(fields)}"
        )
    if options is None:
        return cls(**overrides)
    if not isinstance(options, cls):
        raise TypeError(f"{what}(): options must be a {cls.__name__}, got {type(options).__name__}")
    return dataclasses.replace(options, **overrides) if overrides else options
