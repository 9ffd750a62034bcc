"""MkDocs hooks: the run-file reference page, generated from ``funcbp/cli/config.py``.

``run_file_reference()`` lists every key a run file takes, with its type and default,
from the config's own dataclasses, ``funcbp.MLP``'s fields, ``funcbp.optim`` and
``funcbp.rules``; the build writes it into ``reference/run-file.md``, and
``tests/test_docs.py`` checks that the committed page is what it generates and that
``funcbp.cli.config`` accepts every key it lists.
"""

from __future__ import annotations

import dataclasses
import typing

from funcbp import optim, rules
from funcbp.cli import config
from funcbp.mlp import MLP

PAGE = "reference/run-file.md"


def keys() -> dict[str, dict[str, str]]:
    """``{section: {key: default as TOML}}`` for every key a run file takes."""
    out: dict[str, dict[str, str]] = {}
    for section, cls in config.SECTIONS.items():
        table = {}
        for field in dataclasses.fields(cls):
            if field.name == "options":
                continue
            table[field.name] = _default(field)
        if cls is config.ModelConfig:
            table |= {f.name: _default(f) for f in dataclasses.fields(MLP) if f.name != "sizes"}
        if cls is config.RuleConfig:
            table |= {f"{option} ({name})": _toml(default) for name in rules.NAMES
                      for option, default in rules.options_of(name).items()}  # fmt: skip
        if cls is config.OptimizerConfig:
            table |= {f"{option} ({name})": _toml(default) for name in optim.NAMES
                      for option, default in optim.options_of(name).items()}  # fmt: skip
            table |= {f"{option} (any first-order optimizer)": "unset"
                      for option in optim.COMMON_OPTIONS}  # fmt: skip
        out[section] = table
    return out


def run_file_reference() -> str:
    """The reference page's Markdown."""
    lines = [
        "# Run-file reference",
        "",
        "Every key a TOML run file (`funcbp train CONFIG`) takes, by table, with its",
        "default; generated from `funcbp/cli/config.py`, `funcbp.MLP`, `funcbp.optim` and",
        "`funcbp.rules` (`docs/hooks.py`), so it lists what the code accepts. Only",
        "`data.source` and `model.hidden` are required. `[optimizer]` takes the options",
        "of the optimizer it names, `[rule]` those of the rule `train.engine` names;",
        "`optimizer.learning_rate` unset is 1e-3 for a first-order optimizer, and a",
        "full-batch solver (`lbfgs`, `levenberg_marquardt`, `newton_cg`) takes none.",
        "",
    ]
    hints = {cls: typing.get_type_hints(cls) for cls in config.SECTIONS.values()}
    for section, table in keys().items():
        cls = config.SECTIONS[section]
        lines += [f"## [{section}]", "", "| key | type | default |", "|---|---|---|"]
        for key, default in table.items():
            hint = hints[cls].get(key) or _mlp_hint(key) or _option_hint(default)
            lines.append(f"| `{key}` | {_type(hint)} | `{default}` |")
        lines.append("")
    return "\n".join(lines)


def on_page_markdown(markdown: str, page, **_) -> str:
    """Builds the reference page from the code (MkDocs calls this for every page)."""
    return run_file_reference() if page.file.src_uri == PAGE else markdown


def _default(field: dataclasses.Field) -> str:
    if field.default is not dataclasses.MISSING:
        return _toml(field.default)
    if field.default_factory is not dataclasses.MISSING:
        return _toml(field.default_factory())
    return "required"


def _toml(value) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{}" if not value else "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in
                                                      value.items()) + "}"  # fmt: skip
    return repr(value)


def _mlp_hint(key: str):
    return typing.get_type_hints(MLP).get(key) if " " not in key else None


def _option_hint(default: str) -> str:
    """An option's type, from its default as TOML (``unset``: see the code's docstring)."""
    if default == "unset":
        return "see funcbp.optim.make"
    if default in ("true", "false"):
        return "bool"
    if default.startswith('"'):
        return "str"
    return "int" if default.lstrip("-").isdigit() else "float"


def _type(hint) -> str:
    text = (
        hint
        if isinstance(hint, str)
        else str(hint).replace("typing.", "").replace("funcbp.activations.", "")
    )
    text = text.replace("funcbp.losses.", "").replace("<class '", "").replace("'>", "")
    return text.replace("|", "\\|")
