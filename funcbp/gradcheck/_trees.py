"""Pytree helpers of the checks: leaf paths, the caller's dtype, float64 copies, validation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def leaf_paths(tree) -> list[str]:
    """Each leaf's path as the report names it (``[1]['w']``; ``""`` for a bare array)."""
    return [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def caller_dtype(tree) -> str:
    """The narrowest floating dtype among the leaves: the precision the caller works in."""
    dtypes = {jnp.result_type(leaf) for leaf in jax.tree_util.tree_leaves(tree)}
    return str(min(dtypes, key=lambda d: jnp.finfo(d).bits))


def to_numpy(tree) -> list[np.ndarray]:
    """The leaves as float64 NumPy arrays (the comparison runs on the host)."""
    return [np.asarray(leaf, np.float64) for leaf in jax.tree_util.tree_leaves(tree)]


# One program per tree structure, instead of one conversion program per leaf shape.
tree_f64 = jax.jit(lambda tree: jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), tree))


def check_float_tree(tree, what: str) -> None:
    """Raises ``ValueError`` naming the first leaf of ``tree`` that is not floating-point."""
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if not jnp.issubdtype(jnp.result_type(leaf), jnp.floating):
            raise ValueError(
                f"{what}{jax.tree_util.keystr(path)} has dtype {jnp.result_type(leaf)}; "
                "only floating-point inputs can be differentiated"
            )


def check_structure(got, want, what: str) -> None:
    """Raises ``ValueError`` unless ``got`` has ``want``'s pytree structure and leaf shapes."""
    got_tree, want_tree = jax.tree.structure(got), jax.tree.structure(want)
    if got_tree != want_tree:
        raise ValueError(f"{what} returned a pytree {got_tree}, expected {want_tree}")
    for path, g, w in zip(
        leaf_paths(want), jax.tree.leaves(got), jax.tree.leaves(want), strict=True
    ):
        if jnp.shape(g) != jnp.shape(w):
            raise ValueError(f"{what}{path} has shape {jnp.shape(g)}, expected {jnp.shape(w)}")
