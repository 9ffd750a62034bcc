"""The package's shape: importing it changes nothing, caches can be freed, modules stay small."""

import ast
import importlib
import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import optax
import pytest

import funcbp
from funcbp._jax import xla_cpu_flags

from ._xla_compiles import XlaCompiles

PACKAGE = pathlib.Path(funcbp.__file__).parent
MODULES = sorted(PACKAGE.rglob("*.py"))

# What a process looks like before and after `import funcbp` (and its submodules).
STATE_AROUND_IMPORT = r"""
import json, os, sys

def state():
    import jax
    umask = next(line.split()[1] for line in open("/proc/self/status") if line.startswith("Umask"))
    config = {name: getattr(jax.config, name) for name in
              ("jax_enable_x64", "jax_compilation_cache_dir", "jax_numpy_rank_promotion")}
    from jax._src import monitoring
    listeners = len(monitoring._event_duration_secs_listeners)
    return {"environ": dict(os.environ), "umask": umask, "config": config, "listeners": listeners}

before = state()
import funcbp, funcbp.checkpoint, funcbp.gradcheck, funcbp.train, funcbp.cli.main
print(json.dumps([before, state()]))
"""


def _python(script: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300)  # fmt: skip


def test_importing_funcbp_leaves_the_environment_umask_and_jax_state_alone():
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    done = subprocess.run([sys.executable, "-c", STATE_AROUND_IMPORT], capture_output=True,
                          text=True, env=env, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    before, after = json.loads(done.stdout)
    assert after == before


def test_a_bad_option_variable_fails_at_the_call_not_at_import():
    script = "import funcbp\ntry:\n    funcbp.use_fast_cpu_compile()\nexcept ValueError as e:\n"
    script += "    print(e)"
    done = _python(script, **{xla_cpu_flags.SMALL_LOOP_ENV: "lots"})
    assert done.returncode == 0, done.stderr
    assert "FUNCBP_SMALL_LOOP_BYTES must be a number of bytes" in done.stdout


def test_use_fast_cpu_compile_sets_xla_flags_before_the_backend_and_refuses_after():
    script = """
import os, funcbp, jax.numpy as jnp
added = funcbp.use_fast_cpu_compile()
print(added, os.environ["XLA_FLAGS"])
print(funcbp.use_fast_cpu_compile())  # already there: nothing to add
jnp.ones(1).block_until_ready()
os.environ["XLA_FLAGS"] = ""
try:
    funcbp.use_fast_cpu_compile()
except RuntimeError as err:
    print(err)
"""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    first, second, third = done.stdout.splitlines()
    assert first.startswith("True --xla_backend_extra_options=xla_cpu_small_while_loop_byte")
    assert second == "False"
    assert third.startswith("use_fast_cpu_compile() must run before JAX's first computation")


def test_clear_caches_frees_every_compiled_block():
    x = [[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]
    y = [0, 1, 1, 0]
    nets = [funcbp.MLP((2, width, 2), cost="softmax_cross_entropy") for width in (3, 4, 5)]
    for net in nets:
        funcbp.fit(net, optax.sgd(0.1), (x, y), epochs=2, batch_size=2)
    compiles = XlaCompiles()
    with compiles:
        funcbp.fit(nets[0], optax.sgd(0.1), (x, y), epochs=2, batch_size=2)
    assert compiles.count == 0  # kept: the same program again compiles nothing
    funcbp.clear_caches()
    with compiles:
        funcbp.fit(nets[0], optax.sgd(0.1), (x, y), epochs=2, batch_size=2)
    assert compiles.count >= 2  # initialisation and the block, compiled anew


def _public_functions(tree: ast.Module):
    """Functions and methods without a leading underscore, outside private classes."""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node.name, node
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and not item.name.startswith("_"):
                    yield f"{node.name}.{item.name}", item


def _parameters(fn: ast.FunctionDef) -> list[str]:
    """Named parameters, less ``self``/``cls``; ``*args`` counts, and ``**overrides`` does
    beside no ``options`` parameter (with one, they are that object's fields)."""
    a = fn.args
    names = [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    names = [n for n in names if n not in ("self", "cls")]
    if a.vararg:
        names.append(f"*{a.vararg.arg}")
    if a.kwarg and "options" not in names:
        names.append(f"**{a.kwarg.arg}")
    return names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_are_short_and_public_functions_take_at_most_eight_parameters(path):
    text = path.read_text()
    assert len(text.splitlines()) <= 400, f"{path.name} has {len(text.splitlines())} lines"
    for name, fn in _public_functions(ast.parse(text)):
        if not name.split(".")[-1].startswith("_"):
            params = _parameters(fn)
            assert len(params) <= 8, f"{name} takes {len(params)} parameters: {params}"


def test_every_exported_name_exists_and_plumbing_is_not_exported():
    for name in funcbp.__all__:
        assert hasattr(funcbp, name), name
    assert not {"atomic", "shared_program", "compile_clock", "xla_cpu_flags", "cli"} & set(
        funcbp.__all__
    )


# The layers, bottom first: a module imports from its own layer or those below, never above
# (README, Layout). The command line is on top: nothing but `python -m funcbp` imports it.
LAYERS = [
    {"funcbp.errors", "funcbp._jax", "funcbp._registry"},
    {"funcbp.activations", "funcbp.losses", "funcbp.initializers"},
    {"funcbp.backprop"},
    {"funcbp.mlp", "funcbp.rules", "funcbp.curvature"},
    {"funcbp.diagnostics", "funcbp.gradcheck", "funcbp.optim", "funcbp.data"},
    {"funcbp.sharding", "funcbp.process_data"},
    {"funcbp.train"},
    {"funcbp.checkpoint", "funcbp.testing"},
    {"funcbp.predict", "funcbp.export"},
    {"funcbp", "funcbp.cli", "funcbp.__main__"},
    {"funcbp.sklearn"},  # the scikit-learn front end (an optional extra): nothing imports it
]


def _unit(module: str) -> str:
    """The layer unit of a dotted module name: ``funcbp.train._fit`` -> ``funcbp.train``."""
    return ".".join(module.split(".")[:2])


def _module_or_package(module: str, name: str) -> str:
    """What ``from module import name`` imports: the submodule ``name``, or ``module``."""
    if not hasattr(importlib.import_module(module), "__path__"):  # not a package
        return module
    return f"{module}.{name}" if importlib.util.find_spec(f"{module}.{name}") else module


def _imports(path: pathlib.Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("funcbp")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("funcbp"):
            # `from funcbp import data` imports the module funcbp.data; `from funcbp import
            # MLP`, the package's __init__
            found |= {_module_or_package(node.module, a.name) for a in node.names}
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_import_only_from_their_layer_or_below(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    layer_of = {unit: i for i, units in enumerate(LAYERS) for unit in units}
    here = layer_of[_unit(module)]
    for imported in _imports(path):
        unit = _unit(imported)
        assert layer_of[unit] <= here, (
            f"{module} (layer {here}) imports {imported} ({layer_of[unit]})"
        )
        if unit == "funcbp.cli":
            assert _unit(module) in ("funcbp.cli", "funcbp.__main__"), f"{module} imports the CLI"
        if unit == "funcbp.sklearn":
            assert _unit(module) == unit, f"{module} imports funcbp.sklearn"
