"""funcbp.enable_compilation_cache: compiled programs land on disk, or nowhere when off."""

import os
import subprocess
import sys

SCRIPT = """
import sys, jax, jax.numpy as jnp, funcbp
where = funcbp.enable_compilation_cache(sys.argv[1])
jax.jit(lambda a: a * 2 + 1)(jnp.ones(3)).block_until_ready()
print(where, jax.config.jax_compilation_cache_dir)
"""


def _run(directory: str, **environ: str) -> str:
    """Runs SCRIPT with FUNCBP_CACHE_DIR unset (and ``environ``); its one line of output."""
    env = {k: v for k, v in os.environ.items() if k != "FUNCBP_CACHE_DIR"} | environ
    done = subprocess.run([sys.executable, "-c", SCRIPT, directory], capture_output=True,
                          text=True, env=env, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_programs_are_written_to_the_directory(tmp_path):
    cache = tmp_path / "jax"
    assert _run(str(cache)) == f"{cache} {cache}"
    assert any(cache.iterdir()), "nothing was cached"


def test_an_empty_directory_leaves_the_cache_off():
    assert _run("") == "None None"


def test_a_tilde_means_the_home_directory(tmp_path):
    cache = tmp_path / "jax"
    assert _run("~/jax", HOME=str(tmp_path)) == f"{cache} {cache}"
    assert any(cache.iterdir()), "nothing was cached"
