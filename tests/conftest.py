"""Test settings that catch silent bugs: float64 available, no implicit rank promotion."""

import itertools
import os

# In-process CLI calls must not switch on JAX's persistent compilation cache for
# the rest of the session (the end-to-end tests give their subprocesses one).
os.environ["FUNCBP_CACHE_DIR"] = ""

import jax
import pytest

import funcbp

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def getkey():
    """Returns a function that hands out a fresh ``jax.random.key`` on each call."""
    counter = itertools.count()
    return lambda: jax.random.key(next(counter))


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs():
    """Drops every compiled program, funcbp's and JAX's, after each test module.

    Every compiled CPU program holds a few memory mappings; one long session
    that keeps tens of thousands of them reaches the kernel's vm.max_map_count
    (65530) and XLA crashes in its next compilation.
    """
    yield
    funcbp.clear_caches()
