"""Run configuration: TOML -> a typed, frozen ``RunConfig``, with ``--set`` overrides.

A run file has up to six tables; every key is optional but ``data.source`` and
``model.hidden``::

    [data]       source = "digits"   validation = 0.0   test = 0.2   seed = 0   standardize = true
                 max_bytes = 0 (funcbp.data's default limit on what a file may hold)
                 sample_weight = "" (off) or the .npz array / CSV column (name or index)
                 holding one weight per sample: every split's loss is a weighted mean
    [model]      hidden = [128, 128]   (+ any keyword of funcbp.MLP but sizes, with MLP's
                 defaults: activation = "relu" or one name per hidden layer ["tanh", "relu"],
                 output_activation, cost = "mse", l2, initializer, compute_dtype = "bfloat16"
                 or "float16" for mixed precision, "" or absent: the parameters' dtype,
                 dropout = 0.2 or one rate per hidden layer; an activation (or list entry),
                 output_activation or cost may be a user piece, "module:attribute")
    [optimizer]  name = "adam"   learning_rate = 1e-3   (+ any option of funcbp.optim.make;
                 none for the full-batch solvers "lbfgs", "levenberg_marquardt", "newton_cg")
    [train]      epochs = 10   batch_size = 64 (or "full")   seed = 0
                 engine = "backprop", "autodiff" or a learning rule of funcbp.rules.NAMES
                 patience = 0 (off)   dtype = "float32"
                 checkpoint_every = 5 (epochs)   keep_checkpoints = 3 (plus the best)
                 diagnostics_every = 0 (off; steps between per-layer statistics)
                 class_weight = "" (off), "balanced" (fitted on the training split) or
                 {"0" = 2.0, ...} (unlisted classes 1): the training split's weights
    [rule]       the learning rule's options (funcbp.rules.options_of(engine)), such as
                 decay = 0.01 for kolen_pollack, steps = 20 for predictive_coding
    [distributed]  coordinator = "" (or process 0's "host:port")   num_processes = 0 (one)
                 detect = false (true: what JAX detects, SLURM, Open MPI, ...)
                 timeout = 300 (seconds to wait for every process to connect)

The network's input and output widths come from the data; ``MLP`` validates the
rest of ``[model]``, the optimizer's names come from ``funcbp.optim``, the
engines from ``funcbp.train.ENGINES`` and ``funcbp.rules`` (which validates
``[rule]``) and the dtypes from
``funcbp.mlp.PARAM_DTYPES``. An unknown key, a wrong type or an invalid value
raises ``ConfigError`` with one line naming the key and what was expected,
before anything is compiled or written; every integer is checked against its
range as it is read (``funcbp.cli._bounds``: counts fit int32).
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from funcbp import optim, process_data, rules
from funcbp import train as _train
from funcbp.cli import _bounds, _pieces, _toml, _weights
from funcbp.errors import ConfigError
from funcbp.mlp import MLP, PARAM_DTYPES


@dataclasses.dataclass(frozen=True)
class DataConfig:
    source: str  # built-in name (funcbp.data.BUILTINS), "teacher", or a path
    validation: float = 0.0
    test: float = 0.2
    seed: int = 0
    standardize: bool = True
    teacher_sizes: tuple[int, ...] = (64, 256, 10)  # for source = "teacher"
    teacher_samples: int = 10_000
    teacher_classification: bool = True
    max_bytes: int = 0  # funcbp.data.load's limit on a file's data; 0: its default
    sample_weight: str | int = ""  # the .npz array or CSV column of the weights; "": none


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The ``[model]`` table: hidden widths, and ``MLP``'s keywords as the run file sets them.

    ``MLP`` has the defaults and validates the values; a list of activations is
    kept as a tuple, and ``compute_dtype = ""`` as no key (``MLP``'s ``None``).
    """

    hidden: tuple[int, ...]
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def build(self, n_in: int, n_out: int) -> MLP:
        """The network ``(n_in, *hidden, n_out)`` for data of those widths."""
        return build_mlp((n_in, *self.hidden, n_out), self.options)

    def cost(self) -> str:
        """The networks' cost: the file's, else ``MLP``'s default."""
        return self.build(*_STAND_IN_WIDTHS).cost


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    name: str = "adam"
    learning_rate: float | None = None  # a first-order optimizer's default: 1e-3
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def rate(self) -> float | None:
        """The learning rate the optimizer gets: a first-order one's default is 1e-3."""
        if self.learning_rate is None and self.name in optim.FIRST_ORDER_NAMES:
            return optim.DEFAULT_LEARNING_RATE
        return self.learning_rate

    def make(self):
        """``funcbp.optim.make``'s optimizer (raises its ``ValueError``)."""
        return optim.make(self.name, self.rate, **self.options)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int | str = 64  # or "full"
    engine: str = "backprop"
    seed: int = 0
    patience: int = 0  # 0: no early stopping
    dtype: str = "float32"
    checkpoint_every: int = 5  # epochs (rounded up to the next block of epochs)
    keep_checkpoints: int = 3  # the last N are kept, and the best
    diagnostics_every: int = 0  # steps between per-layer statistics; 0: off
    class_weight: str | dict[str, float] = ""  # "balanced" or {"<class>": weight}; "": off


