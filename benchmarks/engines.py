"""Hand-derived backprop against jax.value_and_grad: step time and compiled memory.

Both engines are jit-compiled once, then timed interleaved (A B, B A, A B, ...) in
one process so that machine noise hits both alike. Each timing is the mean of
a block of calls; the table gives the median over blocks and the ratio
backprop / autodiff (below 1.0: the hand-derived engine is faster or smaller).
Memory is XLA's own account of the compiled program (arguments + outputs +
temporaries), which is exact and noise-free.

    python benchmarks/engines.py [--repeats 21]
"""

from __future__ import annotations

import argparse
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


def _block_time(fn, args, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        out = fn(*args)
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / calls


def _memory_bytes(compiled) -> int:
    stats = compiled.memory_analysis()
    return stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes


def bench_case(sizes, activation, cost, batch, calls, repeats):
    net = funcbp.MLP(sizes, activation=activation, cost=cost)
    k_p, k_x, k_y = jax.random.split(jax.random.key(0), 3)
    params = net.init(k_p)
    x = jax.random.normal(k_x, (batch, sizes[0]))
    if cost == "softmax_cross_entropy":
        y = jax.random.randint(k_y, (batch,), 0, sizes[-1])
    else:
        y = jax.random.normal(k_y, (batch, sizes[-1]))
    engines = {"backprop": net.backprop, "autodiff": net.autodiff}
    compiled = {name: jax.jit(fn).lower(params, x, y).compile() for name, fn in engines.items()}
    args = (params, x, y)
    for fn in compiled.values():  # warm up caches and threads
        _block_time(fn, args, max(1, calls // 10))
    times = {name: [] for name in compiled}
    order = list(compiled)
    for _ in range(repeats):
        for name in order:
            times[name].append(_block_time(compiled[name], args, calls))
        order.reverse()  # A B, B A, ...: neither engine always runs first
    medians = {name: statistics.median(t) for name, t in times.items()}
    memory = {name: _memory_bytes(fn) for name, fn in compiled.items()}
    return medians, memory


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


if __name__ == "__main__":
    jnp.zeros(())  # initialise the backend before timing anything
    main()
