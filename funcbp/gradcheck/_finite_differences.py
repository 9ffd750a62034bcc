"""Finite-difference kernels: elementwise, directional, and central differences of a gradient.

All of them run in float64, whatever the caller's dtype:

* The step for parameter ``i`` is ``h_i = step * max(1, |theta_i|)``. Central
  differences at ``h`` and ``h/2`` are combined by Richardson extrapolation,
  ``(4 C(h/2) - C(h)) / 3``, whose error is O(h^4): about 1e-12 relative here.
* Kinks: across a point where the derivative jumps (a ReLU pre-activation within
  the step of zero) a difference quotient is meaningless. The second differences
  ``D(h) = [f(t+h) - 2 f(t) + f(t-h)] / h`` scale linearly with ``h`` for a smooth
  function, so ``|D(h) - 2 D(h/2)|`` is O(h^3) there but of the order of the jump
  across a kink. Where it exceeds the finite-difference tolerance (plus the
  rounding noise below) the element is counted as a kink and left out of the
  finite-difference comparison: it neither passes nor fails.
* Rounding: f itself is rounded (``u |f|``, u float64's epsilon), so a difference
  quotient cannot resolve less than about ``u |f| / h`` (``FD_NOISE`` of these units
  are allowed), which the comparison adds to its threshold.
* ``elementwise`` perturbs every scalar (``lax.map`` over chunks of perturbations,
  each chunk ``vmap``-ed); ``directional`` takes ``k`` random unit directions inside
  each leaf, random signs ``+-1/sqrt(n)`` (O(k) evaluations per leaf: a wrong element
  shows in every direction, by ``1/sqrt(n)`` of its error); ``gradient_along``
  differences a gradient along one vector (the Hessian-vector product's reference).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from funcbp.gradcheck._report import FD_NOISE, KINK_NOISE, TOLERANCES

_SIGNED_STEPS = np.array([1.0, -1.0, 0.5, -0.5])  # f at t + h, t - h, t + h/2, t - h/2


class LeafDifferences(NamedTuple):
    """Finite differences of one leaf (NumPy, float64).

    Elementwise, ``values``, ``kinks`` and ``noise`` have the leaf's shape and
    ``directions`` is ``None``; directional, they are ``[k]``, one per direction,
    and ``directions`` ``[k, leaf.size]`` holds the unit directions.
    """

    values: np.ndarray  # the derivative estimates
    kinks: np.ndarray  # bool: a kink makes the estimate meaningless there
    noise: np.ndarray  # rounding noise of each estimate
    directions: np.ndarray | None


class Differences(NamedTuple):
    """Finite differences of every leaf, and what they cost."""

    leaves: list[LeafDifferences]
    evaluations: int  # of the function (the gradient, for ``gradient_along``)


def _richardson_and_kinks(f0, fp, fm, fp2, fm2, h, tol_scale):
    """From f at t, t +- h, t +- h/2: the extrapolated central difference, the kink
    flag, and the difference's rounding noise (``FD_NOISE`` units of ``u |f| / h``)."""
    central = (fp - fm) / (2 * h)
    central_half = (fp2 - fm2) / h
    derivative = (4 * central_half - central) / 3
    second = (fp - 2 * f0 + fm) / h
    second_half = (fp2 - 2 * f0 + fm2) / (h / 2)
    unit = jnp.finfo(jnp.float64).eps * jnp.abs(f0) / h
    threshold = TOLERANCES["finite_difference"] * tol_scale + KINK_NOISE * unit
    return derivative, jnp.abs(second - 2 * second_half) > threshold, FD_NOISE * unit


@functools.partial(jax.jit, static_argnums=(0, 1))
def _elementwise(fn, chunk, leaves, step, tol_scale, fn_args):
    theta, unravel = ravel_pytree(leaves)
    steps = step * jnp.maximum(1.0, jnp.abs(theta))
    f0 = fn(leaves, *fn_args)

    def at(i):
        e = jax.nn.one_hot(i, theta.size, dtype=theta.dtype)
        return jax.vmap(lambda s: fn(unravel(theta + s * steps[i] * e), *fn_args))(_SIGNED_STEPS)

    fp, fm, fp2, fm2 = jax.lax.map(at, jnp.arange(theta.size), batch_size=chunk).T
    return _richardson_and_kinks(f0, fp, fm, fp2, fm2, steps, tol_scale)


