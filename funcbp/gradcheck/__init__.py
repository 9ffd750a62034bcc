"""Gradient checks that say where a gradient is wrong.

Every check compares a hand-written derivative ("candidate") with autodiff and
with central finite differences, and returns a ``GradientReport``: one row per
leaf and pair of methods, with the worst index and both values there.

How the finite differences work (always in float64, whatever the caller's dtype):

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
  quotient cannot resolve less than about ``u |f| / h`` (measured: at most 2.7 of
  these units; ``FD_NOISE`` = 32 of them are allowed). A leaf whose gradient is
  that small, deep in a vanishing-gradient network say, is compared with finite
  differences to that resolution only ("ok~" when they cannot judge it at all);
  the analytic comparison still holds it to 1e-9.
* ``mode="elementwise"`` perturbs every scalar (``lax.map`` over chunks of
  perturbations, each chunk ``vmap``-ed); ``mode="directional"`` takes ``k``
  random unit directions inside each leaf (O(k) evaluations per leaf) and compares
  directional derivatives. ``"auto"`` picks elementwise up to ``max_elementwise``
  parameters.

Error measure and thresholds (``TOLERANCES``): a leaf's error is normwise,
``max|a - b| / max|b|`` (directional: ``max |<a - b, v>| / (||b||_2 / sqrt(n))``, the
typical size of ``<b, v>`` for a random unit ``v`` in a leaf of ``n`` elements), with the
reference ``b`` the autodiff or finite-difference value in float64. Each pair is
judged twice: with the candidate evaluated in float64, against the float64
threshold of its kind (analytic pair: 1e-9, one side finite differences: 1e-6),
and with the candidate in the caller's dtype, against that dtype's rounding
threshold (float32: 1e-4, float16: 5e-3, bfloat16: 3e-2), or ``ROUNDING_MARGIN`` (10)
times the error autodiff itself makes in that dtype, where that is larger (saturated
units amplify rounding for both). An error in float64 is a bug; one in the caller's
dtype beyond both is a formula that loses more to rounding than autodiff does.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from funcbp.mlp import MLP

TOLERANCES: dict[str, float] = {
    "analytic": 1e-9,  # two exact derivatives in float64: only summation order differs
    "finite_difference": 1e-6,  # Richardson error ~1e-12, with margin for ill-conditioned leaves
    "float64": 1e-9,
    "float32": 1e-4,  # eps = 1.2e-7, times depth and sqrt(width) of the sums
    "float16": 5e-3,  # eps = 9.8e-4
    "bfloat16": 3e-2,  # eps = 7.8e-3
}
# Finite differences cannot resolve less than f's own rounding over the step, u |f| / h
# (u: float64's epsilon). Measured in smooth networks: the extrapolated difference errs by
# at most 2.7 such units, the kink statistic by at most 9; these allow for several times that.
FD_NOISE = 32.0
KINK_NOISE = 64.0
ROUNDING_MARGIN = 10.0  # caller's dtype: a candidate may err this many times the reference
DEFAULT_STEP = 1e-4  # relative: h_i = step * max(1, |theta_i|)
DEFAULT_MAX_ELEMENTWISE = 20_000
FD = "finite differences"


@dataclasses.dataclass(frozen=True)
class ErrorStats:
    """The error of one leaf for one pair of methods.

    Attributes:
      max_abs: ``max |a - b|``.
      max_rel: normwise relative error, ``max |a - b| / max |b|``.
      index: the worst element (``None`` in directional mode).
      value: ``a`` there (directional: the worst directional derivative).
      reference: ``b`` there.
    """

    max_abs: float
    max_rel: float
    index: tuple[int, ...] | None
    value: float
    reference: float


@dataclasses.dataclass(frozen=True)
class Row:
    """One leaf, one pair of methods (``method`` against ``reference``)."""

    path: str
    method: str
    reference: str
    error: ErrorStats  # the method evaluated in the caller's dtype
    error64: ErrorStats  # the method evaluated in float64
    tolerance: float  # for ``error``
    tolerance64: float  # for ``error64``
    kinks: int  # elements (directions) left out as kinks

    @property
    def ok(self) -> bool:
        return self.error64.max_rel <= self.tolerance64 and self.error.max_rel <= self.tolerance

    @property
    def unresolved(self) -> bool:
        """Finite differences' rounding noise is as large as this leaf's gradient: they
        cannot judge it (only the analytic comparison can)."""
        return self.reference == FD and self.tolerance64 >= 1.0


@dataclasses.dataclass(frozen=True)
class GradientReport:
    """The outcome of a gradient check; ``print(report)`` shows a table."""

    title: str
    mode: str
    dtype: str
    step: float
    rows: tuple[Row, ...]
    evaluations: int

    @property
    def ok(self) -> bool:
        return all(row.ok for row in self.rows)

    @property
    def failures(self) -> tuple[Row, ...]:
        return tuple(row for row in self.rows if not row.ok)

    @property
    def kinks(self) -> int:
        """Elements (or directions) excluded as kinks, counted once per leaf."""
        return sum({row.path: row.kinks for row in self.rows}.values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of everything in the report."""
        return {
            "title": self.title,
            "ok": self.ok,
            "mode": self.mode,
            "dtype": self.dtype,
            "step": self.step,
            "evaluations": self.evaluations,
            "kinks": self.kinks,
            "tolerances": dict(TOLERANCES),
            "rows": [{**dataclasses.asdict(row), "ok": row.ok} for row in self.rows],
        }

    def __str__(self) -> str:
        header = (
            "leaf",
            "method",
            "vs",
            "rel err",
            "rel err f64",
            "abs err",
            "worst at",
            "value",
            "reference",
            "kinks",
            "",
        )
        lines = [header]
        for row in self.rows:
            e, e64 = row.error, row.error64
            worst = e if e.max_rel / row.tolerance >= e64.max_rel / row.tolerance64 else e64
            lines.append(
                (
                    row.path or "<root>",
                    row.method,
                    row.reference,
                    f"{e.max_rel:.2e}",
                    f"{e64.max_rel:.2e}",
                    f"{worst.max_abs:.2e}",
                    "-" if worst.index is None else str(list(worst.index)),
                    f"{worst.value:.6g}",
                    f"{worst.reference:.6g}",
                    str(row.kinks) if row.reference == FD else "",
                    ("ok~" if row.unresolved else "ok") if row.ok else "FAIL",
                )
            )
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        table = [
            "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
            for line in lines
        ]
        table.insert(1, "-" * len(table[0]))
        verdict = "PASS" if self.ok else f"FAIL ({len(self.failures)} of {len(self.rows)} rows)"
        tol = TOLERANCES
        notes = [
            f"{self.title}: {verdict}",
            f"mode {self.mode}, caller dtype {self.dtype}, {self.evaluations} "
            f"{'gradient' if self.mode == 'hessian-vector' else 'function'} evaluations; "
            f"finite differences in float64 with step {self.step:g} * max(1, "
            f"{'|x_i|' if self.mode == 'elementwise' else 'rms(x)'}), Richardson-extrapolated",
            f"thresholds: analytic pairs {tol['analytic']:g}, vs finite differences "
            f"{tol['finite_difference']:g} plus their rounding noise (float64); caller dtype "
            f"{tol.get(self.dtype, 0):g}, or {ROUNDING_MARGIN:g}x autodiff's own error there",
        ]
        if self.kinks:
            notes.append(f"{self.kinks} element(s) excluded: finite differences cross a kink there")
        if any(row.unresolved for row in self.rows):
            notes.append(
                "ok~: a gradient below what finite differences resolve (the loss's rounding "
                "over the step); only the analytic comparison judges it"
            )
        return "\n".join([*notes, "", *table])


