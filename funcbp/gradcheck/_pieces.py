"""Checking the pieces on their own: ``check_activation`` and ``check_cost``.

Each compares a piece's hand-derived derivative with ``jax.grad`` of its function,
point by point, in float64 and in float32 (each dtype its own row, both sides in
that dtype), after checking the piece's contract (shapes, dtypes, a scalar loss).

Tolerance, at every point: ``|value - reference| <= PIECE_ULPS * eps * (|reference| +
scale)`` with ``eps`` the epsilon of the dtype compared. The relative part allows
two correct formulas their different rounding; the absolute part, ``scale`` (1 for
an activation, whose derivative is a sum of O(1) terms; ``max|reference|`` for a
cost's delta), allows the cancellation where a derivative passes through zero or
fades in a tail (``1 - tanh^2``, gelu' near -0.75) and both sides keep only the
rounding of the terms. Non-finite values: where both sides are not finite they
agree (the function itself breaks there); where only the hand-derived value is not
finite it fails (an ``exp`` that overflows, a ``0 / 0``); where only ``jax.grad``
is not finite the point is left unjudged and counted (autodiff's own traps, such as
the NaN gradient of a ``jnp.where`` branch).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from funcbp import activations, losses
from funcbp.activations import Activation
from funcbp.gradcheck._pieces_report import PIECE_ULPS, PieceReport, PieceRow
from funcbp.losses import Cost

DTYPES: tuple[str, ...] = ("float64", "float32")
_DENSE = np.linspace(-10.0, 10.0, 2001)  # steps of 0.01 where activations bend
_SMALL = (1e-8, 1e-6, 1e-4, 1e-2)
# exp overflows past log(max) and underflows past -log(tiny), in float32 and float64:
# the edges where a naive exp(-z) / (1 + exp(-z))**2 turns into inf / inf.
_EDGES = tuple(
    e * f
    for t in (np.float32, np.float64)
    for e in (math.log(np.finfo(t).max), -math.log(np.finfo(t).tiny))
    for f in (0.99, 1.0, 1.01)
)
_TAILS = (15.0, 20.0, 30.0, 50.0, 1e2, 3e2, 1e3, 1e4, *_EDGES)
_KINK_STEPS = (1e-3, 1e-5)  # plus 64 epsilons: just either side of a kink


def check_activation(
    act: str | Activation, *, dtypes: Sequence[str] = DTYPES, extra: Sequence[float] = ()
) -> PieceReport:
    """``act.grad(z, act.fn(z))`` vs ``jax.grad`` of ``act.fn``, elementwise over a grid of ``z``.

    The grid covers ``[-10, 10]`` in steps of 0.01, zero and small ``|z|`` (1e-8 ...),
    the tails up to ``|z| = 1e4`` with the float32 and float64 overflow edges of ``exp``,
    and points just either side of each of ``act.kinks``, which are left out.

    Args:
      act: an ``Activation`` or a built-in's name.
      dtypes: the dtypes to compare in, each its own row.
      extra: more points ``z`` to include.

    Raises:
      ValueError: ``fn`` or ``grad`` does not keep the shape and dtype of ``z [batch, n]``.
    """
    act = activations.resolve(act)
    rows = []
    with jax.enable_x64(True):
        for dtype in map(jnp.dtype, dtypes):
            activations.check_shapes(act, dtype)
        pair = _activation_pair(act)
        for dtype in map(jnp.dtype, dtypes):
            z = _grid(dtype, act.kinks, extra)
            value, reference = pair(jnp.asarray(z)[None, :])
            at = functools.partial(_z_at, z)
            rows.append(_row("f'(z) vs jax.grad", dtype, value[0], reference[0], 1.0, at))
    notes = (
        f"grid per dtype: [-10, 10] in steps of 0.01; |z| = 0, 1e-8 .. 1e-2; tails to 1e4 "
        f"with exp's overflow edges (|z| = {', '.join(f'{e:.1f}' for e in _EDGES[1::3])}, "
        "and 1 % either side); either side of each kink",
        f"tolerance: |value - reference| <= {PIECE_ULPS:g} eps (|reference| + 1) in the dtype "
        "compared; value: act.grad(z, act.fn(z)), reference: jax.grad of act.fn",
    )
    return PieceReport(f"check_activation {act.name!r}", tuple(rows), tuple(act.kinks), notes)


def check_cost(
    cost: str | Cost,
    shape: tuple[int, int] = (8, 4),
    *,
    key: jax.Array | None = None,
    draws: int = 3,
    scale: float = 3.0,
    dtypes: Sequence[str] = DTYPES,
) -> PieceReport:
    """``cost.output_delta`` vs ``jax.grad`` of ``cost.loss``, and the cost's contract.

    Draws ``draws`` batches of outputs ``scale * N(0, 1)`` of ``shape [batch, n_out]``
    (for a fused cost these are ``z_L``, and ``out = act.fn(z_L)``) and targets
    (``cost.targets``, else standard normal). Beside the delta it checks row
    separability: ``loss(out, y)`` must equal the mean over rows ``i`` of
    ``loss(out[i:i+1], y[i:i+1])`` (a cost that sums instead fails there).

    Args:
      cost: a ``Cost`` or a built-in's name.
      shape: ``(batch, n_out)``.
      key: for the draws (``jax.random.key(0)`` if ``None``).
      draws: batches drawn per dtype.
      scale: the outputs' standard deviation.
      dtypes: the dtypes to compare in, each its own rows.

    Raises:
      ValueError: ``loss`` is not a scalar, ``output_delta`` does not have ``out``'s
        shape and dtype, or drawn targets do not fit the cost.
    """
    cost = losses.resolve(cost)
    if len(shape) != 2 or min(shape) < 1 or draws < 1:
        raise ValueError(
            f"check_cost: shape must be (batch, n_out) >= 1 and draws >= 1, got shape "
            f"{tuple(shape)} and draws {draws}"
        )
    act = activations.resolve(cost.fused_activation) if cost.fused_activation else None
    keys = jax.random.split(jax.random.key(0) if key is None else key, draws)
    rows = []
    with jax.enable_x64(True):
        for dtype in map(jnp.dtype, dtypes):
            deltas, sums = [], []
            for k in keys:
                z, y = _draw(cost, k, tuple(shape), dtype, scale)
                loss_of_z = _loss_of_z(cost, act, y)
                out = z if act is None else act.fn(z)
                losses.check_shapes(cost, out, y)
                deltas.append((cost.output_delta(out, y), jax.grad(loss_of_z)(z)))
                each = losses.row_losses(cost, out, y)
                sums.append((cost.loss(out, y), jnp.mean(each), jnp.mean(jnp.abs(each))))
            what = "dLoss/dz vs jax.grad" if act else "dLoss/dout vs jax.grad"
            rows.append(_worst_draw(what, dtype, deltas))
            rows.append(_separability_row(dtype, sums))
    reference = f"jax.grad of z -> loss({act.name}(z), y)" if act else "jax.grad of loss"
    notes = (
        f"{draws} draws of {'z_L' if act else 'out'} ~ {scale:g} N(0, 1), shape "
        f"{list(shape)}, targets {'from cost.targets' if cost.targets else '~ N(0, 1)'}",
        f"delta tolerance: |value - reference| <= {PIECE_ULPS:g} eps (|reference| + "
        f"max|reference|); value: output_delta, reference: {reference}",
        f"row separability, per draw: value loss(out, y), reference the mean of its rows' "
        f"losses, within {PIECE_ULPS:g} eps (|reference| + mean |row loss|)",
    )
    return PieceReport(f"check_cost {cost.name!r}", tuple(rows), (), notes)


# --- activations --------------------------------------------------------------------


def _grid(dtype: np.dtype, kinks: tuple[float, ...], extra: Sequence[float]) -> np.ndarray:
    eps = float(jnp.finfo(dtype).eps)
    half = np.concatenate([_DENSE[_DENSE > 0], _SMALL, _TAILS])
    around = [
        k + side * step
        for k in kinks
        for step in (*_KINK_STEPS, 64 * eps * max(1.0, abs(k)))
        for side in (-1.0, 1.0)
    ]
    with np.errstate(over="ignore"):  # 709.8 * 1.01 is inf in float32: a point as well
        z = np.concatenate([half, -half, [0.0], around, np.asarray(extra, float)]).astype(dtype)
    z = np.unique(z[~np.isin(z, np.asarray(kinks, float).astype(dtype)) & np.isfinite(z)])
    # Nearest zero first: of equally bad points (a NaN tail) the report names the innermost.
    return z[np.argsort(np.abs(z), kind="stable")]


def _z_at(z: np.ndarray, i: int) -> str:
    return f"z = {float(z[i]):.6g}"


def _activation_pair(act: Activation) -> Callable[[jax.Array], tuple[jax.Array, jax.Array]]:
    """``z [1, n] -> (act.grad(z, act.fn(z)), jax.grad of act.fn elementwise)``, compiled."""

    def scalar_fn(s: jax.Array) -> jax.Array:
        return act.fn(s[None, None])[0, 0]  # fn sees the [batch, n] it is written for

    def pair(z: jax.Array) -> tuple[jax.Array, jax.Array]:
        return act.grad(z, act.fn(z)), jax.vmap(jax.grad(scalar_fn))(z[0])[None, :]

    return jax.jit(pair)


# --- costs ----------------------------------------------------------------------


def _draw(cost: Cost, key: jax.Array, shape: tuple[int, int], dtype: np.dtype, scale: float):
    kz, ky = jax.random.split(key)
    z = scale * jax.random.normal(kz, shape, dtype)
    y = cost.targets(ky, shape, dtype) if cost.targets else jax.random.normal(ky, shape, dtype)
    try:
        losses.check_targets(cost, y, shape)
    except ValueError as error:
        raise ValueError(f"Cost {cost.name!r}: the targets drawn do not fit it: {error}") from error
    return z, y


def _loss_of_z(cost: Cost, act: Activation | None, y) -> Callable[[jax.Array], jax.Array]:
    if act is None:
        return lambda out: cost.loss(out, y)
    return lambda z: cost.loss(act.fn(z), y)


def _worst_draw(what: str, dtype: np.dtype, deltas: list) -> PieceRow:
    rows = []
    for d, (value, reference) in enumerate(deltas):
        v, r = np.asarray(value, np.float64), np.asarray(reference, np.float64)
        scale = float(np.max(np.abs(r), where=np.isfinite(r), initial=0.0))
        rows.append(_row(what, dtype, v, r, scale, lambda i, d=d, s=v.shape: _at(d, i, s)))
    worst = max(rows, key=_badness)
    total = {f: sum(getattr(r, f) for r in rows) for f in ("points", "unjudged", "failed")}
    return dataclasses.replace(worst, **total)


def _separability_row(dtype: np.dtype, sums: list) -> PieceRow:
    """One point per draw: the batch's loss vs the mean of its rows' losses."""
    total, mean, size = (np.asarray([float(s[k]) for s in sums]) for k in range(3))
    return _row("row separability", dtype, total, mean, 0.0, lambda i: f"draw {i}", size)


def _at(draw: int, flat: int, shape: tuple[int, ...]) -> str:
    return f"draw {draw} {[int(j) for j in np.unravel_index(flat, shape)]}"


# --- the comparison ----------------------------------------------------------------


def _row(what, dtype, value, reference, scale, at, scales=None) -> PieceRow:
    """The worst point of ``value`` vs ``reference`` under the tolerance of the module doc."""
    v = np.ravel(np.asarray(value, np.float64))
    r = np.ravel(np.asarray(reference, np.float64))
    eps = float(jnp.finfo(dtype).eps)
    base = scale if scales is None else np.ravel(scales)
    fv, fr = np.isfinite(v), np.isfinite(r)
    with np.errstate(invalid="ignore"):
        err = np.where(fr, np.where(fv, np.abs(v - r), np.inf), 0.0)
        tol = PIECE_ULPS * eps * (np.where(fr, np.abs(r), 0.0) + base)
        badness = np.where(err > 0, err / np.maximum(tol, np.finfo(np.float64).tiny), 0.0)
    i = int(np.argmax(badness))
    return PieceRow(
        what,
        str(dtype),
        v.size,
        at(i),
        float(v[i]),
        float(r[i]),
        float(err[i]),
        float(tol[i]),
        unjudged=int(np.sum(fv & ~fr)),
        failed=int(np.sum(~(err <= tol))),
    )


def _badness(row: PieceRow) -> float:
    if row.tolerance > 0:
        return row.error / row.tolerance
    return math.inf if row.error > 0 else 0.0
