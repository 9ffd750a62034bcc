"""Gradient-check time: ``funcbp.check_gradients`` against a per-parameter Python loop.

Two checks, each a whole ``funcbp.check_gradients`` call on float32 parameters
(the caller's dtype; the finite differences run in float64 inside the check):

* elementwise: 64-128-10 tanh, softmax cross-entropy, batch 32 (9,610
  parameters): every parameter perturbed, 4 evaluations each (central
  differences at h and h/2, Richardson extrapolation, kink test). Target < 10 s.
* directional: 784-1024-200-10 tanh, softmax cross-entropy, batch 32
  (1,010,850 parameters): 8 random unit directions per leaf (the default).
  Target < 5 s.

Where the directional check's compile time went (``jax.jit(...).lower(...).compile()``
of its pieces, quiet machine, float64): its program took 1.4 s to compile against
0.06 s for the loss alone; about 1.0 s of it were the six Gaussian draws of
directions, one per leaf (threefry and erf_inv, ~0.15 s each, and a normalisation
each), and 0.4 s the six loops with a copy of the loss each. It now draws random
signs (+-1/sqrt(n), unit without a normalisation; no erf_inv) once for all leaves,
and runs one loop over (leaf, direction, signed step) with one copy of the loss in
its body, the chosen leaf moved and the others moved by zero: 0.5 s.

Each call is measured in a fresh process (``--one NAME`` prints one JSON line),
so it includes every compilation a user's first call pays; processes run
interleaved for ``--repeats`` rounds and the table gives medians. "compile s" is
the part of the call that JAX reports through ``jax.monitoring`` as tracing,
lowering and XLA compilation; "2nd s" is the same call again in that process.
Creating the parameters and data and starting the backend happen before the clock.

Baseline: the loop one would write by hand, central differences one parameter at
a time with a jitted loss in float64::

    f = jax.jit(lambda theta, i, h: loss(unravel(theta.at[i].add(h))))
    for i in range(n): g[i] = (f(theta, i, h_i) - f(theta, i, -h_i)) / (2 h_i)

with ``h_i = 1e-4 * max(1, |theta_i|)`` (the check's own step rule). It is timed
on ``--sample`` evenly spaced parameters after one compiling call, and
extrapolated to all ``n``: compile + n * (time per parameter). It does less per
parameter than the check (2 evaluations, not 4, and no comparison), and for the
directional case it is the cost of checking every parameter, which the
directional check does not do: the speedup there is of the method, not of equal
work.

    python benchmarks/gradcheck.py [--repeats 3] [--sample 500] [--fast-cpu-compile]

``--fast-cpu-compile``: the measured processes call ``funcbp.use_fast_cpu_compile()``
first (what ``funcbp check`` does); without it they run as a plain script does.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from _fresh import run_fresh

CASES = {
    # name: sizes, mode, target seconds
    "elementwise ~10k": ((64, 128, 10), "elementwise", 10.0),
    "directional ~1M": ((784, 1024, 200, 10), "directional", 5.0),
}
BATCH = 32


# --- inside one measured process ------------------------------------------------------


def _problem(sizes):
    import jax

    import funcbp

    net = funcbp.MLP(sizes, activation="tanh", cost="softmax_cross_entropy")
    k_params, k_x, k_y = jax.random.split(jax.random.key(0), 3)
    params = net.init(k_params)
    x = jax.random.normal(k_x, (BATCH, sizes[0]))
    y = jax.random.randint(k_y, (BATCH,), 0, sizes[-1])
    jax.block_until_ready((params, x, y))
    return net, params, x, y


def _check(case: str) -> dict:
    import funcbp

    sizes, mode, _ = CASES[case]
    net, params, x, y = _problem(sizes)
    from funcbp._jax.compile_clock import CompileClock  # after the timed import

    clock = CompileClock()
    result = {"params": net.num_params}
    for label in ("first", "second"):
        compiled_before = clock.seconds
        start = time.perf_counter()
        report = funcbp.check_gradients(net, params, x, y, mode=mode)
        result[f"{label}_s"] = time.perf_counter() - start
        result[f"{label}_compile_s"] = clock.seconds - compiled_before
        if label == "first":
            result["compile_by_program"] = dict(clock.by_program)
        result["ok"] = report.ok
        result["evaluations"] = report.evaluations
        result["mode"] = report.mode
    return result


def _loop(case: str, sample: int) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.flatten_util import ravel_pytree

    sizes, _, _ = CASES[case]
    net, params, x, y = _problem(sizes)
    from funcbp._jax.compile_clock import CompileClock  # after the timed import

    clock = CompileClock()
    with jax.enable_x64(True):
        params64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        x64 = jnp.asarray(x, jnp.float64)
        theta, unravel = ravel_pytree(params64)
        theta_host = np.asarray(theta)
        n = theta.size
        f = jax.jit(lambda theta, i, h: net.loss(unravel(theta.at[i].add(h)), x64, y))

        start = time.perf_counter()
        float(f(theta, 0, 0.0))  # compiles
        compile_s = time.perf_counter() - start
        compile_events_s = clock.seconds

        indices = np.linspace(0, n - 1, sample).round().astype(int)
        estimate = np.empty(sample)
        start = time.perf_counter()
        for j, i in enumerate(indices):
            h = 1e-4 * max(1.0, abs(float(theta_host[i])))
            estimate[j] = (float(f(theta, int(i), h)) - float(f(theta, int(i), -h))) / (2 * h)
        loop_s = time.perf_counter() - start

        exact = np.asarray(ravel_pytree(net.autodiff(params64, x64, y)[1])[0])[indices]
        error = float(np.max(np.abs(estimate - exact)) / np.max(np.abs(exact)))
    return {
        "params": int(n),
        "sample": sample,
        "compile_s": compile_s,
        "compile_events_s": compile_events_s,
        "per_param_s": loop_s / sample,
        "extrapolated_s": compile_s + n * loop_s / sample,
        "max_rel_error": error,
    }


def one(name: str, sample: int, fast_cpu_compile: bool) -> dict:
    if fast_cpu_compile:
        import funcbp

        funcbp.use_fast_cpu_compile()
    import jax.numpy as jnp

    jnp.zeros(()).block_until_ready()  # start the backend off the clock
    kind, case = name.split(":", 1)
    return _check(case) if kind == "check" else _loop(case, sample)


# --- the driver ---------------------------------------------------------------------


def _fmt_speedup(ratio: float) -> str:
    return f"{ratio:.1f}x" if ratio < 10 else f"{ratio:,.0f}x"


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per measurement")
    parser.add_argument("--sample", type=int, default=500, help="parameters the loop times")
    parser.add_argument(
        "--fast-cpu-compile",
        action="store_true",
        help="call funcbp.use_fast_cpu_compile() in the measured processes",
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.sample, args.fast_cpu_compile)))
        return

    import jax

    device = jax.devices()[0]
    print(
        f"jax {jax.__version__} on {device.platform} ({device.device_kind}), "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start"
    )
    print(
        f"median of {args.repeats} fresh processes each, interleaved; float32 parameters, "
        f"batch {BATCH}; XLA_FLAGS {os.environ.get('XLA_FLAGS') or 'unset'}"
        f"{', then funcbp.use_fast_cpu_compile()' if args.fast_cpu_compile else ''}\n"
    )
    names = [f"{kind}:{case}" for case in CASES for kind in ("check", "loop")]
    extra = ["--sample", str(args.sample), *(["--fast-cpu-compile"] * args.fast_cpu_compile)]
    runs = run_fresh(__file__, names, args.repeats, *extra)

    header = (
        f"{'check':<17} {'params':>9} {'evals':>6} {'ok':>3} {'check s':>8} {'compile s':>9}"
        f" {'2nd s':>6} {'target':>7} {'loop ms/param':>13} {'loop s (extrap.)':>16}"
        f" {'speedup':>8}"
    )
    print(header)
    print("-" * len(header))
    for case, (_, _, target) in CASES.items():
        check, loop = runs[f"check:{case}"], runs[f"loop:{case}"]
        total = _median(check, "first_s")
        extrapolated = _median(loop, "extrapolated_s")
        verdict = "met" if total < target else "MISSED"
        print(
            f"{case:<17} {check[0]['params']:>9,} {check[0]['evaluations']:>6,}"
            f" {'yes' if all(r['ok'] for r in check) else 'NO':>3} {total:>8.2f}"
            f" {_median(check, 'first_compile_s'):>9.2f} {_median(check, 'second_s'):>6.2f}"
            f" {f'<{target:.0f} s':>7} {_median(loop, 'per_param_s') * 1e3:>13.3f}"
            f" {extrapolated:>16,.1f} {_fmt_speedup(extrapolated / total):>8}  {verdict}"
        )
    print(
        f"\ncheck s: one whole check_gradients call in a fresh process; compile s: its JAX\n"
        f"tracing + lowering + XLA compile; 2nd s: the same call again in that process.\n"
        f"loop: per-parameter central differences (2 jitted float64 loss evaluations each),\n"
        f"timed on {args.sample} evenly spaced parameters and extrapolated to all of them\n"
        f"(plus its compile time); speedup = loop s (extrap.) / check s. The directional\n"
        f"check covers 8 random directions per leaf, not every parameter.\n"
        f"loop max relative error against autodiff on its sample: "
        + ", ".join(
            f"{case} {max(r['max_rel_error'] for r in runs[f'loop:{case}']):.1e}" for case in CASES
        )
    )
    print("\nwhere the compile time of the first check goes (median s per program, top 4):")
    for case in CASES:
        check = runs[f"check:{case}"]
        programs = {name for r in check for name in r["compile_by_program"]}
        medians = {
            name: statistics.median(r["compile_by_program"].get(name, 0.0) for r in check)
            for name in programs
        }
        top = sorted(medians.items(), key=lambda item: -item[1])[:4]
        print(f"  {case}: " + ", ".join(f"{name} {seconds:.2f}" for name, seconds in top))
    print(f"load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