# --- finite differences -------------------------------------------------------------


_SIGNED_STEPS = np.array([1.0, -1.0, 0.5, -0.5])  # f at t + h, t - h, t + h/2, t - h/2


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


def _elementwise_fd(fn, shapes, chunk, theta, steps, tol_scale, fn_args):
    """``d fn / d theta_i`` for every i of the flat ``theta``, and where a kink makes it
    meaningless; ``fn(leaves, *fn_args)`` takes ``theta`` cut into leaves of ``shapes``."""
    cuts = np.cumsum([int(np.prod(shape)) for shape in shapes])[:-1]

    def f(t):
        leaves = [
            part.reshape(shape) for part, shape in zip(jnp.split(t, cuts), shapes, strict=True)
        ]
        return fn(leaves, *fn_args)

    f0 = f(theta)

    def at(i):
        e = jax.nn.one_hot(i, theta.size, dtype=theta.dtype)
        return jax.vmap(lambda s: f(theta + s * steps[i] * e))(_SIGNED_STEPS)

    fp, fm, fp2, fm2 = jax.lax.map(at, jnp.arange(theta.size), batch_size=chunk).T
    return _richardson_and_kinks(f0, fp, fm, fp2, fm2, steps, tol_scale)


def _directional_fd(fn, directions, leaves, gradients, key, step, tol_scales, fn_args):
    """Derivatives of ``fn(leaves)`` along ``directions`` random unit vectors inside each leaf.

    ``gradients`` maps a name to a list of leaves (one gradient per candidate);
    returns, per leaf, the finite-difference directional derivatives ``[k]``, their
    kink flags and rounding noise, and each candidate's ``<gradient, v>``. One
    program for all leaves.
    """
    f0 = fn(leaves, *fn_args)
    results = []
    for i, (leaf, k) in enumerate(zip(leaves, jax.random.split(key, len(leaves)), strict=True)):
        dirs = jax.random.normal(k, (directions, leaf.size), leaf.dtype)
        dirs = dirs / jnp.linalg.norm(dirs, axis=1, keepdims=True)
        h = step * jnp.maximum(1.0, jnp.linalg.norm(leaf) / math.sqrt(leaf.size))

        def moved(s, v, i=i, leaf=leaf, h=h):
            moved = leaf + (s * h * v).reshape(leaf.shape)
            return fn([*leaves[:i], moved, *leaves[i + 1 :]], *fn_args)

        # One evaluation after another (lax.map), not all at once (vmap): batched
        # copies of a large weight matrix compile slowly and cost memory for no speed.
        pairs = (jnp.tile(_SIGNED_STEPS, directions), jnp.repeat(dirs, len(_SIGNED_STEPS), 0))
        values = jax.lax.map(lambda sv, moved=moved: moved(*sv), pairs)
        fp, fm, fp2, fm2 = values.reshape(directions, len(_SIGNED_STEPS)).T
        fd, kink, noise = _richardson_and_kinks(f0, fp, fm, fp2, fm2, h, tol_scales[i])
        projected = {
            name: [dirs @ g[i].reshape(-1).astype(dirs.dtype) for g in grads]
            for name, grads in gradients.items()
        }
        results.append((fd, kink, noise, projected))
    return results


