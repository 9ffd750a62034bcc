"""User activations and costs named in a run file or a flag as ``"module:attribute"``.

``model.activation = "mypieces:mish"`` imports ``mypieces`` (from the run's working
directory, which is put on ``sys.path`` as ``python -m`` does, or from
``PYTHONPATH``) and takes its ``mish``, which must be a ``funcbp.Activation``
(``funcbp.Cost`` for ``model.cost``). The run file keeps the string, so the
resolved ``config.toml`` of a run names it the same way and ``--resume`` imports
it again. Built-in names never hold a ``:`` (``Activation`` and ``Cost`` refuse
one in their names), so the two forms cannot be confused.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from funcbp.activations import Activation
from funcbp.errors import ConfigError
from funcbp.losses import Cost

# The MLP keywords that take a piece, and the type a reference there must name.
KINDS: dict[str, type] = {
    "activation": Activation,
    "output_activation": Activation,
    "cost": Cost,
}


def is_reference(value: Any) -> bool:
    """Whether ``value`` is a ``"module:attribute"`` reference (a string with a ``:``)."""
    return isinstance(value, str) and ":" in value


def resolve_options(options: Mapping[str, Any], name: Callable[[str], str]) -> dict[str, Any]:
    """``options`` with every ``"module:attribute"`` under ``KINDS``' keys imported.

    A per-layer sequence of activations is resolved entry by entry.

    Raises:
      ConfigError: one line naming the key (``name(key)``, ``[i]`` for a list entry) and
        why the reference does not give a piece of the right kind.
    """
    resolved = dict(options)
    for key, kind in KINDS.items():
        value = options.get(key)
        if isinstance(value, tuple | list):
            resolved[key] = tuple(
                _resolve(f"{name(key)}[{i}]", v, kind) if is_reference(v) else v
                for i, v in enumerate(value)
            )
        elif is_reference(value):
            resolved[key] = _resolve(name(key), value, kind)
    return resolved


def _resolve(key: str, reference: str, kind: type) -> Activation | Cost:
    module_name, _, attribute = reference.partition(":")
    module_name, attribute = module_name.strip(), attribute.strip()
    wanted = f"a funcbp.{kind.__name__}"
    if not module_name or not attribute or ":" in attribute:
        raise ConfigError(
            f"{key}: {reference!r} is not a reference to {wanted}; write "
            f'"module:attribute", e.g. "mypieces:{"mish" if kind is Activation else "focal"}"'
        )
    _put_working_directory_on_path()
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # the user's module: not found, or it fails as it runs
        why = f"{type(err).__name__}: {err}".replace("\n", " ")
        raise ConfigError(
            f"{key}: cannot import module {module_name!r} for {reference!r} ({why}); it must "
            "be importable from the working directory or PYTHONPATH"
        ) from None
    value: Any = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise ConfigError(
                f"{key}: module {module_name!r} has no attribute {attribute!r} ({reference!r})"
            )
        value = getattr(value, part)
    if not isinstance(value, kind):
        raise ConfigError(
            f"{key}: {reference!r} is of type {type(value).__name__}, expected {wanted} "
            f"(funcbp.{kind.__name__}(name, ...))"
        )
    return value


def _put_working_directory_on_path() -> None:
    """The working directory on ``sys.path`` (first, as ``python -m`` puts it) unless there."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    importlib.invalidate_caches()  # a module written since the last import is found
