"""Truncated conjugate gradient on a matrix-free product, as one ``lax.while_loop``."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array


class CGResult(NamedTuple):
    """What ``conjugate_gradient`` found."""

    x: Array  # [P]: the last iterate
    iterations: Array  # shape=(), int32: products ``matvec`` took (the first residual's included)
    negative_curvature: Array  # shape=(), bool: stopped at a direction p with p^T A p <= 0


def conjugate_gradient(
    matvec: Callable[[Array], Array], b: Array, x0: Array, max_iterations: int, rtol: Array
) -> CGResult:
    """Solves ``A x = b`` for a symmetric ``A`` (``matvec(v) = A v``, ``[P] -> [P]``) from
    ``x0`` until ``|b - A x| <= rtol |b|`` or ``max_iterations`` products.

    Stops where a search direction has curvature ``p^T A p <= 0`` (``A`` not positive
    definite there), keeping the last iterate: the truncated Newton method's rule
    (Nocedal and Wright, Algorithm 7.1).
    """
    r = b - matvec(x0)
    goal = (rtol * jnp.linalg.norm(b)) ** 2

    def more(carry):
        _, _, _, rr, count, negative = carry
        return (count < max_iterations) & (rr > goal) & ~negative

    def step(carry):
        x, r, p, rr, count, _ = carry
        ap = matvec(p)
        curvature = p @ ap
        negative = curvature <= 0
        alpha = jnp.where(negative, 0.0, rr / jnp.where(negative, 1.0, curvature))
        x, r = x + alpha * p, r - alpha * ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        return x, r, p, rr_new, count + 1, negative

    start = (x0, r, r, r @ r, jnp.int32(1), jnp.zeros((), bool))
    x, _, _, _, count, negative = jax.lax.while_loop(more, step, start)
    return CGResult(x, count, negative)
