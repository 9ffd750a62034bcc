"""Hand-derived backprop against jax.value_and_grad: step time and compiled memory.

Both engines are jit-compiled once, then timed interleaved (A B, B A, A B, ...) in
one process so that machine noise hits both alike. Each timing is the mean of
a block of calls; the table gives the median over blocks and the ratio
backprop / autodiff (below 1.0: the hand-derived engine is faster or smaller).
Memory is XLA's own account of the compiled program (arguments + outputs +
temporaries), which is exact and noise-free.

A second table times each network again with its hidden activation given as a
user ``funcbp.Activation`` identical to the built-in one (``my_relu``,
``my_tanh``), all four programs (built-in and user, each engine) interleaved in
one run; ratio = user / built-in (1.0: a user activation costs nothing extra),
and whether the two compile to the same optimised program.

    python benchmarks/engines.py [--repeats 21]
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import statistics
import time

import jax
import jax.numpy as jnp

import funcbp

CASES = [
    # name, sizes, activation, cost, batch, calls per timed block
    ("small 2-8-1", (2, 8, 1), "tanh", "mse", 4, 2000),
    ("medium 64-256-256-10", (64, 256, 256, 10), "relu", "softmax_cross_entropy", 128, 200),
    ("large 784-2048-2048-10", (784, 2048, 2048, 10), "relu", "softmax_cross_entropy", 512, 5),
]


# User activations written as a user would, identical to the built-ins they shadow.
USER_TWINS = {
    "relu": funcbp.Activation(
        "my_relu",
        jax.nn.relu,
        lambda z, a: (z > 0).astype(z.dtype),
        kinks=(0.0,),
        can_die=True,
        init="he_normal",
    ),
    "tanh": funcbp.Activation(
        "my_tanh", jnp.tanh, lambda z, a: (1.0 - a) * (1.0 + a), max_grad=1.0
    ),
}


def _block_time(fn, args, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        out = fn(*args)
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / calls


def _memory_bytes(compiled) -> int:
    stats = compiled.memory_analysis()
    return stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes


def _problem(sizes, activation, cost, batch):
    net = funcbp.MLP(sizes, activation=activation, cost=cost)
    k_p, k_x, k_y = jax.random.split(jax.random.key(0), 3)
    params = net.init(k_p)
    x = jax.random.normal(k_x, (batch, sizes[0]))
    if cost == "softmax_cross_entropy":
        y = jax.random.randint(k_y, (batch,), 0, sizes[-1])
    else:
        y = jax.random.normal(k_y, (batch, sizes[-1]))
    return net, (params, x, y)


def _time_interleaved(compiled, args, calls: int, repeats: int) -> dict[str, float]:
    """Median block time of each compiled program, the programs run in turn (order
    reversed every round)."""
    for fn in compiled.values():  # warm up caches and threads
        _block_time(fn, args, max(1, calls // 10))
    times = {name: [] for name in compiled}
    order = list(compiled)
    for _ in range(repeats):
        for name in order:
            times[name].append(_block_time(compiled[name], args, calls))
        order.reverse()  # A B, B A, ...: neither engine always runs first
    return {name: statistics.median(t) for name, t in times.items()}


def bench_case(sizes, activation, cost, batch, calls, repeats):
    net, args = _problem(sizes, activation, cost, batch)
    engines = {"backprop": net.backprop, "autodiff": net.autodiff}
    compiled = {name: jax.jit(fn).lower(*args).compile() for name, fn in engines.items()}
    medians = _time_interleaved(compiled, args, calls, repeats)
    memory = {name: _memory_bytes(fn) for name, fn in compiled.items()}
    return medians, memory


def _program_text(compiled) -> str:
    """The optimised HLO's instructions, without the source locations (file, line) that
    its metadata and debug tables record: only those differ between a user function and
    the built-in one it copies."""
    lines = (re.sub(r", metadata=\{[^}]*\}", "", line) for line in compiled.as_text().splitlines())
    return "\n".join(line for line in lines if " = " in line)


def bench_user_twin(sizes, activation, cost, batch, calls, repeats):
    """Built-in ``activation`` against its user twin: ``(medians, same_program)``, the
    medians keyed ``(engine, "builtin" | "user")``, ``same_program`` per engine."""
    net, args = _problem(sizes, activation, cost, batch)
    user = dataclasses.replace(net, activation=USER_TWINS[activation])
    compiled = {
        (engine, kind): jax.jit(getattr(n, engine)).lower(*args).compile()
        for engine in ("backprop", "autodiff")
        for kind, n in (("builtin", net), ("user", user))
    }
    medians = _time_interleaved(compiled, args, calls, repeats)
    same = {
        engine: _program_text(compiled[engine, "builtin"])
        == _program_text(compiled[engine, "user"])
        for engine in ("backprop", "autodiff")
    }
    return medians, same


def _fmt_bytes(n: int) -> str:
    return f"{n / 2**20:.2f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


def _fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    return f"{seconds * 1e3:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21, help="timed blocks per engine")
    args = parser.parse_args()
    device = jax.devices()[0]
    print(f"jax {jax.__version__} on {device.platform} ({device.device_kind}), float32")
    print(f"median of {args.repeats} interleaved blocks; ratio = backprop / autodiff\n")
    header = (
        f"{'network (batch)':<30} {'backprop':>10} {'autodiff':>10} {'ratio':>6}"
        f" {'mem backprop':>13} {'mem autodiff':>13} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    for name, sizes, activation, cost, batch, calls in CASES:
        t, m = bench_case(sizes, activation, cost, batch, calls, args.repeats)
        print(
            f"{f'{name} ({batch})':<30} {_fmt_time(t['backprop']):>10}"
            f" {_fmt_time(t['autodiff']):>10} {t['backprop'] / t['autodiff']:>6.2f}"
            f" {_fmt_bytes(m['backprop']):>13} {_fmt_bytes(m['autodiff']):>13}"
            f" {m['backprop'] / m['autodiff']:>6.2f}",
            flush=True,
        )
    print("\nuser activation (identical to the built-in) vs built-in; ratio = user / built-in\n")
    header = (
        f"{'network (batch)':<30} {'activation':>10} {'engine':>8} {'built-in':>10}"
        f" {'user':>10} {'ratio':>6} {'same HLO':>8}"
    )
    print(header)
    print("-" * len(header))
    for name, sizes, activation, cost, batch, calls in CASES:
        t, same = bench_user_twin(sizes, activation, cost, batch, calls, args.repeats)
        for engine in ("backprop", "autodiff"):
            builtin, user = t[engine, "builtin"], t[engine, "user"]
            print(
                f"{f'{name} ({batch})':<30} {USER_TWINS[activation].name:>10} {engine:>8}"
                f" {_fmt_time(builtin):>10} {_fmt_time(user):>10} {user / builtin:>6.2f}"
                f" {'yes' if same[engine] else 'no':>8}",
                flush=True,
            )


if __name__ == "__main__":
    jnp.zeros(())  # initialise the backend before timing anything
    main()
