"""Training: engines agree, early stopping, determinism, partial batches, bad input."""

import dataclasses
import itertools
import pickle

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import funcbp
from funcbp import data, optim
from funcbp.train import _block

from ._compare import assert_trees_close
from ._xla_compiles import XlaCompiles


@pytest.fixture(scope="module")
def iris():
    parts, _ = data.standardize(data.split(data.load("iris"), validation=0.2, test=0.2, seed=0))
    return parts


NET = funcbp.MLP((4, 16, 3), activation="tanh", cost="softmax_cross_entropy")


def test_engines_give_the_same_trajectory_in_float64(iris):
    histories = {}
    for engine in funcbp.train.ENGINES:
        state, histories[engine] = funcbp.fit(
            NET,
            optim.make("momentum", 0.05),
            iris.train,
            epochs=15,
            batch_size=16,
            engine=engine,
            eval={"validation": iris.validation},
            key=jax.random.key(1),
            dtype=jnp.float64,
        )
        histories[engine]["params"] = state.params
    bp, ad = histories["backprop"], histories["autodiff"]
    # Same data order, same updates; only gradient rounding (~1e-16) differs, and
    # 15 epochs of momentum SGD amplify it by far less than 1e4.
    np.testing.assert_allclose(bp["train_loss"], ad["train_loss"], rtol=1e-12)
    np.testing.assert_allclose(bp["validation_loss"], ad["validation_loss"], rtol=1e-12)
    assert_trees_close(bp["params"], ad["params"], 1e-11, "final params")


def test_float32_engines_agree_within_rounding(iris):
    losses = [
        funcbp.fit(NET, optim.make("adam", 1e-2), iris.train, epochs=10, batch_size=32,
                   engine=engine, key=jax.random.key(0))[1]["train_loss"]
        for engine in funcbp.train.ENGINES
    ]  # fmt: skip
    np.testing.assert_allclose(*losses, rtol=1e-4)


def test_same_seed_gives_identical_history(iris):
    def run(seed):
        return funcbp.fit(NET, optim.make("adam", 1e-2), iris.train, epochs=5, batch_size=20,
                          eval={"test": iris.test}, key=jax.random.key(seed))[1]  # fmt: skip

    assert run(3) == run(3)
    assert run(3)["train_loss"] != run(4)["train_loss"]


def test_training_learns_iris(iris):
    _, history = funcbp.fit(NET, optim.rprop(0.001), iris.train, epochs=60, batch_size=None,
                            eval={"test": iris.test}, key=jax.random.key(0))  # fmt: skip
    assert history["train_loss"][-1] < 0.3 * history["train_loss"][0]
    assert history["test_accuracy"][-1] >= 0.9
    assert history["epoch"] == list(range(1, 61))