_jit_elementwise_fd = jax.jit(_elementwise_fd, static_argnums=(0, 1, 2))
_jit_directional_fd = jax.jit(_directional_fd, static_argnums=(0, 1))


# --- comparison ---------------------------------------------------------------------


def _stats(got: np.ndarray, want: np.ndarray, scale: float) -> ErrorStats:
    diff = np.abs(got - want)
    if diff.size == 0:
        return ErrorStats(0.0, 0.0, None, 0.0, 0.0)
    flat = int(np.argmax(diff))
    index = tuple(int(i) for i in np.unravel_index(flat, diff.shape))
    max_abs = float(diff.reshape(-1)[flat])
    return ErrorStats(
        max_abs, max_abs / scale, index, float(got.reshape(-1)[flat]), float(want.reshape(-1)[flat])
    )


def _scale(reference: np.ndarray) -> float:
    return max(float(np.max(np.abs(reference), initial=0.0)), np.finfo(np.float64).tiny)


def _to_numpy(tree) -> list[np.ndarray]:
    return [np.asarray(leaf, np.float64) for leaf in jax.tree_util.tree_leaves(tree)]


def _leaf_paths(tree) -> list[str]:
    return [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def _tree_f64(tree):
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), tree)


def _check_float_tree(tree, what: str) -> None:
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if not jnp.issubdtype(jnp.result_type(leaf), jnp.floating):
            raise ValueError(
                f"{what}{jax.tree_util.keystr(path)} has dtype {jnp.result_type(leaf)}; "
                "only floating-point inputs can be differentiated"
            )


