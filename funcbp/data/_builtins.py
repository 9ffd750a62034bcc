"""The built-in datasets and the teacher generator: data that ship with funcbp or are made.

``BUILTINS`` are shipped in ``funcbp/datasets/`` (``regression`` is generated
from a fixed seed); ``teacher`` labels gaussian inputs with a random network, for
a task of any size.
"""

from __future__ import annotations

import importlib.resources
import itertools
import math
from collections.abc import Sequence

import numpy as np

from funcbp.data import _limits
from funcbp.data._dataset import Dataset, is_count, warn_if_one_class
from funcbp.errors import DataError

BUILTINS: tuple[str, ...] = ("xor", "iris", "digits", "regression")


def builtin(name: str) -> Dataset:
    """The built-in dataset ``name`` (one of ``BUILTINS``)."""
    if name == "regression":
        # Small, smooth and reproducible: 256 noisy samples of sin on [-pi, pi].
        rng = np.random.default_rng(0)
        x = rng.uniform(-np.pi, np.pi, size=(256, 1))
        return Dataset(x, np.sin(x) + 0.1 * rng.standard_normal(x.shape), None, name)
    resource = importlib.resources.files("funcbp").joinpath("datasets", f"{name}.npz")
    with resource.open("rb") as f, np.load(f, allow_pickle=False) as arrays:
        y = arrays["y"]
        return Dataset(arrays["x"], y, int(y.max()) + 1, name)


def teacher(
    n_samples: int,
    sizes: Sequence[int],
    *,
    seed: int,
    classification: bool = True,
    max_bytes: int | None = None,
) -> Dataset:
    """A synthetic task of any size: a random tanh MLP labels gaussian inputs.

    Inputs are ``x ~ N(0, 1)``. The teacher has weights ``N(0, 1 / n_in)`` (so its
    tanh units neither saturate nor stay linear), biases ``N(0, 0.1^2)`` (so it is
    not an odd function), tanh hidden layers and an identity output layer. Inputs
    and teacher come from separate streams of ``seed``: the teacher depends on
    ``seed`` and ``sizes`` only, and a larger ``n_samples`` extends the same rows.

    Args:
      n_samples: the number of samples ``n``.
      sizes: teacher widths ``(n_in, hidden..., n_out)``; any student with
        ``sizes[0]`` inputs and ``sizes[-1]`` outputs fits the data.
      seed: a non-negative integer; equal arguments give equal datasets.
      classification: labels ``argmax(out)`` ``[n]`` with ``n_out`` classes, or else
        the outputs themselves as regression targets ``[n, n_out]``.
      max_bytes: the most memory it may take, as ``load``'s (default: half the memory
        available now); the estimate, float32 inputs ``[n, n_in]``, two layers'
        activations ``[n, widest]`` and the weights, is checked before allocating.

    Returns:
      A ``Dataset`` with ``x`` ``[n, n_in]`` float32.
    """
    if not is_count(n_samples) or n_samples == 0:
        raise DataError(f"teacher: n_samples must be a positive integer, got {n_samples!r}")
    if (
        isinstance(sizes, str)
        or not isinstance(sizes, Sequence)
        or len(sizes) < 2
        or not all(is_count(n) and n > 0 for n in sizes)
    ):
        raise DataError(
            f"teacher: sizes must be at least two positive integers (n_in, ..., n_out), "
            f"got {sizes!r}"
        )
    if not is_count(seed):
        raise DataError(f"teacher: seed must be a non-negative integer, got {seed!r}")
    if classification and sizes[-1] < 2:
        raise DataError(f"teacher: classification needs sizes[-1] >= 2 classes, got {sizes[-1]}")
    widest = max(sizes[1:])
    n_bytes = 4 * (
        n_samples * (sizes[0] + 2 * widest) + sum(map(math.prod, itertools.pairwise(sizes)))
    )
    _limits.check_size(
        f"teacher: {n_samples} samples of sizes {tuple(sizes)} (x [{n_samples}, {sizes[0]}] "
        f"and activations [{n_samples}, {widest}] float32) need",
        n_bytes,
        _limits.resolve(max_bytes),
    )
    rng_teacher, rng_x = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    x = rng_x.standard_normal((n_samples, sizes[0]), dtype=np.float32)
    a = x
    for layer, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        w = rng_teacher.standard_normal((n_in, n_out), dtype=np.float32)
        w /= np.float32(math.sqrt(n_in))
        b = np.float32(0.1) * rng_teacher.standard_normal(n_out, dtype=np.float32)
        z = a @ w + b[None, :]
        a = np.tanh(z) if layer < len(sizes) - 2 else z
    name = f"teacher{tuple(int(n) for n in sizes)}"
    if not classification:
        return Dataset(x, a, None, name)
    dataset = Dataset(x, np.argmax(a, axis=1), sizes[-1], name)
    warn_if_one_class(dataset)
    return dataset
