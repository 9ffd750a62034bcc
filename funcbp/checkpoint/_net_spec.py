"""A network spec as JSON-ready names, and back: how checkpoints record their ``MLP``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from funcbp import activations, losses
from funcbp.activations import Activation
from funcbp.losses import Cost
from funcbp.mlp import MLP

_NET_FIELDS = ("sizes", "activation", "output_activation", "cost", "l2", "initializer",
               "compute_dtype", "dropout")  # fmt: skip


def net_spec(net: MLP) -> dict[str, Any]:
    """``net``'s fields as JSON-ready values (tuples as lists, user pieces by their names);
    ``net_from_spec`` inverts it.

    Example: ``{"sizes": [4, 8, 3], "activation": "tanh", "output_activation":
    "identity", "cost": "mse", "l2": 0.0, "initializer": "auto", "compute_dtype": None,
    "dropout": 0.0}``.

    Raises:
      ValueError: ``net`` is not an ``MLP``.
    """
    if not isinstance(net, MLP):
        raise ValueError(f"net must be a funcbp.MLP, got {type(net).__name__}")

    def named(value):
        if isinstance(value, tuple) and not isinstance(value, Activation | Cost):
            return [named(v) for v in value]
        return value.name if isinstance(value, Activation | Cost) else value

    return {field: named(getattr(net, field)) for field in _NET_FIELDS}


def net_from_spec(spec: Mapping[str, Any], pieces: Sequence[Activation | Cost] = ()) -> MLP:
    """The ``MLP`` that ``spec`` (``net_spec``'s form) describes; absent fields: the defaults.

    ``pieces``: the user activations and costs the spec names (matched by name).

    Raises:
      ValueError: ``spec`` is not a mapping, has a field ``MLP`` lacks, names a user
        piece not in ``pieces``, or a value ``MLP`` refuses (its message).
    """
    if not isinstance(spec, Mapping):
        raise ValueError(f"a network spec must be a mapping, got {type(spec).__name__}")
    unknown = sorted(set(spec) - set(_NET_FIELDS))
    if unknown:
        raise ValueError(
            f"network spec field {unknown[0]!r} is not an MLP field ({', '.join(_NET_FIELDS)})"
        )
    if "sizes" not in spec:
        raise ValueError("network spec needs 'sizes'")
    by_name = {(type(p), p.name): p for p in pieces}

    def piece(kind: type, builtin: tuple[str, ...], name):
        if not isinstance(name, str) or name in builtin:
            return name
        if (kind, name) not in by_name:
            raise ValueError(
                f"the network uses the {kind.__name__.lower()} {name!r}, which is not built in; "
                f"pass it: load_checkpoint(path, pieces=[{name}])"
            )
        return by_name[kind, name]

    spec = dict(spec)
    for field, kind, builtin in (("activation", Activation, activations.NAMES),
                                 ("output_activation", Activation, activations.NAMES),
                                 ("cost", Cost, losses.NAMES)):  # fmt: skip
        if field in spec:
            value = spec[field]
            many = isinstance(value, list)
            spec[field] = [piece(kind, builtin, v) for v in value] if many else piece(
                kind, builtin, value)  # fmt: skip
    return MLP(**spec)  # MLP turns the lists back into tuples