def _caller_dtype(tree) -> str:
    dtypes = {jnp.result_type(leaf) for leaf in jax.tree_util.tree_leaves(tree)}
    return str(min(dtypes, key=lambda d: jnp.finfo(d).bits))


def _compare(
    *,
    title: str,
    wrt,
    candidates: dict[str, tuple[Any, Any]],
    reference: str,
    scalar_fn: Callable[..., jax.Array],
    fn_args: tuple = (),
    mode: str,
    step: float,
    directions: int,
    chunk: int,
    key: jax.Array,
) -> GradientReport:
    """Builds the report for ``candidates`` ``{name: (in caller dtype, in float64)}``.

    ``reference`` names the candidate that the others are compared with first
    (autodiff); every candidate is then compared with finite differences of
    ``scalar_fn(leaves, *fn_args)``, a function of the list of ``wrt``'s leaves in
    float64. Pass data through ``fn_args`` (not a closure) so that the compiled
    finite differences are reused by the next check of the same ``scalar_fn``.
    """
    dtype = _caller_dtype(wrt)
    paths = _leaf_paths(wrt)
    leaves64 = jax.tree.leaves(_tree_f64(wrt))
    theta, _ = ravel_pytree(leaves64)
    leaf_sizes = [int(np.size(leaf)) for leaf in jax.tree_util.tree_leaves(wrt)]
    offsets = np.cumsum([0, *leaf_sizes])
    values = {name: (_to_numpy(low), _to_numpy(high)) for name, (low, high) in candidates.items()}
    ref64 = values[reference][1]
    tol_low = _caller_tolerances(values, reference, dtype)
    rows: list[Row] = []

    for name, (low, high) in values.items():
        if name == reference:
            continue
        for i, (path, got, got64, want) in enumerate(zip(paths, low, high, ref64, strict=True)):
            scale = _scale(want)
            rows.append(
                Row(
                    path,
                    name,
                    reference,
                    _stats(got, want, scale),
                    _stats(got64, want, scale),
                    tol_low[i],
                    TOLERANCES["analytic"],
                    0,
                )
            )

    # A tolerance scale per element for the kink test: the leaf's gradient size.
    leaf_scale = np.concatenate(
        [np.full(n, _scale(w)) for n, w in zip(leaf_sizes, ref64, strict=True)]
    )
    tol_fd_low = [max(TOLERANCES["finite_difference"], t) for t in tol_low]
    if mode == "elementwise":
        steps = step * jnp.maximum(1.0, jnp.abs(theta))
        shapes = tuple(tuple(leaf.shape) for leaf in leaves64)
        fd, kink, noise = _jit_elementwise_fd(
            scalar_fn, shapes, chunk, theta, steps, jnp.asarray(leaf_scale), fn_args
        )
        fd, kink, noise = np.asarray(fd), np.asarray(kink), np.asarray(noise)
        evaluations = 4 * theta.size + 1
        for name, (low, high) in values.items():
            for i, path in enumerate(paths):
                part = slice(offsets[i], offsets[i + 1])
                want = fd[part].reshape(low[i].shape)
                keep = ~kink[part].reshape(low[i].shape)
                # Scaled by the analytic gradient too: finite differences of a vanishing
                # one are rounding noise, which alone would make any error look huge.
                scale = max(_scale(want[keep]), _scale(ref64[i][keep]))
                resolution = float(np.max(noise[part], initial=0.0)) / scale
                masked = [np.where(keep, a, want) for a in (low[i], high[i])]
                rows.append(
                    Row(
                        path,
                        name,
                        FD,
                        _stats(masked[0], want, scale),
                        _stats(masked[1], want, scale),
                        tol_fd_low[i] + resolution,
                        TOLERANCES["finite_difference"] + resolution,
                        int(np.sum(~keep)),
                    )
                )
    else:
        scales = [_scale(w) for w in ref64]
        fds = _jit_directional_fd(
            scalar_fn, directions, leaves64, values, key, step, scales, fn_args
        )
        evaluations = 4 * directions * len(paths) + 1
        for name in values:
            for i, path in enumerate(paths):
                fd, kink, noise, projected = fds[i]
                fd, kink = np.asarray(fd), np.asarray(kink)
                # |<g, v>| for a random unit v is about ||g|| / sqrt(n): the scale to compare with.
                norm = float(np.linalg.norm(ref64[i])) / math.sqrt(max(leaf_sizes[i], 1))
                norm = max(norm, np.finfo(np.float64).tiny)
                resolution = float(noise) / norm
                errs = [_directional_stats(np.asarray(g), fd, kink, norm) for g in projected[name]]
                rows.append(
                    Row(
                        path,
                        name,
                        FD,
                        *errs,
                        tol_fd_low[i] + resolution,
                        TOLERANCES["finite_difference"] + resolution,
                        int(np.sum(kink)),
                    )
                )
    return GradientReport(title, mode, dtype, step, tuple(rows), evaluations)