@dataclasses.dataclass(frozen=True)
class RuleConfig:
    """The ``[rule]`` table: the options of the learning rule ``train.engine`` names."""

    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class DistributedConfig:
    """``jax.distributed`` for the run; each process adds its own ``--process-id``."""

    coordinator: str = ""  # process 0's "host:port"; "": one process, unless detect
    num_processes: int = 0  # with a coordinator
    detect: bool = False  # start with what JAX detects (SLURM, Open MPI, Kubernetes, Cloud TPU)
    timeout: int = 300  # seconds to wait for every process to connect


@dataclasses.dataclass(frozen=True)
class RunConfig:
    data: DataConfig
    model: ModelConfig
    optimizer: OptimizerConfig
    train: TrainConfig
    rule: RuleConfig = RuleConfig()
    distributed: DistributedConfig = DistributedConfig()

    def engine(self) -> _train.Engine:
        """What ``fit`` trains by: ``train.engine``, a learning rule made with ``[rule]``."""
        if self.train.engine in _train.ENGINES:
            return self.train.engine
        return rules.make(self.train.engine, **self.rule.options)

    def to_dict(self) -> dict[str, Any]:
        """Plain TOML/JSON-ready values, ``model.options`` and ``optimizer.options`` flattened
        into their tables."""
        out = dataclasses.asdict(self)
        model_options = out["model"].pop("options")
        out["model"] = {**out["model"], **model_options}
        out["optimizer"] = {**out["optimizer"].pop("options"), **out["optimizer"]}
        out["rule"] = dict(out["rule"].pop("options"))
        return {
            section: {
                k: list(v) if isinstance(v, tuple) else v for k, v in table.items() if v is not None
            }  # TOML has no null: an unset key is left out
            for section, table in out.items()
        }


# The run file's tables, in order.
SECTIONS = {"data": DataConfig, "model": ModelConfig, "optimizer": OptimizerConfig,
             "train": TrainConfig, "rule": RuleConfig,
             "distributed": DistributedConfig}  # fmt: skip


def load(path: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
    """Reads a TOML run file, applies ``section.key=value`` overrides, validates."""
    path = Path(path)
    try:
        # utf-8-sig: a byte-order mark (as some editors write) is not TOML, but harmless.
        raw = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read config file {path}: {err}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path} is not valid TOML: {err}") from None
    for override in overrides:
        _apply_override(raw, override)
    return from_dict(raw)


