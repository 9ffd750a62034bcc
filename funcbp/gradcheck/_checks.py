"""The checks: ``check_gradients``, ``check_grad``, ``check_vjp`` and ``check_hvp``.

Each evaluates its candidates (in the caller's dtype and in float64) and autodiff,
takes finite differences in float64 (``_finite_differences``) and hands all of it
to the one comparison (``_compare``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from funcbp._jax.caches import bounded_cache
from funcbp._jax.options import with_overrides
from funcbp.gradcheck import _finite_differences as fds
from funcbp.gradcheck._compare import compare, scale_of
from funcbp.gradcheck._options import CheckOptions
from funcbp.gradcheck._report import GradientReport, worst_of
from funcbp.gradcheck._trees import check_float_tree, check_structure, to_numpy, tree_f64
from funcbp.mlp import MLP


def check_gradients(
    net: MLP, params, x, y, *, options: CheckOptions | None = None, **overrides
) -> GradientReport:
    """``net.backprop`` vs ``net.autodiff`` vs finite differences, leaf by leaf.

    Args:
      net: the network spec.
      params: its parameters, in any float dtype (the caller's dtype).
      x: inputs ``[batch, n_in]``; y: targets, as ``net.cost`` expects.
      options: a ``CheckOptions``; ``**overrides``: its fields as keywords
        (``mode="elementwise"``), which take precedence.
    """
    options = with_overrides(CheckOptions, options, overrides, "check_gradients")
    net.check_call(params, x, y)
    check_float_tree(params, "params")
    with jax.enable_x64(True):
        params64, x64, y64 = _net_inputs_f64(params, x, y)
        both = _both_engines(net)
        (bp, ad), (bp64, ad64) = both(params, x, y), both(params64, x64, y64)
        return _scalar_check(
            f"check_gradients {net.sizes} {net.layer_names[:-1] or ''} "
            f"-> {net.layer_names[-1]}, {net.resolved_cost.name}",
            params,
            {"backprop": (bp, bp64), "autodiff": (ad, ad64)},
            _loss_of_leaves(net, jax.tree.structure(params)),
            (x64, y64),
            options,
            options.random_key(),
        )


def check_grad(
    f: Callable[..., jax.Array],
    grad_fn: Callable[..., Any],
    *args,
    options: CheckOptions | None = None,
    **overrides,
) -> GradientReport:
    """A hand-written ``grad_fn`` of a scalar function ``f`` vs autodiff vs finite differences.

    Args:
      f: ``f(*args) -> scalar``; args are pytrees of floating arrays.
      grad_fn: ``grad_fn(*args)``: the gradient, with the pytree of ``args[0]`` when
        there is one argument, else a tuple with one entry per argument.
      *args: where to check.
      options: as for ``check_gradients``.
      **overrides: as for ``check_gradients``.
    """
    options = with_overrides(CheckOptions, options, overrides, "check_grad")
    check_float_tree(args, "args")
    # One argument is checked as itself (leaf paths like [1]['w']), several as a tuple.
    single = len(args) == 1
    argnums = 0 if single else tuple(range(len(args)))
    with jax.enable_x64(True):
        args64 = tree_f64(args)
        wrt64 = args64[0] if single else args64
        treedef = jax.tree.structure(wrt64)
        user = grad_fn(*args), grad_fn(*args64)
        if not single:
            user = tuple(tuple(g) for g in user)
        check_structure(user[1], wrt64, "grad_fn")
        autodiff = jax.grad(f, argnums)
        return _scalar_check(
            f"check_grad {getattr(grad_fn, '__name__', 'grad_fn')}",
            args[0] if single else args,
            {"grad_fn": user, "autodiff": (autodiff(*args), autodiff(*args64))},
            lambda leaves: _call(f, jax.tree.unflatten(treedef, leaves), single),
            (),
            options,
            options.random_key(),
        )


def check_vjp(
    f: Callable[..., Any],
    vjp_fn: Callable[..., Any],
    *primals,
    cotangents: int = 3,
    options: CheckOptions | None = None,
    **overrides,
) -> GradientReport:
    """A hand-written VJP vs ``jax.vjp`` vs finite differences, on random cotangents.

    Args:
      f: ``f(*primals)`` with any output pytree.
      vjp_fn: ``vjp_fn(*primals, cotangent)``: the cotangent of each primal (a single
        value when there is one primal, else a tuple).
      *primals: where to check.
      cotangents: how many random cotangents; the report keeps each leaf's worst.
      options: as for ``check_gradients``.
      **overrides: as for ``check_gradients``.
    """
    options = with_overrides(CheckOptions, options, overrides, "check_vjp")
    check_float_tree(primals, "primals")
    key = options.random_key()
    single = len(primals) == 1
    reports = []
    with jax.enable_x64(True):
        primals64 = tree_f64(primals)
        wrt64 = primals64[0] if single else primals64
        treedef = jax.tree.structure(wrt64)
        out_leaves, out_tree = jax.tree.flatten(jax.eval_shape(f, *primals64))
        out_low = jax.tree.leaves(jax.eval_shape(f, *primals))

        def projected(leaves, cts):  # <cotangent, f>: its gradient is the VJP
            out = jax.tree.leaves(_call(f, jax.tree.unflatten(treedef, leaves), single))
            return sum(jnp.vdot(c, o) for c, o in zip(cts, out, strict=True))

        for _ in range(cotangents):
            key, k_ct, k_dir = jax.random.split(key, 3)
            cts = [
                jax.random.normal(k, o.shape, jnp.float64)
                for k, o in zip(jax.random.split(k_ct, len(out_leaves)), out_leaves, strict=True)
            ]
            ct64 = jax.tree.unflatten(out_tree, cts)
            ct_low = jax.tree.unflatten(
                out_tree, [c.astype(o.dtype) for c, o in zip(cts, out_low, strict=True)]
            )
            got = vjp_fn(*primals, ct_low), vjp_fn(*primals64, ct64)
            want = jax.vjp(f, *primals)[1](ct_low), jax.vjp(f, *primals64)[1](ct64)
            if single:
                want = tuple(w[0] for w in want)
            else:
                got = tuple(tuple(g) for g in got)
            check_structure(got[1], wrt64, "vjp_fn")
            reports.append(
                _scalar_check(
                    f"check_vjp {getattr(vjp_fn, '__name__', 'vjp_fn')}",
                    primals[0] if single else primals,
                    {"vjp_fn": got, "jax.vjp": want},
                    projected,
                    (cts,),  # data, not a closure: one compiled program for every cotangent
                    options,
                    k_dir,
                    reference="jax.vjp",
                )
            )
    return worst_of(reports, f"over {cotangents} random cotangents")


def check_hvp(
    net: MLP,
    params,
    x,
    y,
    *,
    vectors: int = 3,
    options: CheckOptions | None = None,
    **overrides,
) -> GradientReport:
    """The gradient of the gradient: Hessian-vector products of the hand-derived engine.

    Forward mode through ``net.backprop`` (``jax.jvp``) against forward-over-reverse
    autodiff (``jax.jvp`` of ``jax.grad``, equal to ``jax.hessian(loss) @ v``) and
    against central differences of the autodiff gradient along ``v``, for ``vectors``
    random ``v``. Of the options, ``step`` and ``key`` apply (the differences are along
    each ``v``, whatever ``mode`` says).
    """
    options = with_overrides(CheckOptions, options, overrides, "check_hvp")
    net.check_call(params, x, y)
    check_float_tree(params, "params")
    key = options.random_key()
    reports = []
    with jax.enable_x64(True):
        params64, x64, y64 = _net_inputs_f64(params, x, y)
        theta, unravel = ravel_pytree(params64)
        gradient = functools.partial(_autodiff_gradient, net, x=x64, y=y64)
        for _ in range(vectors):
            key, sub = jax.random.split(key)
            v64 = unravel(jax.random.normal(sub, theta.shape, jnp.float64))
            v_low = jax.tree.map(lambda a, p: a.astype(p.dtype), v64, params)
            candidates = {
                name: (
                    _hvp(engine, params, v_low, x, y),
                    _hvp(engine, params64, v64, x64, y64),
                )
                for name, engine in (("backprop", net.backprop), ("autodiff", net.autodiff))
            }
            differences = fds.gradient_along(gradient, params64, v64, options.step)
            reports.append(
                compare(
                    f"check_hvp {net.sizes} {net.layer_names[:-1] or ''} -> {net.layer_names[-1]}",
                    "hessian-vector",
                    options.step,
                    params,
                    candidates,
                    "autodiff",
                    differences,
                )
            )
    return worst_of(reports, f"over {vectors} random vectors")


# --- shared by the checks -----------------------------------------------------------


def _scalar_check(
    title: str,
    wrt,
    candidates: dict[str, tuple[Any, Any]],
    scalar_fn: Callable[..., jax.Array],
    fn_args: tuple,
    options: CheckOptions,
    key: jax.Array,
    *,
    reference: str = "autodiff",
) -> GradientReport:
    """Finite differences of ``scalar_fn(leaves, *fn_args)``, a function of ``wrt``'s
    leaves in float64, in the mode ``options`` picks, compared with ``candidates``."""
    leaves64 = jax.tree.leaves(tree_f64(wrt))
    scales = [scale_of(g) for g in to_numpy(candidates[reference][1])]
    mode = options.mode_for(sum(int(np.size(leaf)) for leaf in leaves64))
    if mode == "elementwise":
        differences = fds.elementwise(
            scalar_fn, leaves64, options.step, options.chunk, scales, fn_args
        )
    else:
        differences = fds.directional(
            scalar_fn, leaves64, options.step, options.directions, key, scales, fn_args
        )
    return compare(title, mode, options.step, wrt, candidates, reference, differences)


def _call(fn: Callable, tree, single: bool):
    return fn(tree) if single else fn(*tree)


def _net_inputs_f64(params, x, y):
    """``params``, ``x`` and (unless they are integer labels) ``y`` in float64."""
    y_is_labels = jnp.issubdtype(jnp.result_type(y), jnp.integer)
    return (
        tree_f64(params),
        jnp.asarray(x, jnp.float64),
        jnp.asarray(y) if y_is_labels else jnp.asarray(y, jnp.float64),
    )


@bounded_cache()
def _both_engines(net: MLP) -> Callable:
    """One compiled function per network: both engines' gradients (reused across checks)."""
    return jax.jit(lambda p, x, y: (net.backprop(p, x, y)[1], net.autodiff(p, x, y)[1]))


@bounded_cache()
def _loss_of_leaves(net: MLP, treedef) -> Callable:
    """``net.loss`` as a function of the parameters' leaves (one object per network, so
    that the compiled finite differences are reused)."""
    return lambda leaves, x, y: net.loss(jax.tree.unflatten(treedef, leaves), x, y)


@functools.partial(jax.jit, static_argnums=0)
def _hvp(engine: Callable, params, v, x, y):
    """``d/dt engine(params + t v)``'s gradient at 0: forward mode through ``engine``."""
    return jax.jvp(lambda q: engine(q, x, y)[1], (params,), (v,))[1]


@functools.partial(jax.jit, static_argnums=0)
def _autodiff_gradient(net: MLP, params, x, y):
    return net.autodiff(params, x, y)[1]