def _caller_tolerances(values, reference: str, dtype: str) -> list[float]:
    """Per leaf, the threshold for a candidate evaluated in the caller's ``dtype``.

    That dtype's rounding threshold, or ``ROUNDING_MARGIN`` times the reference's own
    error there when it is larger (a saturated tanh in float32, say): an error as large
    as autodiff's own in that dtype is the dtype's, not the candidate's.
    """
    low, high = values[reference]
    return [
        max(
            TOLERANCES[dtype],
            TOLERANCES["analytic"],
            ROUNDING_MARGIN * _stats(a, b, _scale(b)).max_rel,
        )
        for a, b in zip(low, high, strict=True)
    ]


def _directional_stats(got: np.ndarray, fd: np.ndarray, kink: np.ndarray, norm: float):
    diff = np.where(kink, 0.0, np.abs(got - fd))
    worst = int(np.argmax(diff))
    return ErrorStats(
        float(diff[worst]), float(diff[worst]) / norm, None, float(got[worst]), float(fd[worst])
    )


def _pick_mode(mode: str, size: int, max_elementwise: int) -> str:
    if mode == "auto":
        return "elementwise" if size <= max_elementwise else "directional"
    if mode not in ("elementwise", "directional"):
        raise ValueError(f"mode must be 'auto', 'elementwise' or 'directional', got {mode!r}")
    return mode


# --- public checks ------------------------------------------------------------------


def check_gradients(
    net: MLP,
    params,
    x,
    y,
    *,
    mode: str = "auto",
    step: float = DEFAULT_STEP,
    directions: int = 8,
    max_elementwise: int = DEFAULT_MAX_ELEMENTWISE,
    chunk: int = 256,
    key: jax.Array | None = None,
) -> GradientReport:
    """``net.backprop`` vs ``net.autodiff`` vs finite differences, leaf by leaf.

    Args:
      net: the network spec.
      params: its parameters, in any float dtype (the caller's dtype).
      x: inputs ``[batch, n_in]``; y: targets, as ``net.cost`` expects.
      mode: ``"auto"``, ``"elementwise"`` or ``"directional"``.
      step: relative finite-difference step.
      directions: random directions per leaf in directional mode.
      max_elementwise: ``"auto"`` goes directional above this many parameters.
      chunk: perturbations evaluated together (``vmap``) in elementwise mode.
      key: for the random directions.
    """
    net.check_call(params, x, y)
    _check_float_tree(params, "params")
    y_is_labels = jnp.issubdtype(jnp.result_type(y), jnp.integer)
    mode = _pick_mode(mode, net.num_params, max_elementwise)
    with jax.enable_x64(True):
        params64, x64 = _tree_f64(params), jnp.asarray(x, jnp.float64)
        y64 = jnp.asarray(y) if y_is_labels else jnp.asarray(y, jnp.float64)
        both = _both_engines(net)
        (bp, ad), (bp64, ad64) = both(params, x, y), both(params64, x64, y64)
        candidates = {"backprop": (bp, bp64), "autodiff": (ad, ad64)}
        return _compare(
            title=f"check_gradients {net.sizes} {net.hidden_activations or ''} "
            f"-> {net.output_activation}, {net.cost}",
            wrt=params,
            candidates=candidates,
            reference="autodiff",
            scalar_fn=_loss_of_leaves(net, jax.tree.structure(params)),
            fn_args=(x64, y64),
            mode=mode,
            step=step,
            directions=directions,
            chunk=chunk,
            key=jax.random.key(0) if key is None else key,
        )


