"""Vanishing gradients in a 10-layer sigmoid network, and the ReLU + He fix, on digits.

Two 10-layer MLPs (nine hidden layers of 32) train on digits with SGD, the
per-layer statistics of ``funcbp.diagnostics`` switched on (every 10 steps):

  sigmoid, Glorot init   each layer multiplies the backpropagated signal by
                         sigmoid' <= 0.25: the first layer's weight gradient is
                         about 1e-5 of the last one's, and it barely learns
  ReLU, He init          the gradient norm stays within one order of magnitude
                         across the layers, and the network learns

``fit`` warns (``funcbp.diagnostics.DiagnosticWarning``) about the first; the
script prints both per-layer profiles and draws them to a PNG.

    python examples/vanishing_gradients.py [--epochs 10] [--out docs/vanishing_gradients.png]
"""

import argparse
import warnings

import jax
import numpy as np

import funcbp

NETWORKS = {
    "sigmoid, Glorot init": dict(activation="sigmoid", initializer="glorot_normal"),
    "ReLU, He init": dict(activation="relu", initializer="he_normal"),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", default="docs/vanishing_gradients.png", help="PNG to write")
    args = parser.parse_args(argv)

    parts, _ = funcbp.data.standardize(
        funcbp.data.split(funcbp.data.load("digits"), validation=0.0, test=0.2, seed=0)
    )
    profiles = {}
    for name, kind in NETWORKS.items():
        net = funcbp.MLP((64, *[32] * 9, 10), cost="softmax_cross_entropy", **kind)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", funcbp.diagnostics.DiagnosticWarning)
            _, history = funcbp.fit(
                net, funcbp.optim.make("sgd", 0.05), parts.train, epochs=args.epochs,
                batch_size=32, eval={"test": parts.test}, key=jax.random.key(0),
                diagnostics_every=10,
            )  # fmt: skip
        first = np.array(history["grad_norm"][0])
        profiles[name] = (first, np.array(history["grad_norm"][-1]))
        print(f"{name}: test accuracy {history['test_accuracy'][-1]:.1%}")
        print("  weight-gradient norm by layer, epoch 1: " + " ".join(f"{g:.1e}" for g in first))
        print(f"  first / last layer: {first[0] / first[-1]:.1e}")
        for warning in caught:
            print(f"  warning: {warning.message}")
    _plot(profiles, args.epochs, args.out)
    print(f"plot: {args.out}")


def _plot(profiles, epochs: int, path: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4))
    figure.subplots_adjust(left=0.11, right=0.97, top=0.9, bottom=0.13)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for (name, (first, last)), color in zip(profiles.items(), ("C3", "C0"), strict=True):
        layers = np.arange(1, len(first) + 1)
        axes.plot(layers, first, "o-", color=color, label=f"{name}, epoch 1")
        axes.plot(layers, last, "s--", color=color, alpha=0.6, label=f"{name}, epoch {epochs}")
    axes.set_yscale("log")
    axes.set(xlabel="layer (1 = next to the input)", ylabel="||dLoss/dW||",
             title="Weight-gradient norm per layer, 10-layer MLP on digits")  # fmt: skip
    axes.set_xticks(np.arange(1, 11))
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    figure.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