def _apply_override(raw: dict, override: str) -> None:
    key, sep, text = override.partition("=")
    section, dot, name = key.strip().partition(".")
    if not sep or not dot or not name:
        raise ConfigError(f"--set {override!r}: expected section.key=value, e.g. train.epochs=5")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text  # a bare word: a string
    table = raw.setdefault(section, {})
    if not isinstance(table, dict):
        raise ConfigError(f"--set {override!r}: {section} is {table!r}, not a table ([{section}])")
    table[name] = value


def from_dict(raw: Mapping[str, Any]) -> RunConfig:
    """Validates a parsed config (``{"data": {...}, ...}``) into a ``RunConfig``."""
    unknown = set(raw) - set(SECTIONS)
    if unknown:
        raise ConfigError(
            f"unknown section [{sorted(unknown)[0]}]; valid sections: {', '.join(SECTIONS)}"
        )
    tables = {}
    for section, cls in SECTIONS.items():
        table = raw.get(section, {})
        if not isinstance(table, Mapping):
            raise ConfigError(f"{section} must be a table ([{section}]), got {table!r}")
        tables[section] = _build(section, cls, dict(table))
    config = RunConfig(**tables)
    _check_values(config)
    return config


def _build(section: str, cls: type, table: dict[str, Any]):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    extra: tuple[str, ...] = ()
    if cls is OptimizerConfig:  # optim.make validates the rest
        kwargs["options"] = {k: table.pop(k) for k in list(table) if k not in fields}
    if cls is RuleConfig:  # rules.make validates them
        kwargs["options"] = {k: table.pop(k) for k in list(table)}
    if cls is ModelConfig:  # MLP's keywords; MLP validates them
        extra = _MLP_KEYS
        kwargs["options"] = _mlp_options({k: table.pop(k) for k in list(table) if k in extra})
    for key, value in table.items():
        if key not in fields or key == "options":
            valid = ", ".join([k for k in fields if k != "options"] + list(extra))
            raise ConfigError(f"unknown key {section}.{key}; valid keys: {valid}")
        kwargs[key] = _coerce(f"{section}.{key}", value, hints[key])
    for name, field in fields.items():
        no_default = field.default is dataclasses.MISSING
        if no_default and field.default_factory is dataclasses.MISSING and name not in kwargs:
            raise ConfigError(f"missing key {section}.{name}")
    return cls(**kwargs)


# Input and output widths that every cost takes, for a network before the data are read.
_STAND_IN_WIDTHS = (2, 2)

# The [model] keys besides hidden: MLP's own fields (the widths come from hidden and the data).
_MLP_KEYS = tuple(f.name for f in dataclasses.fields(MLP) if f.name != "sizes")


def _mlp_options(given: Mapping[str, Any]) -> dict[str, Any]:
    """``[model]``'s ``MLP`` keywords as ``MLP`` takes them (TOML has lists, and no ``None``)."""
    options = {key: tuple(v) if isinstance(v, list) else v for key, v in given.items()}
    if options.get("compute_dtype") == "":
        del options["compute_dtype"]
    return options


def _model_key(key: str) -> str:
    return "model.hidden" if key == "sizes" else f"model.{key}"