def test_partial_last_batch_is_skipped_each_epoch():
    x = np.arange(10, dtype=np.float32)[:, None]
    net = funcbp.MLP((1, 1), cost="mse")
    state, _ = funcbp.fit(net, optax.sgd(0.0), (x, x), epochs=3, batch_size=4,
                                key=jax.random.key(0))  # fmt: skip
    assert int(state.step) == 3 * (10 // 4)


def test_early_stopping_restores_the_best_parameters(iris):
    # A learning rate this high makes the validation loss bounce: patience triggers.
    state, history = funcbp.fit(
        NET, optim.make("sgd", 3.0), iris.train, epochs=200, batch_size=8,
        eval={"validation": iris.validation}, key=jax.random.key(0), patience=3,
    )  # fmt: skip
    best = history["best_epoch"]
    assert len(history["epoch"]) == best + 3 < 200
    assert min(history["validation_loss"]) == history["validation_loss"][best - 1]
    restored = funcbp.evaluate(NET, state.params, jnp.asarray(iris.validation.x),
                               jnp.asarray(iris.validation.y))["loss"]  # fmt: skip
    np.testing.assert_allclose(restored, history["validation_loss"][best - 1], rtol=1e-6)


def test_early_stopping_in_float64_sees_improvements_float32_cannot(iris):
    # SGD at lr 1e-9 lowers the validation loss by ~1e-9 an epoch: below float32's
    # resolution at 0.7 (6e-8), so a float32 comparison would stop after `patience`.
    _, history = funcbp.fit(
        NET, optim.make("sgd", 1e-9), iris.train, epochs=6, batch_size=None,
        eval={"validation": iris.validation}, key=jax.random.key(0), patience=2,
        dtype=jnp.float64,
    )  # fmt: skip
    losses = history["validation_loss"]
    assert all(b < a for a, b in itertools.pairwise(losses)), losses
    assert np.float32(losses[0]) == np.float32(losses[2])  # what float32 could not tell apart
    assert history["epoch"] == [1, 2, 3, 4, 5, 6] and "best_epoch" not in history


def test_blocks_of_epochs_match_one_call_and_report_progress(iris):
    calls = []
    run = dict(epochs=7, batch_size=30, key=jax.random.key(0), eval={"test": iris.test})
    _, whole = funcbp.fit(NET, optim.make("adam", 1e-2), iris.train, **run)
    _, blocks = funcbp.fit(NET, optim.make("adam", 1e-2), iris.train, epochs_per_call=3,
                           callback=lambda h: calls.append(len(h["epoch"])), **run)  # fmt: skip
    assert calls == [3, 6, 7]
    assert whole == blocks


def test_train_step_is_pure_and_compiles_once():
    opt = optim.make("adam", 1e-3)
    state = funcbp.init_state(NET, opt, jax.random.key(0))
    step = jax.jit(chex.assert_max_traces(funcbp.make_train_step(NET, opt), n=1))
    x = jnp.ones((5, 4), jnp.float64)  # wider than the float32 parameters, on purpose
    y = jnp.array([0, 1, 2, 0, 1])
    new, (loss, aux) = step(state, x, y)
    step(new, x + 1, y)
    assert int(new.step) == 1 and loss.shape == () and aux == {}
    chex.assert_trees_all_equal_shapes_and_dtypes(new, state)


def test_a_new_but_identical_optimizer_reuses_the_compiled_programs(iris):
    net = funcbp.MLP((4, 9, 3), activation="relu", cost="softmax_cross_entropy")
    run = {"epochs": 4, "batch_size": 16, "eval": {"validation": iris.validation}}
    compiles = XlaCompiles()
    with compiles:
        first = funcbp.fit(net, optax.adam(1e-3), iris.train, **run)
    assert compiles.count >= 2  # initialisation and the training block, at least
    with compiles:
        again = funcbp.fit(net, optax.adam(1e-3), iris.train, **run)  # a new object
    assert compiles.count == 0
    chex.assert_trees_all_equal(again, first)
    with compiles:
        funcbp.fit(net, optax.adam(2e-3), iris.train, **run)
    assert compiles.count == 1  # the block; Adam's initial state does not depend on the rate


def test_initialisation_traces_under_a_transformation():
    opt = optim.make("adam", 1e-3)
    shapes = jax.eval_shape(lambda k: funcbp.init_state(NET, opt, k), jax.random.key(0))
    chex.assert_trees_all_equal_shapes_and_dtypes(
        shapes, funcbp.init_state(NET, opt, jax.random.key(0))
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, r"batch_size must be an integer in \[1, "),
        ({"batch_size": 10_000}, r"batch_size must be an integer in \[1, "),
        ({"batch_size": True}, r"batch_size must be an integer in \[1, "),
        ({"epochs": 0}, r"epochs must be an integer in \[1, 2\*\*31 - 1\]"),
        ({"epochs": 2.0}, r"epochs must be an integer in \[1, 2\*\*31 - 1\]"),
        ({"engine": "torch"}, r"engine must be one of backprop, autodiff"),
        ({"patience": 2}, r"patience \(early stopping\) needs an eval dataset"),
        ({"eval": (np.ones((3, 4)), np.zeros(3, int))}, r"eval must be a mapping \{name: "),
        ({"key": 0}, r"key must be a jax.random.key\(seed\), got int"),
    ],
)
def test_bad_arguments_are_named(iris, kwargs, message):
    run = {"epochs": 1, "batch_size": 8, **kwargs}
    with pytest.raises(ValueError, match=message):
        funcbp.fit(NET, optim.make("sgd", 0.1), iris.train, **run)


def test_numpy_integers_count_as_integers(iris):
    run = dict(batch_size=np.int64(30), key=jax.random.key(0), eval={"test": iris.test})
    _, numpy_ints = funcbp.fit(NET, optim.make("sgd", 0.1), iris.train, epochs=np.int32(2), **run)
    _, python_ints = funcbp.fit(NET, optim.make("sgd", 0.1), iris.train, epochs=2,
                                **{**run, "batch_size": 30})  # fmt: skip
    assert numpy_ints == python_ints


@pytest.mark.parametrize("batch_size", [0, 91])
def test_make_epoch_refuses_a_batch_size_the_data_cannot_fill(iris, batch_size):
    opt = optim.make("sgd", 0.1)
    epoch = funcbp.make_epoch(NET, opt, batch_size=batch_size)
    state = funcbp.init_state(NET, opt, jax.random.key(0))
    with pytest.raises(ValueError, match=r"batch_size must be an integer in \[1, 90\]"):
        epoch(state, jnp.asarray(iris.train.x), jnp.asarray(iris.train.y))