@functools.cache
def _both_engines(net: MLP) -> Callable:
    """One compiled function per network: both engines' gradients (reused across checks)."""
    return jax.jit(lambda p, x, y: (net.backprop(p, x, y)[1], net.autodiff(p, x, y)[1]))


@functools.cache
def _loss_of_leaves(net: MLP, treedef) -> Callable:
    """``net.loss`` as a function of the parameters' leaves (one object per network)."""
    return lambda leaves, x, y: net.loss(jax.tree.unflatten(treedef, leaves), x, y)


def check_grad(
    f: Callable[..., jax.Array],
    grad_fn: Callable[..., Any],
    *args,
    mode: str = "auto",
    step: float = DEFAULT_STEP,
    directions: int = 8,
    max_elementwise: int = DEFAULT_MAX_ELEMENTWISE,
    chunk: int = 256,
    key: jax.Array | None = None,
) -> GradientReport:
    """A hand-written ``grad_fn`` of a scalar function ``f`` vs autodiff vs finite differences.

    Args:
      f: ``f(*args) -> scalar``; args are pytrees of floating arrays.
      grad_fn: ``grad_fn(*args)``: the gradient, with the pytree of ``args[0]`` when
        there is one argument, else a tuple with one entry per argument.
      *args: where to check.
    """
    _check_float_tree(args, "args")
    mode = _pick_mode(mode, sum(np.size(a) for a in jax.tree.leaves(args)), max_elementwise)
    # One argument is checked as itself (leaf paths like [1]['w']), several as a tuple.
    single = len(args) == 1
    argnums = 0 if single else tuple(range(len(args)))
    wrt = args[0] if single else args

    def call(fn, leaves):
        tree = jax.tree.unflatten(treedef, leaves)
        return fn(tree) if single else fn(*tree)

    with jax.enable_x64(True):
        args64 = _tree_f64(args)
        treedef = jax.tree.structure(wrt)
        user = grad_fn(*args), grad_fn(*args64)
        if not single:
            user = tuple(tuple(g) for g in user)
        _check_structure(user[1], args64[0] if single else args64, "grad_fn")
        candidates = {
            "grad_fn": user,
            "autodiff": (jax.grad(f, argnums)(*args), jax.grad(f, argnums)(*args64)),
        }
        return _compare(
            title=f"check_grad {getattr(grad_fn, '__name__', 'grad_fn')}",
            wrt=wrt,
            candidates=candidates,
            reference="autodiff",
            scalar_fn=lambda leaves: call(f, leaves),
            mode=mode,
            step=step,
            directions=directions,
            chunk=chunk,
            key=jax.random.key(0) if key is None else key,
        )


