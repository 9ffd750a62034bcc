"""Reading ``funcbp.checkpoint/1``, funcbp 0.1's format, which named arrays by pytree path."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from funcbp.errors import CheckpointError

FORMAT = "funcbp.checkpoint/1"
# Its pytree paths in {"state": TrainState, "progress": Progress}, and format 2's names.
_NAMES = (
    (re.compile(r"\['state'\]\.params\[(\d+)\]\['(\w+)'\]"), r"params/\1/\2"),
    (re.compile(r"\['progress'\]\.best_params\[(\d+)\]\['(\w+)'\]"), r"progress/best_params/\1/\2"),
    (re.compile(r"\['state'\]\.(step|key)"), r"\1"),
    (re.compile(r"\['progress'\]\.(\w+)"), r"progress/\1"),  # epoch, best, best_epoch, stopped
)
_OPT_STATE = "['state'].opt_state"


def upgrade(path: Path, stored: dict[str, np.ndarray], dtypes: Mapping[str, str]):
    """A ``funcbp.checkpoint/1`` file's arrays and metadata entries under ``/2``'s names.

    ``/1`` named arrays by pytree path and listed ``dtypes`` in flatten order,
    which numbers the optimizer state's leaves as ``/2`` does. It recorded no shapes.
    """
    if set(dtypes) != set(stored):
        raise CheckpointError(f"{path}: its arrays and its metadata's dtypes do not agree")
    arrays, entries = {}, {}
    for old, dtype in dtypes.items():
        if old.startswith(_OPT_STATE):
            new = f"opt_state/{sum(n.startswith('opt_state/') for n in arrays):03d}"
        else:
            found = [p.fullmatch(old).expand(r) for p, r in _NAMES if p.fullmatch(old)]
            if not found:
                raise CheckpointError(f"{path} holds {old}, which no funcbp state has")
            new = found[0]
        arrays[new] = stored[old]
        key = re.fullmatch(r"key<(.+)>", dtype)
        entries[new] = {"dtype": "key", "impl": key[1]} if key else {"dtype": dtype}
    return arrays, entries