def test_bad_data_is_refused_before_compiling():
    x = np.ones((6, 4), np.float32)
    x[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        funcbp.fit(NET, optim.make("sgd", 0.1), (x, np.zeros(6, int)), epochs=1, batch_size=2)
    with pytest.raises(ValueError, match=r"label 5 is out of range"):
        funcbp.fit(NET, optim.make("sgd", 0.1), (np.ones((6, 4)), np.full(6, 5)), epochs=1,
                   batch_size=2)  # fmt: skip
    with pytest.raises(ValueError, match="4"):
        funcbp.fit(NET, optim.make("sgd", 0.1), (np.ones((6, 5)), np.zeros(6, int)), epochs=1,
                   batch_size=2)  # fmt: skip


def test_a_non_finite_loss_stops_training_and_names_epoch_and_step(iris):
    # Regression through ReLUs with plain SGD at rate 1: the loss overflows in a few steps.
    net = funcbp.MLP((4, 16, 1), activation="relu", cost="mse")
    x = iris.train.x
    message = r"epoch 1, step \d+ \(the loss\)"
    with pytest.raises(funcbp.train.TrainingDiverged, match=message) as err:
        funcbp.fit(net, optim.make("sgd", 1.0), (x, 3 * x[:, :1]), epochs=50, batch_size=8)
    history = err.value.history
    assert history["epoch"] == [1] and not np.isfinite(history["train_loss"][0])
    assert 2 <= err.value.step <= len(x) // 8  # the first step's loss is the initial one
    assert type(err.value.epoch) is int and type(err.value.step) is int  # JSON-ready
    # It crosses process boundaries whole (a process pool running fits returns it).
    copy = pickle.loads(pickle.dumps(err.value))
    got = (copy.epoch, copy.step, copy.what, str(copy))
    assert got == (err.value.epoch, err.value.step, "loss", str(err.value))
    np.testing.assert_equal(copy.history, history)  # NaN included


def test_fit_blocks_resumed_from_any_block_ends_exactly_like_one_run(iris):
    run = dict(epochs=9, batch_size=16, key=jax.random.key(3), eval={"validation": iris.validation},
               patience=50, epochs_per_call=3)  # fmt: skip
    opt = optim.make("adam", 1e-2)
    whole = list(funcbp.train.fit_blocks(NET, opt, iris.train, **run))
    first = whole[0]  # as if saved after the first block and loaded by a fresh process
    copy = jax.tree.map(np.asarray, (first.state._replace(key=None), first.progress))
    state = copy[0]._replace(key=first.state.key)
    resumed = list(
        funcbp.train.fit_blocks(NET, opt, iris.train, state=state, progress=copy[1], **run)
    )
    assert [b.records for b in resumed] == [b.records for b in whole[1:]]
    chex.assert_trees_all_equal(resumed[-1].state.params, whole[-1].state.params)
    chex.assert_trees_all_equal(resumed[-1].progress.best_params, whole[-1].progress.best_params)


def test_an_update_that_leaves_non_finite_parameters_is_caught_at_its_step(iris):
    # One full-batch step, the block's last: its loss is the finite initial one, its
    # update is infinite, and no later loss would show it. Its parameters do.
    overflow = optax.GradientTransformation(
        lambda params: optax.EmptyState(),
        lambda grads, state, params=None: (jax.tree.map(lambda g: g + jnp.inf, grads), state),
    )
    message = r"epoch 1, step 1 \(the parameters after its update\)"
    with pytest.raises(funcbp.train.TrainingDiverged, match=message) as err:
        funcbp.fit(NET, overflow, iris.train, epochs=1, batch_size=None)
    assert np.isfinite(err.value.history["train_loss"][0])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"epochs": 0}, r"epochs must be an integer in \[1, 2\*\*31 - 1\].*, got 0"),
        ({"epochs": True}, r"epochs must be an integer in \[1, 2\*\*31 - 1\].*, got True"),
        ({"patience": 0}, r"patience must be an integer in \[1, 2\*\*31 - 1\].*, got 0"),
        (
            {"epochs_per_call": 2.5},
            r"epochs_per_call must be an integer in \[1, 2\*\*31 - 1\].*, got 2.5",
        ),
        (
            {"diagnostics_every": -1},
            r"diagnostics_every must be an integer in \[1, 2\*\*31 - 1\].*, got -1",
        ),
        ({"batch_size": 0}, r"batch_size must be an integer in \[1, the training set size\]"),
        ({"batch_size": "8"}, r"batch_size must be an integer in \[1, the training set size\]"),
        (
            {"engine": "torch"},
            r"engine must be one of backprop, autodiff, feedback_alignment, .*, or a "
            r"funcbp.BackwardRule or funcbp.rules.LearningRule, got 'torch'",
        ),
        ({"dtype": "flaot32"}, r"dtype must be a dtype such as jnp.float32, got 'flaot32'"),
        ({"devices": ["cpu"]}, r"devices must be jax.Device objects, .* 'cpu' is not one"),
        ({"devices": "cpu"}, r"devices must be jax.Device objects, .* 'cpu' is not one"),
    ],
)
def test_fit_options_refuse_bad_fields_by_name(fields, message):
    with pytest.raises(ValueError, match=message):
        funcbp.train.FitOptions(**{"epochs": 1, "batch_size": 8, **fields})