def check_vjp(
    f: Callable[..., Any],
    vjp_fn: Callable[..., Any],
    *primals,
    cotangents: int = 3,
    mode: str = "auto",
    step: float = DEFAULT_STEP,
    directions: int = 8,
    max_elementwise: int = DEFAULT_MAX_ELEMENTWISE,
    chunk: int = 256,
    key: jax.Array | None = None,
) -> GradientReport:
    """A hand-written VJP vs ``jax.vjp`` vs finite differences, on random cotangents.

    Args:
      f: ``f(*primals)`` with any output pytree.
      vjp_fn: ``vjp_fn(*primals, cotangent)``: the cotangent of each primal (a single
        value when there is one primal, else a tuple).
      *primals: where to check.
      cotangents: how many random cotangents; the report keeps each leaf's worst.
    """
    _check_float_tree(primals, "primals")
    key = jax.random.key(0) if key is None else key
    single = len(primals) == 1
    wrt = primals[0] if single else primals
    reports = []
    with jax.enable_x64(True):
        primals64 = _tree_f64(primals)
        treedef = jax.tree.structure(wrt)
        out_leaves, out_tree = jax.tree.flatten(jax.eval_shape(f, *primals64))
        for _ in range(cotangents):
            key, k_ct, k_dir = jax.random.split(key, 3)
            cts = [
                jax.random.normal(k, o.shape, jnp.float64)
                for k, o in zip(jax.random.split(k_ct, len(out_leaves)), out_leaves, strict=True)
            ]
            ct64 = jax.tree.unflatten(out_tree, cts)
            ct_low = jax.tree.map(lambda c, o: c.astype(o.dtype), ct64, jax.eval_shape(f, *primals))
            got = vjp_fn(*primals, ct_low), vjp_fn(*primals64, ct64)
            want = jax.vjp(f, *primals)[1](ct_low), jax.vjp(f, *primals64)[1](ct64)
            if single:
                want = tuple(w[0] for w in want)
            else:
                got = tuple(tuple(g) for g in got)
            _check_structure(got[1], primals64[0] if single else primals64, "vjp_fn")

            def projected(leaves, ct64=ct64):
                tree = jax.tree.unflatten(treedef, leaves)
                out = f(tree) if single else f(*tree)
                return sum(
                    jnp.vdot(c, o)
                    for c, o in zip(jax.tree.leaves(ct64), jax.tree.leaves(out), strict=True)
                )

            reports.append(
                _compare(
                    title=f"check_vjp {getattr(vjp_fn, '__name__', 'vjp_fn')}",
                    wrt=wrt,
                    candidates={"vjp_fn": got, "jax.vjp": want},
                    reference="jax.vjp",
                    scalar_fn=projected,
                    mode=_pick_mode(
                        mode, sum(np.size(a) for a in jax.tree.leaves(primals)), max_elementwise
                    ),
                    step=step,
                    directions=directions,
                    chunk=chunk,
                    key=k_dir,
                )
            )
    return _worst_of(reports, f"over {cotangents} random cotangents")


def check_hvp(
    net: MLP,
    params,
    x,
    y,
    *,
    vectors: int = 3,
    step: float = DEFAULT_STEP,
    key: jax.Array | None = None,
) -> GradientReport:
    """The gradient of the gradient: Hessian-vector products of the hand-derived engine.

    Forward mode through ``net.backprop`` (``jax.jvp``) against forward-over-reverse
    autodiff (``jax.jvp`` of ``jax.grad``, equal to ``jax.hessian(loss) @ v``) and
    against central differences of the autodiff gradient along ``v``.
    """
    net.check_call(params, x, y)
    _check_float_tree(params, "params")
    key = jax.random.key(0) if key is None else key
    y_is_labels = jnp.issubdtype(jnp.result_type(y), jnp.integer)
    reports = []
    with jax.enable_x64(True):
        params64, x64 = _tree_f64(params), jnp.asarray(x, jnp.float64)
        y64 = jnp.asarray(y) if y_is_labels else jnp.asarray(y, jnp.float64)

        def hvp(engine, p, v, xx, yy):
            return jax.jvp(lambda q: engine(q, xx, yy)[1], (p,), (v,))[1]

        hvp = jax.jit(hvp, static_argnums=0)
        theta, unravel = ravel_pytree(params64)
        for _ in range(vectors):
            key, sub = jax.random.split(key)
            v64 = unravel(jax.random.normal(sub, theta.shape, jnp.float64))
            v_low = jax.tree.map(lambda a, p: a.astype(p.dtype), v64, params)
            candidates = {
                "backprop": (
                    hvp(net.backprop, params, v_low, x, y),
                    hvp(net.backprop, params64, v64, x64, y64),
                ),
                "autodiff": (
                    hvp(net.autodiff, params, v_low, x, y),
                    hvp(net.autodiff, params64, v64, x64, y64),
                ),
            }
            fd = _hvp_finite_difference(net, params64, v64, x64, y64, step)
            reports.append(_compare_trees(candidates, "autodiff", fd, params, step))
    title = f"check_hvp {net.sizes} {net.hidden_activations or ''} -> {net.output_activation}"
    report = _worst_of(reports, f"over {vectors} random vectors")
    return dataclasses.replace(report, title=title)


