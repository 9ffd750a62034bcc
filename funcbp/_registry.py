"""Named registries (activations, costs): a lookup whose error lists the valid names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

T = TypeVar("T")


def lookup(registry: Mapping[str, T], name: str, kind: str) -> T:
    """``registry[name]``.

    Raises:
      ValueError: ``name`` is not registered (or not a string); the message names the
        ``kind`` (e.g. ``"activation"``) and lists the valid names.
    """
    try:
        return registry[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown {kind} {name!r}; valid names: {', '.join(registry)}") from None
