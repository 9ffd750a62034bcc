"""Comparison of gradient pytrees for the engine tests.

The error of a leaf is normwise: ``max|got - want| / max|want|`` (the max-norm of
the difference relative to the max-norm of the reference), so one tiny reference
entry cannot inflate it, and a leaf that should be zero is compared absolutely.
"""

import jax
import jax.numpy as jnp
import numpy as np


def leaf_errors(got, want) -> dict[str, float]:
    """Normwise relative error of every leaf, keyed by its pytree path."""
    errors = {}
    for (path, g), w in zip(
        jax.tree_util.tree_flatten_with_path(got)[0], jax.tree_util.tree_leaves(want), strict=True
    ):
        g = np.asarray(g, np.float64)
        w = np.asarray(w, np.float64)
        assert g.shape == w.shape, f"{jax.tree_util.keystr(path)}: {g.shape} vs {w.shape}"
        scale = max(np.max(np.abs(w), initial=0.0), np.finfo(np.float64).tiny)
        errors[jax.tree_util.keystr(path)] = float(np.max(np.abs(g - w), initial=0.0) / scale)
    return errors


def assert_trees_close(got, want, rtol: float, what: str = "") -> None:
    """Fails naming every leaf whose normwise relative error exceeds ``rtol``."""
    jax.tree.map(lambda g, w: None, got, want)  # same structure, or a clear TypeError
    errors = leaf_errors(got, want)
    bad = {path: err for path, err in errors.items() if not err <= rtol}
    assert not bad, f"{what} leaves over rtol={rtol:g}: {bad}"


def max_abs(tree) -> float:
    return max(float(jnp.max(jnp.abs(leaf))) for leaf in jax.tree_util.tree_leaves(tree))
