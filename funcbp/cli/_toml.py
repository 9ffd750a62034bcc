"""Tables of plain values as TOML text (``tomllib`` reads TOML; nothing here writes it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def text(tables: Mapping[str, Mapping[str, Any]]) -> str:
    """``{section: {key: value}}`` as TOML: bools, strings, numbers, lists and inline tables."""
    lines = []
    for section, table in tables.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {_value(value)}" for key, value in table.items())
        lines.append("")
    return "\n".join(lines)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k} = {_value(v)}" for k, v in value.items()) + "}"
    return repr(value)
