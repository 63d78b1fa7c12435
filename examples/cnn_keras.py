"""The digits CNN of ``cnn.py`` as a ``gf.keras`` Sequential model: compile, fit, evaluate.

Conv2D(16, 3x3, ReLU) -> MaxPooling2D -> Conv2D(32, 3x3) -> BatchNormalization
-> ReLU -> MaxPooling2D -> Flatten -> Dropout -> Dense(10, softmax), trained
with Adam on scikit-learn's 8x8 digits. The model is a graphflow graph
underneath: the script prints its summary, trains it with ``fit``, saves it
with ``model.save`` (a JSON description and a graphflow checkpoint) and checks
that the reloaded model predicts the same. Test accuracy on the held-out
quarter of the data is about 98%.

Run it with ``python3 tools/dev.py example cnn_keras`` (``--epochs 1`` for a quick look).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import graphflow as gf

keras = gf.keras
layers = gf.keras.layers


def build_model(learning_rate: float) -> gf.keras.Sequential:
    """The CNN, compiled with Adam and the sparse categorical cross-entropy."""
    model = keras.Sequential([
        layers.Conv2D(16, 3, padding="same", activation="relu",
                      kernel_initializer="he_normal", input_shape=(8, 8, 1)),
        layers.MaxPooling2D(2, padding="same"),                      # [N, 4, 4, 16]
        layers.Conv2D(32, 3, padding="same", use_bias=False,
                      kernel_initializer="he_normal"),
        layers.BatchNormalization(),
        layers.Activation("relu"),
        layers.MaxPooling2D(2, padding="same"),                      # [N, 2, 2, 32]
        layers.Flatten(),
        layers.Dropout(0.1),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40, help="training epochs (default 40)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, default=2, help="fit's verbosity (0, 1, 2)")
    args = parser.parse_args(argv)

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., None]  # [N, 8, 8, 1]
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target.astype(np.int64), test_size=0.25, random_state=0)

    gf.set_random_seed(args.seed)
    np.random.seed(args.seed)  # fit shuffles with NumPy's global generator, as Keras does
    model = build_model(args.learning_rate)
    model.summary()

    start = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
                        verbose=args.verbose,
                        callbacks=[keras.callbacks.EarlyStopping("loss", patience=5)])
    train_time = time.perf_counter() - start
    test_loss, test_acc = model.evaluate(x_test, y_test, verbose=0)

    with tempfile.TemporaryDirectory() as tmp:
        model.save(tmp)
        reloaded = keras.models.load_model(tmp)
        same = np.allclose(reloaded.predict(x_test), model.predict(x_test), atol=1e-6)

    print(f"graph: {len(model.graph.get_operations())} ops; {len(x_train)} training and "
          f"{len(x_test)} test images")
    print(f"trained {len(history.epoch)} epochs of batch {args.batch_size} in "
          f"{train_time:.1f} s; final training loss {history.history['loss'][-1]:.4f}")
    print(f"saved and reloaded: predictions {'identical' if same else 'DIFFER'}")
    print(f"test loss: {test_loss:.4f}")
    print(f"test accuracy: {test_acc:.4f}")


if __name__ == "__main__":
    main()
