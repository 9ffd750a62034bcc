"""Test settings that catch silent bugs: float64 available, no implicit rank promotion."""

import itertools

import jax
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def getkey():
    """Returns a function that hands out a fresh ``jax.random.key`` on each call."""
    counter = itertools.count()
    return lambda: jax.random.key(next(counter))