def test_fit_options_are_normalised_hashable_values():
    options = funcbp.train.FitOptions(epochs=np.int64(3), batch_size=np.int32(16), dtype="float32",
                                      devices=jax.devices())  # fmt: skip
    same = funcbp.train.FitOptions(3, 16, dtype=jnp.float32, devices=tuple(jax.devices()))
    assert options == same and hash(options) == hash(same)
    assert type(options.epochs) is int and options.devices == tuple(jax.devices())
    assert options.dtype == jnp.dtype("float32")
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.epochs = 4


def test_options_and_keyword_overrides_train_alike(iris):
    run = dict(eval={"test": iris.test}, key=jax.random.key(0))
    opt = optim.make("adam", 1e-2)
    options = funcbp.train.FitOptions(epochs=4, batch_size=30, engine="autodiff")
    _, by_options = funcbp.fit(NET, opt, iris.train, options, **run)
    _, by_keywords = funcbp.fit(NET, opt, iris.train, epochs=4, batch_size=30, engine="autodiff",
                                **run)  # fmt: skip
    longer = dataclasses.replace(options, epochs=9)
    _, overridden = funcbp.fit(NET, opt, iris.train, longer, epochs=4, **run)
    assert by_options == by_keywords == overridden and by_options["epoch"] == [1, 2, 3, 4]
    blocks = list(funcbp.fit_blocks(NET, opt, iris.train, options, epochs_per_call=2, **run))
    assert [b.columns["epoch"] for b in blocks] == [[1, 2], [3, 4]]
    assert [r for b in blocks for r in b.records] == [
        dict(zip(by_options, row, strict=True)) for row in zip(*by_options.values(), strict=True)
    ]


def test_an_unknown_option_is_a_type_error_listing_the_fields(iris):
    message = r"fit\(\) got unexpected keyword argument\(s\) 'epoch'; its options \(FitOptions "
    message += r"fields\) are: epochs, batch_size, "
    with pytest.raises(TypeError, match=message):
        funcbp.fit(NET, optim.make("sgd", 0.1), iris.train, epoch=1, batch_size=8)
    with pytest.raises(TypeError, match=r"fit_blocks.*'shuffle'.*diagnostics_every, devices$"):
        list(funcbp.fit_blocks(NET, optim.make("sgd", 0.1), iris.train, epochs=1, batch_size=8,
                               shuffle=True))  # fmt: skip
    with pytest.raises(TypeError, match=r"fit\(\): options must be a FitOptions, got int"):
        funcbp.fit(NET, optim.make("sgd", 0.1), iris.train, 5, batch_size=8)
    with pytest.raises(TypeError, match=r"batch_size"):  # a required field left out
        funcbp.fit(NET, optim.make("sgd", 0.1), iris.train, epochs=1)


def test_equal_options_share_one_compiled_block():
    opt = optim.make("sgd", 0.1)
    options = funcbp.train.FitOptions(epochs=5, batch_size=8, epochs_per_call=5)
    program = _block.block_program(NET, opt, options, (), None, 90)
    # Fields that do not change the program (a run's length, the fresh state's dtype,
    # the devices, which the mesh stands for) share it; ones that do, do not.
    for same in [
        funcbp.train.FitOptions(epochs=np.int64(5), batch_size=8, epochs_per_call=5),
        dataclasses.replace(options, epochs=20, dtype=jnp.float64, devices=jax.devices()),
    ]:
        assert _block.block_program(NET, opt, same, (), None, 90) is program
    for other in [
        dataclasses.replace(options, batch_size=16),
        dataclasses.replace(options, epochs_per_call=4),
        dataclasses.replace(options, diagnostics_every=3),
    ]:
        assert _block.block_program(NET, opt, other, (), None, 90) is not program
    # Without epochs_per_call, a run's length decides it: about 50 blocks per run.
    default = funcbp.train.FitOptions(epochs=500, batch_size=8)
    assert _block.block_options(default) == dataclasses.replace(options, epochs=10,
                                                                epochs_per_call=10)  # fmt: skip