def _hvp_finite_difference(net, params64, v64, x64, y64, step):
    """``(g(t + h v) - g(t - h v)) / 2h`` at h and h/2, Richardson-extrapolated."""
    grad = jax.jit(lambda p: net.autodiff(p, x64, y64)[1])
    theta, unravel = ravel_pytree(params64)
    v, _ = ravel_pytree(v64)
    h = step * max(1.0, float(jnp.linalg.norm(theta) / math.sqrt(theta.size)))

    def central(s):
        plus, minus = (ravel_pytree(grad(unravel(theta + sign * s * v)))[0] for sign in (1, -1))
        return (plus - minus) / (2 * s)

    return unravel((4 * central(h / 2) - central(h)) / 3)


def _compare_trees(candidates, reference, fd, wrt, step) -> GradientReport:
    """Like ``_compare`` for candidates that are pytrees beside a precomputed FD tree."""
    dtype = _caller_dtype(wrt)
    paths = _leaf_paths(wrt)
    values = {name: (_to_numpy(low), _to_numpy(high)) for name, (low, high) in candidates.items()}
    fd_leaves = _to_numpy(fd)
    tol_low = _caller_tolerances(values, reference, dtype)
    rows = []
    for name, (low, high) in values.items():
        for i, path in enumerate(paths):
            tol_fd_low = max(tol_low[i], TOLERANCES["finite_difference"])
            pairs = [(FD, fd_leaves[i], tol_fd_low, TOLERANCES["finite_difference"])]
            if name != reference:
                want = values[reference][1][i]
                pairs.insert(0, (reference, want, tol_low[i], TOLERANCES["analytic"]))
            for ref_name, want, tol, tol64 in pairs:
                scale = _scale(want)
                rows.append(
                    Row(
                        path,
                        name,
                        ref_name,
                        _stats(low[i], want, scale),
                        _stats(high[i], want, scale),
                        tol,
                        tol64,
                        0,
                    )
                )
    rows.sort(key=lambda r: (r.method != "backprop" or r.reference == FD, r.reference == FD))
    # Four gradient evaluations per vector: at theta +- h v and theta +- h/2 v.
    return GradientReport("check_hvp", "hessian-vector", dtype, step, tuple(rows), 4)


def _worst_of(reports: list[GradientReport], note: str) -> GradientReport:
    """One report holding, for every row, its worst instance across ``reports``."""

    def badness(row: Row) -> float:
        return max(row.error.max_rel / row.tolerance, row.error64.max_rel / row.tolerance64)

    rows = tuple(max(group, key=badness) for group in zip(*(r.rows for r in reports), strict=True))
    first = reports[0]
    return dataclasses.replace(
        first,
        title=f"{first.title} ({note})",
        rows=rows,
        evaluations=sum(r.evaluations for r in reports),
    )


def _check_structure(got, want, what: str) -> None:
    got_tree, want_tree = jax.tree.structure(got), jax.tree.structure(want)
    if got_tree != want_tree:
        raise ValueError(f"{what} returned a pytree {got_tree}, expected {want_tree}")
    for path, g, w in zip(
        _leaf_paths(want), jax.tree.leaves(got), jax.tree.leaves(want), strict=True
    ):
        if jnp.shape(g) != jnp.shape(w):
            raise ValueError(f"{what}{path} has shape {jnp.shape(g)}, expected {jnp.shape(w)}")
