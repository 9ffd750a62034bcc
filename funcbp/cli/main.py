"""The ``funcbp`` command line: ``train`` a configured run, ``diagnose`` it, ``compare-rules``
of learning, ``predict``, ``evaluate`` and ``export`` a trained run, ``check`` gradients,
``plot`` a run's history again.

Exit status: 0 success; 1 a gradient check failed, training diverged or
``diagnose`` warns; 130 Ctrl-C (``train`` saves a checkpoint first);
2 a bad command line, config, data, checkpoint or run directory (one line on
standard error naming it: ``funcbp.ConfigError``, ``DataError``,
``CheckpointError``, or an ``OSError`` writing the run directory). Anything else
is a bug in funcbp: Python's traceback, and exit status 1.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from funcbp.cli import _bounds
from funcbp.errors import CheckpointError, ConfigError, DataError

# What the commands report in one line with exit status 2: bad input, by kind.
_BAD_INPUT = (ConfigError, DataError, CheckpointError)


def _parser() -> argparse.ArgumentParser:
    from funcbp import rules
    from funcbp.cli import predictions
    from funcbp.mlp import PARAM_DTYPES

    parser = argparse.ArgumentParser(prog="funcbp", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train the network a TOML run file describes")
    train.add_argument(
        "config",
        type=Path,
        nargs="?",
        help="run file, e.g. configs/digits.toml (optional with --resume)",
    )
    where = train.add_mutually_exclusive_group()
    where.add_argument("--out", type=Path, help="run directory (default: runs/NAME-TIME)")
    where.add_argument("--resume", type=Path, metavar="DIR", help="continue the run in DIR")
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a config key, e.g. --set train.epochs=5 (repeatable)",
    )
    hosts = train.add_argument_group(
        "several processes (jax.distributed; process 0 writes the run directory)"
    )
    hosts.add_argument(
        "--distributed",
        action="store_true",
        help="start jax.distributed with what JAX detects (SLURM, Open MPI, "
        "Kubernetes, Cloud TPU; $JAX_COORDINATOR_ADDRESS)",
    )
    hosts.add_argument("--coordinator", metavar="HOST:PORT", help="process 0's address")
    hosts.add_argument("--num-processes", type=_positive_int, metavar="N")
    hosts.add_argument("--process-id", type=_index, metavar="I")
    hosts.add_argument(
        "--timeout",
        type=_positive_int,
        metavar="SECONDS",
        help="how long to wait for every process to connect (default: distributed.timeout)",
    )

    diagnose = sub.add_parser(
        "diagnose", help="train briefly and show per-layer gradient statistics and warnings"
    )
    diagnose.add_argument("config", type=Path, help="run file, e.g. configs/digits.toml")
    diagnose.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    diagnose.add_argument(
        "--epochs", type=_positive_int, default=3, help="epochs to train (default 3)"
    )
    diagnose.add_argument(
        "--every",
        type=_positive_int,
        help="steps between statistics (default: the config's, or 10)",
    )

    compare = sub.add_parser(
        "compare-rules",
        help="train one network from the same initial weights under each learning rule",
    )
    compare.add_argument("config", type=Path, help="run file, e.g. configs/digits.toml")
    compare.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    compare.add_argument(
        "--rules",
        default="backprop," + ",".join(rules.NAMES),
        help="comma-separated rule names (default: all; backprop is always the reference)",
    )
    compare.add_argument(
        "--every",
        type=_positive_int,
        help="steps between alignment statistics (default: the config's, or 10)",
    )

    predictions.add_parsers(sub)

    check = sub.add_parser("check", help="check backprop against autodiff and finite differences")
    check.add_argument("config", type=Path, nargs="?", help="run file (network and data)")
    check.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    check.add_argument("--sizes", type=_sizes, help="without a config: layer widths, e.g. 4,16,3")
    pieces = 'a name, or a user piece as "module:attribute"'
    check.add_argument("--activation", default="tanh", help=pieces)
    check.add_argument("--output-activation", default="identity", help=pieces)
    check.add_argument("--cost", default="softmax_cross_entropy", help=pieces)
    check.add_argument("--l2", type=float, default=0.0)
    check.add_argument("--batch", type=_positive_int, default=32, help="samples to check on")
    check.add_argument("--dtype", default="float32", choices=PARAM_DTYPES)
    check.add_argument("--mode", default="auto", choices=("auto", "elementwise", "directional"))
    check.add_argument("--hvp", action="store_true", help="also check Hessian-vector products")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.add_argument("--seed", type=_seed, default=0)

    plot = sub.add_parser("plot", help="draw a run's plots again from its metrics.jsonl")
    plot.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run directory")
    return parser


def _flag(allowed: _bounds.Range):
    """An argparse ``type``: an integer in ``allowed`` (``_bounds``, as the run files' keys)."""

    def parse(text: str) -> int:
        try:
            return _bounds.parse_flag(text, allowed)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return parse


_positive_int = _flag(_bounds.COUNT)
_seed = _flag(_bounds.SEED)
_index = _flag(_bounds.OFF_OR_COUNT._replace(expected="an integer >= 0"))


def _sizes(text: str) -> tuple[int, ...]:
    try:
        return tuple(_positive_int(width) for width in text.split(","))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected positive layer widths separated by commas, e.g. 4,16,3, got {text!r}"
        ) from None


