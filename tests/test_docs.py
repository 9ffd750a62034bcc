"""The documentation site: every page's Python runs, its commands parse, the run-file
reference is what the code accepts, and ``mkdocs build --strict`` passes."""

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import jax
import pytest

from funcbp.cli import config
from funcbp.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("**/*.md"))
PRELUDE = "import jax, jax.numpy as jnp, funcbp\n"


def _blocks(page: Path, language: str) -> list[str]:
    return [body for lang, body in re.findall(r"```(\w*)\n(.*?)```", page.read_text(),
                                              flags=re.S) if lang == language]  # fmt: skip


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("page", [p for p in PAGES if _blocks(p, "python")],
                         ids=lambda p: p.name)  # fmt: skip
def test_every_python_block_on_a_page_runs(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # what a block writes (a checkpoint) goes there
    namespace: dict = {}
    with jax.enable_x64(False):  # the pages run with JAX's default float32
        for block in _blocks(page, "python"):
            exec(compile(PRELUDE + block, str(page), "exec"), namespace)


COMMANDS = ("train", "diagnose", "compare-rules", "predict", "evaluate", "export", "check", "plot")
_COMMAND_LINE = re.compile(r"^\s*(\$\s+)?(\S*/)?funcbp\s+(" + "|".join(COMMANDS) + r")\s")


def _commands(page: Path) -> list[list[str]]:
    """The ``funcbp ...`` command lines of the page's shell blocks, as arguments."""
    found = []
    for block in _blocks(page, "bash") + _blocks(page, ""):
        for line in block.replace("\\\n", " ").splitlines():
            if _COMMAND_LINE.match(line + " "):
                words = shlex.split(line, comments=True)
                found.append(words[words.index(next(w for w in words if w.endswith("funcbp")))
                                   + 1 :])  # fmt: skip
    return found


def test_every_command_on_the_pages_parses():
    parser = cli._parser()
    commands = [c for page in PAGES for c in _commands(page)]
    assert len(commands) >= 8, commands
    for args in commands:
        parser.parse_args(args)  # a renamed flag or command exits with status 2


def test_every_benchmark_a_page_names_exists():
    named = {m for p in PAGES for m in re.findall(r"benchmarks/\w+\.py", p.read_text())}
    assert len(named) >= 5, named
    assert all((ROOT / name).is_file() for name in named), named


def test_the_run_file_reference_is_current_and_every_key_it_lists_is_accepted():
    hooks = _hooks()
    committed = (DOCS / hooks.PAGE).read_text()
    assert committed == hooks.run_file_reference() + "\n", "regenerate docs/reference/run-file.md"
    base = {"data": {"source": "digits"}, "model": {"hidden": [8]}}
    for section, table in hooks.keys().items():
        for key, default in table.items():
            name, _, owner = key.partition(" (")
            if default in ("required", "unset") or owner == "any first-order optimizer)":
                continue
            raw = {s: dict(t) for s, t in base.items()}
            raw.setdefault(section, {})[name] = tomllib.loads(f"v = {default}")["v"]
            if section == "optimizer" and owner:
                raw["optimizer"]["name"] = owner.rstrip(")")
            if section == "rule":
                raw["train"] = {"engine": owner.rstrip(")")}
            config.from_dict(raw)  # ConfigError names a key the reference should not list
    # And the other way: every field of every table is listed.
    for section, cls in config.SECTIONS.items():
        listed = {k.partition(" (")[0] for k in hooks.keys()[section]}
        assert {f for f in cls.__dataclass_fields__ if f != "options"} <= listed, section


def _row_shape(line: str) -> tuple[str, ...]:
    """Leaf, methods, verdict and, on a failing row, the worst index: what must not drift.

    The digits may drift, and so may the worst index of a passing row: there it
    is float32 rounding noise, which differs between CPUs (SIMD width, exp).
    """
    cells = line.split()
    if cells[0] != "<root>":
        return tuple(cells)
    return (*cells[:4], cells[7] if cells[-1] == "FAIL" else "-", cells[-1])


def test_the_gradient_check_example_prints_what_its_page_shows(capsys):
    page = DOCS / "gradient-checks.md"
    with jax.enable_x64(False):
        exec(PRELUDE + _blocks(page, "python")[0], {})
    printed = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(("check", "<"))]
    shown = [ln for ln in page.read_text().splitlines()
             if ln.startswith(("check_grad grad_f", "<root>"))]  # fmt: skip
    assert [_row_shape(ln) for ln in printed] == [_row_shape(ln) for ln in shown]


def test_the_user_pieces_example_prints_the_report_its_page_shows(capsys):
    page = DOCS / "your-own-pieces.md"
    block = next(b for b in _blocks(page, "python") if "MISH" in b)
    exec(PRELUDE + block, {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "check_activation 'mish': PASS" and printed[-1] == "True", printed
    rows = [ln for ln in printed if ln.startswith("f'(z) vs jax.grad")]
    assert len(rows) == 2 and all(ln.endswith("ok") for ln in rows), printed
    assert all(ln in page.read_text() for ln in printed[:3]), "the page shows another report"


def test_the_functional_api_example_computes_what_it_says():
    namespace: dict = {}
    exec(compile(_blocks(DOCS / "functional-api.md", "python")[0], "functional-api", "exec"),
         namespace)  # fmt: skip
    assert namespace["loss"].shape == () and len(namespace["history"]["train_loss"]) == 5
    assert namespace["out"].shape == (8, 3)


@pytest.mark.skipif(shutil.which("mkdocs") is None and importlib.util.find_spec("mkdocs") is None,
                    reason="the docs extra is not installed")  # fmt: skip
def test_the_site_builds_strictly(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d",
                           str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "reference" / "run-file" / "index.html").is_file()
    assert "funcbp.rules" in (tmp_path / "site" / "reference" / "api" / "index.html").read_text()