def build_mlp(
    sizes: Sequence[int], options: Mapping[str, Any], name: Callable[[str], str] = _model_key
) -> MLP:
    """``MLP(sizes, **options)``; what ``MLP`` refuses is a ``ConfigError`` naming ``name(key)``.

    Each option is tried alone first, so that the message names the key at fault. A
    ``"module:attribute"`` activation or cost is imported first (``_pieces``).
    """
    options = _pieces.resolve_options(options, name)
    probes = {"sizes": {}, **{key: {key: value} for key, value in options.items()}}
    for key, kwargs in probes.items():
        try:
            MLP(sizes, **kwargs)
        except ValueError as err:
            raise ConfigError(f"{name(key)}: {err}") from None
    return MLP(sizes, **options)


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """``value`` as ``hint`` (str, int, float, bool, tuple[int, ...] or a union of them);
    an integer (or a list's) must be in the key's range (``_bounds.KEY_RANGES``)."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for option in options:
        if option is bool and isinstance(value, bool):
            return value
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            _bounds.check_key(key, [value], str(value))
            return value
        if option is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if option is str and isinstance(value, str):
            return value
        if typing.get_origin(option) is dict and isinstance(value, Mapping):
            return _weights.check_table(key, value)
        is_list = typing.get_origin(option) is tuple and isinstance(value, list)
        if is_list and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            _bounds.check_key(key, value, str(value))
            return tuple(value)
    names = " or ".join(_TYPE_NAMES.get(o, str(o)) for o in options)
    raise ConfigError(f"{key}: expected {names}, got {value!r} ({type(value).__name__})")


_TYPE_NAMES = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
    tuple[int, ...]: "a list of integers",
    dict[str, float]: 'a table {"0" = 2.0, ...}',
}


def _check_values(config: RunConfig) -> None:
    d, m, o, t = config.data, config.model, config.optimizer, config.train
    _check_distributed(config.distributed)
    for key, value in (("data.validation", d.validation), ("data.test", d.test)):
        if not 0 <= value < 1:
            raise ConfigError(f"{key}: expected a fraction in [0, 1), got {value}")
    if d.validation + d.test >= 1:
        raise ConfigError(
            f"data.validation + data.test = {d.validation + d.test:g} leaves no training data"
        )
    if not d.source.strip():
        raise ConfigError(
            'data.source: expected a built-in name (e.g. "digits"), "teacher" or a path, got ""'
        )
    if len(d.teacher_sizes) < 2:
        raise ConfigError(f"data.teacher_sizes: expected 2+ widths, got {list(d.teacher_sizes)}")
    m.build(*_STAND_IN_WIDTHS)  # MLP validates now; the data decide the widths later
    try:
        o.make()
    except ValueError as err:
        raise ConfigError(f"optimizer: {err}") from None
    if isinstance(t.batch_size, str) and t.batch_size != "full":
        raise ConfigError(f'train.batch_size: expected an integer or "full", got {t.batch_size!r}')
    _one_of("train.engine", t.engine, (*_train.ENGINES, *rules.NAMES))
    _check_rule(t.engine, config.rule)
    if t.patience and not d.validation:
        raise ConfigError(
            "train.patience: early stopping needs a validation split (data.validation > 0)"
        )
    _one_of("train.dtype", t.dtype, PARAM_DTYPES)
    per_process = process_data.is_per_process(d.source)
    _weights.check_config(d.source, d.sample_weight, t.class_weight, per_process)


def _check_rule(engine: str, rule: RuleConfig) -> None:
    if rule.options and engine in _train.ENGINES:
        first = next(iter(rule.options))
        raise ConfigError(
            f"rule.{first}: [rule] holds a learning rule's options, and train.engine = "
            f"{engine!r} is none; set train.engine to one of {', '.join(rules.NAMES)}"
        )
    if engine in _train.ENGINES:
        return
    try:
        rules.make(engine, **rule.options)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"rule: {err}") from None


def _check_distributed(c: DistributedConfig) -> None:
    host, colon, port = c.coordinator.rpartition(":")
    if c.coordinator and not (colon and host and port.isdigit()):
        raise ConfigError(
            f"distributed.coordinator: expected process 0's address as host:port, "
            f"got {c.coordinator!r}"
        )
    if bool(c.coordinator) != bool(c.num_processes):
        raise ConfigError(
            "distributed.coordinator and distributed.num_processes go together: "
            "give both, or neither (detect = true finds them on a cluster)"
        )


def _one_of(key: str, value: str, valid: Sequence[str]) -> None:
    if value not in valid:
        shown = ", ".join(v or '""' for v in valid)
        raise ConfigError(f"{key}: unknown value {value!r}; valid: {shown}")


def dumps(config: RunConfig) -> str:
    """The config as TOML text (what ``load`` reads back to an equal config)."""
    return _toml.text(config.to_dict())