def elementwise(fn, leaves, step, chunk, tol_scales, fn_args=()) -> Differences:
    """``d fn / d theta_i`` for every scalar of every leaf, and where a kink makes it meaningless.

    Args:
      fn: ``fn(leaves, *fn_args) -> scalar``; pass data through ``fn_args`` (not a
        closure) so that the compiled program is reused by the next check of ``fn``.
      leaves: where to differentiate, a list of float64 arrays.
      step: relative step; chunk: perturbations per ``vmap``.
      tol_scales: per leaf, the size of its gradient (the kink test's scale).
    """
    sizes = [int(np.size(leaf)) for leaf in leaves]
    tol_scale = np.repeat(np.asarray(tol_scales, np.float64), sizes)
    out = _elementwise(fn, chunk, list(leaves), step, tol_scale, tuple(fn_args))
    fd, kink, noise = (np.split(np.asarray(a), np.cumsum(sizes)[:-1]) for a in out)
    per_leaf = [
        LeafDifferences(*(a.reshape(np.shape(leaf)) for a in parts), None)
        for leaf, *parts in zip(leaves, fd, kink, noise, strict=True)
    ]
    return Differences(per_leaf, 4 * sum(sizes) + 1)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _directional(fn, directions, leaves, key, step, tol_scales, fn_args):
    sizes = [leaf.size for leaf in leaves]
    # Random signs +-1/sqrt(n) are unit vectors without a normalisation, and weigh every
    # element alike. A Gaussian draw's erf_inv (and a norm per leaf) would be most of
    # this program's compile time.
    signs = jax.random.rademacher(key, (directions, sum(sizes)), jnp.int8)
    signs = jnp.split(signs, np.cumsum(sizes)[:-1], axis=1)
    h = jnp.stack(
        [step * jnp.maximum(1.0, jnp.linalg.norm(leaf) / math.sqrt(leaf.size)) for leaf in leaves]
    )
    h_unit = h / jnp.sqrt(jnp.asarray(sizes, jnp.float64))  # h / sqrt(n): a sign's share
    f0 = fn(leaves, *fn_args)
    n_steps = len(_SIGNED_STEPS)

    # One loop over every (leaf, direction, signed step), one copy of fn in its body: the
    # chosen leaf moves, the others move by zero. A loop (or a vmap) per leaf would
    # compile fn once per leaf.
    def at(j):
        chosen, d = j // (directions * n_steps), (j // n_steps) % directions
        s = jnp.asarray(_SIGNED_STEPS)[j % n_steps]
        moved = [
            leaf + jnp.where(chosen == i, s * h_unit[i], 0.0) * sign[d].reshape(leaf.shape)
            for i, (leaf, sign) in enumerate(zip(leaves, signs, strict=True))
        ]
        return fn(moved, *fn_args)

    # One evaluation after another (lax.map), not all at once (vmap): batched copies of
    # a large weight matrix cost memory for no speed.
    values = jax.lax.map(at, jnp.arange(len(leaves) * directions * n_steps))
    fp, fm, fp2, fm2 = jnp.moveaxis(values.reshape(len(leaves), directions, n_steps), -1, 0)
    return (*_richardson_and_kinks(f0, fp, fm, fp2, fm2, h[:, None], tol_scales[:, None]), signs)


def directional(fn, leaves, step, directions, key, tol_scales, fn_args=()) -> Differences:
    """Derivatives of ``fn(leaves, *fn_args)`` along ``directions`` random unit vectors per leaf.

    Args: as ``elementwise``, with ``directions`` (``k``) per leaf drawn from ``key``.
    One program for all leaves, one evaluation of ``fn`` in it.
    """
    fd, kink, noise, signs = _directional(
        fn, directions, list(leaves), key, step, np.asarray(tol_scales, np.float64), tuple(fn_args)
    )
    fd, kink, noise = np.asarray(fd), np.asarray(kink), np.asarray(noise)
    per_leaf = [
        LeafDifferences(
            fd[i], kink[i], np.broadcast_to(noise[i], fd[i].shape), s / math.sqrt(s.shape[1])
        )
        for i, s in enumerate(np.asarray(sign, np.float64) for sign in signs)
    ]
    return Differences(per_leaf, 4 * directions * len(per_leaf) + 1)


def gradient_along(gradient: Callable, tree, vector, step: float) -> Differences:
    """``(g(t + h v) - g(t - h v)) / 2h`` at ``h`` and ``h/2``, Richardson-extrapolated.

    Args:
      gradient: ``gradient(tree) -> tree`` (jitted), in float64.
      tree: where; vector: the direction (both pytrees of float64 arrays).
      step: relative: ``h = step * max(1, rms(theta))``.

    Returns one leaf of Hessian-vector-product estimates per leaf of ``tree``, with
    no kinks flagged and no rounding noise.
    """
    theta, unravel = ravel_pytree(tree)
    v, _ = ravel_pytree(vector)
    h = step * max(1.0, float(jnp.linalg.norm(theta) / math.sqrt(theta.size)))

    def central(s):
        plus, minus = (ravel_pytree(gradient(unravel(theta + sign * s * v)))[0] for sign in (1, -1))
        return (plus - minus) / (2 * s)

    hvp = jax.tree.leaves(unravel((4 * central(h / 2) - central(h)) / 3))
    per_leaf = [
        LeafDifferences(
            np.asarray(leaf, np.float64), np.zeros(leaf.shape, bool), np.zeros(()), None
        )
        for leaf in hvp
    ]
    return Differences(per_leaf, 4)
