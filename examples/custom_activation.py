"""Your own activation, derived by hand, checked, then trained from a run file.

mish(z) = z tanh(softplus(z)) (Misra 2019). With s = softplus(z), t = tanh(s) and
s' = sigmoid(z), the product and chain rules give

    mish'(z) = t + z (1 - t^2) sigmoid(z)

which is written below beside the function, as funcbp's own activations are.
``funcbp.check_activation`` compares it with ``jax.grad`` of the function over a
grid that reaches the tails and the float32/float64 overflow edges; a mutant
that drops the factor ``sigmoid(z)`` is caught. Then a run file names the
activation as ``"custom_activation:MISH"`` (this module, importable from the
run's working directory) and ``funcbp train`` trains digits with it.

    python examples/custom_activation.py [--epochs N]
"""

import argparse
import pathlib
import subprocess
import sys
import tempfile

import jax
import jax.numpy as jnp

import funcbp

HERE = pathlib.Path(__file__).resolve().parent


def mish(z: jax.Array) -> jax.Array:
    return z * jnp.tanh(jax.nn.softplus(z))


def mish_grad(z: jax.Array, a: jax.Array) -> jax.Array:
    t = jnp.tanh(jax.nn.softplus(z))
    return t + z * (1.0 - t) * (1.0 + t) * jax.nn.sigmoid(z)


# He initialisation: mish is a smooth rectifier (slope 0.6 at 0, 1 for large z).
MISH = funcbp.Activation("mish", mish, mish_grad, init="he_normal")

RUN_FILE = """\
[data]
source = "digits"

[model]
hidden = [128, 128]
activation = "custom_activation:MISH"
cost = "softmax_cross_entropy"

[optimizer]
name = "adam"
learning_rate = 1e-3

[train]
epochs = {epochs}
batch_size = 64
seed = 0
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)  # the check runs in float64 and float32

    print(funcbp.check_activation(MISH))

    def without_sigmoid(z, a):  # the mutant: the chain rule's factor s'(z) forgotten
        t = jnp.tanh(jax.nn.softplus(z))
        return t + z * (1.0 - t) * (1.0 + t)

    missing = MISH._replace(name="mish_without_sigmoid", grad=without_sigmoid)
    caught = funcbp.check_activation(missing)
    print(caught)
    print(f"mutant caught: {not caught.ok}")

    with tempfile.TemporaryDirectory() as tmp:
        run_file = pathlib.Path(tmp) / "digits_mish.toml"
        run_file.write_text(RUN_FILE.format(epochs=args.epochs))
        command = [sys.executable, "-m", "funcbp", "train", str(run_file),
                   "--out", str(pathlib.Path(tmp) / "run")]  # fmt: skip
        print("$", " ".join(["funcbp", *command[3:]]), flush=True)
        subprocess.run(command, cwd=HERE, check=True)  # HERE: where custom_activation imports


if __name__ == "__main__":
    main()