def _fail(message: str) -> int:
    print(f"funcbp: error: {message}", file=sys.stderr)
    return 2


def _train(args: argparse.Namespace) -> int:
    from funcbp._jax.compilation_cache import enable_compilation_cache
    from funcbp.cli import _rundir, display, run
    from funcbp.train import TrainingDiverged

    try:
        config = _rundir.run_config(args.config, args.set, args.resume)
    except ConfigError as err:
        return _fail(f"config {args.config}: {err}" if args.config else str(err))
    if args.resume:
        out = args.resume
    else:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = args.out or Path("runs") / f"{args.config.stem}-{stamp}"
    enable_compilation_cache()  # FUNCBP_CACHE_DIR="" turns it off
    try:
        _start_distributed(args, config.distributed)
        summary = run.train(config, out, resume=args.resume is not None)
    except _BAD_INPUT as err:  # bad data, a used or unresumable --out, an unreadable checkpoint
        return _fail(str(err))
    except OSError as err:  # an unwritable --out, a full disk
        return _fail(f"run directory {out}: {err}")
    except TrainingDiverged as err:
        print(f"funcbp: {err}", file=sys.stderr)
        if (out / "summary.json").is_file():  # process 0's record of the run
            good = json.loads((out / "summary.json").read_text())["last_good_checkpoint"]
            print(f"the last good checkpoint is {out / good}" if good else
                  "no checkpoint before it has finite parameters", file=sys.stderr)  # fmt: skip
        return 1
    except run.Interrupted as err:
        print(f"\nfuncbp: {err}\ncontinue with: funcbp train --resume {out}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:  # a second Ctrl-C, or one outside the training loop
        resumable = (out / "config.toml").exists()
        print("\nfuncbp: interrupted" + (f"; continue with: funcbp train --resume {out}"
                                        if resumable else ""), file=sys.stderr)  # fmt: skip
        return 130
    import jax

    if jax.process_index() != 0:  # process 0 reports
        return 0
    print(f"\n{display.summary_table(summary)}\n\nrun directory: {out}")
    for warning in summary["warnings"]:
        print(f"funcbp: warning: {warning}", file=sys.stderr)
    return 0


def _start_distributed(args: argparse.Namespace, configured) -> None:
    """``jax.distributed`` when the flags or the config's ``[distributed]`` ask.

    The flags win over the config; without a coordinator JAX finds one in the
    environment (``JAX_COORDINATOR_ADDRESS``, SLURM, Open MPI, ...).
    """
    from funcbp.cli import _distributed

    coordinator = args.coordinator or configured.coordinator or None
    num_processes = args.num_processes or configured.num_processes or None
    if args.distributed or configured.detect or coordinator or num_processes:
        timeout = args.timeout or configured.timeout
        _distributed.start(coordinator, num_processes, args.process_id, timeout)


def _diagnose(args: argparse.Namespace) -> int:
    import jax
    import jax.numpy as jnp

    from funcbp import diagnostics
    from funcbp._jax.compilation_cache import enable_compilation_cache
    from funcbp.cli import config as _config
    from funcbp.cli import display, run
    from funcbp.train import TrainingDiverged, fit_blocks

    enable_compilation_cache()  # FUNCBP_CACHE_DIR="" turns it off
    try:
        config = _config.load(args.config, args.set)
        every = args.every if args.every is not None else config.train.diagnostics_every or 10
        net, optimizer, splits, _ = run.prepare(config)
        t = config.train
        run.param_dtype(t.dtype)  # float64: 64-bit mode on before fit_blocks
        batch = run.batch_size(t, len(splits.train), args.epochs, "--epochs")
        blocks = fit_blocks(net, optimizer, splits.train, epochs=args.epochs, batch_size=batch,
                            engine=config.engine(), key=jax.random.key(t.seed),
                            dtype=jnp.dtype(t.dtype),
                            diagnostics_every=every, epochs_per_call=args.epochs)  # fmt: skip
    except ConfigError as err:
        return _fail(f"config {args.config}: {err}")
    except _BAD_INPUT as err:
        return _fail(str(err))
    history: dict[str, list] = {}
    diverged = None
    for block in blocks:
        for name, values in block.columns.items():
            history.setdefault(name, []).extend(values)
        diverged = block.diverged
    # The last epoch with sampled steps (epoch 1's first step, at least).
    last = max(i for i, steps in enumerate(history["sampled_steps"]) if steps)
    sampled = {name: values[last] for name, values in history.items()}
    print(f"funcbp diagnose: MLP {net.sizes}, {t.engine} engine, {args.epochs} epochs, "
          f"statistics every {every} steps; epoch {sampled['epoch']}, mean over its sampled "
          "steps:\n")  # fmt: skip
    print(display.diagnostics_table(net.layer_names, net.sizes, sampled))
    found = diagnostics.findings(history, net)
    if diverged:
        found.append(str(TrainingDiverged(*diverged, history)))
    print("\n" + ("\n".join(f"warning: {finding}" for finding in found) or "no warnings"))
    return 1 if found else 0


def _compare_rules(args: argparse.Namespace) -> int:
    from funcbp._jax.compilation_cache import enable_compilation_cache
    from funcbp.cli import compare
    from funcbp.train import TrainingDiverged

    enable_compilation_cache()  # FUNCBP_CACHE_DIR="" turns it off
    try:
        compare.command(args.config, args.set, args.rules, args.every)
    except TrainingDiverged as err:
        print(f"funcbp: {err}", file=sys.stderr)
        return 1
    except compare.BadRules as err:
        return _fail(str(err))
    except ConfigError as err:
        return _fail(f"config {args.config}: {err}")
    except _BAD_INPUT as err:
        return _fail(str(err))
    return 0


def _predictions(args: argparse.Namespace) -> int:
    from funcbp.cli import predictions

    try:
        return predictions.run(args)
    except _BAD_INPUT as err:  # a run without a checkpoint, data that do not fit it
        return _fail(str(err))
    except OSError as err:  # an unwritable --out (--onnx), an unreadable run directory
        if getattr(args, "out", None) is None:
            return _fail(f"{args.run_dir}: {err}")
        return _fail(f"{'--onnx' if args.command == 'export' else '--out'} {args.out}: {err}")


def _check(args: argparse.Namespace) -> int:
    import jax
    import jax.numpy as jnp

    from funcbp.cli import config as _config
    from funcbp.cli import run
    from funcbp.cli._flag_network import flag_network
    from funcbp.gradcheck import check_gradients, check_hvp

    dtype = run.param_dtype(args.dtype)
    key = jax.random.key(args.seed)
    try:
        if args.config is not None:
            prepared = run.prepare(_config.load(args.config, args.set))
            net, part = prepared.net, prepared.splits.train
            x, y = jnp.asarray(part.x[: args.batch]), jnp.asarray(part.y[: args.batch])
        elif args.sizes:
            net, (x, y) = flag_network(args, key)
        else:
            return _fail("check needs a CONFIG file or --sizes")
        params = net.init(key, dtype=dtype)
        x = x.astype(args.dtype)
        if y.ndim == 2:
            y = y.astype(args.dtype)
        reports = [check_gradients(net, params, x, y, mode=args.mode)]
        if args.hvp:
            reports.append(check_hvp(net, params, x, y))
    except ConfigError as err:
        return _fail(f"config {args.config}: {err}" if args.config else str(err))
    except _BAD_INPUT as err:
        return _fail(str(err))
    for report in reports:
        print(json.dumps(report.to_dict(), indent=2) if args.json else f"{report}\n")
    return 0 if all(report.ok for report in reports) else 1


def _plot(args: argparse.Namespace) -> int:
    from funcbp.cli import _rundir, plots, run

    metrics = args.run_dir / "metrics.jsonl"
    try:
        if not metrics.is_file():
            raise ConfigError(f"{args.run_dir} is not a run directory with metrics (no {metrics})")
        records = _rundir.read_records(metrics)
        if not records:
            raise ConfigError(f"{metrics} is empty: the run has no epochs to plot")
        written = plots.plot_history(run.history(records), args.run_dir)
    except _BAD_INPUT as err:
        return _fail(str(err))
    except OSError as err:
        return _fail(f"run directory {args.run_dir}: {err}")
    print("\n".join(str(path) for path in written))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    commands = {"train": _train, "diagnose": _diagnose, "compare-rules": _compare_rules,
                "predict": _predictions, "evaluate": _predictions, "export": _predictions,
                "check": _check,
                "plot": _plot}  # fmt: skip
    return commands[args.command](args)


def run() -> None:
    """Console-script entry point.

    Exits without the interpreter's teardown, where JAX's backend clean-up alone
    costs about 0.3 s; everything a command writes is flushed (and run files
    fsynced) before this point. XLA:CPU's options for funcbp's programs are set
    first, before JAX starts (``funcbp.use_fast_cpu_compile``).
    """
    from funcbp._jax.xla_cpu_flags import use_fast_cpu_compile

    try:
        use_fast_cpu_compile()
    except ValueError as err:  # a malformed FUNCBP_* variable
        sys.exit(_fail(str(err)))
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    run()
