"""Linear regression on scikit-learn's diabetes dataset, by gradient descent.

Ten standardised clinical measurements of 442 patients predict a measure of
disease progression one year later. The model ``y = x w + b`` is fitted by
full-batch gradient descent on the mean squared error; its test error is
compared with NumPy's closed-form least-squares solution, which gradient
descent should match. Test R^2 on the held-out quarter of the data is about 0.36.

Run it with ``python3 tools/dev.py example linear_regression`` (``--steps 50`` for a
quick look).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split
from tqdm import tqdm

import graphflow as gf


def build_graph(num_features: int, learning_rate: float):
    """Builds the model, loss and train op; returns the tensors the script runs."""
    x = gf.placeholder(gf.float32, [None, num_features], name="features")
    y = gf.placeholder(gf.float32, [None], name="targets")
    w = gf.Variable(gf.zeros([num_features, 1]), name="weights")
    b = gf.Variable(0.0, name="bias")
    prediction = gf.reshape(gf.matmul(x, w), [-1]) + b
    mse = gf.reduce_mean(gf.square(prediction - y))
    train_op = gf.train.GradientDescentOptimizer(learning_rate).minimize(mse)
    return x, y, prediction, mse, train_op


def r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """The coefficient of determination: 1 - residual variance / variance of y."""
    return float(1 - np.sum((y_true - y_pred) ** 2) / np.sum((y_true - y_true.mean()) ** 2))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="training steps (default 1000)")
    parser.add_argument("--learning-rate", type=float, default=0.1)
    args = parser.parse_args(argv)

    data = load_diabetes()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.25, random_state=0)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    x_train = ((x_train - mean) / std).astype(np.float32)
    x_test = ((x_test - mean) / std).astype(np.float32)
    y_train, y_test = y_train.astype(np.float32), y_test.astype(np.float32)

    start = time.perf_counter()
    x, y, prediction, mse, train_op = build_graph(x_train.shape[1], args.learning_rate)
    train_feed = {x: x_train, y: y_train}
    with gf.Session() as sess:
        sess.run(gf.global_variables_initializer())
        bar = tqdm(range(args.steps), desc="linear regression", unit="step")
        for step in bar:
            _, train_mse = sess.run([train_op, mse], feed_dict=train_feed)
            if step % 100 == 0 or step == args.steps - 1:
                bar.set_postfix(mse=f"{train_mse:.1f}")
        train_time = time.perf_counter() - start
        test_mse, test_pred = sess.run([mse, prediction], feed_dict={x: x_test, y: y_test})

    # The exact least-squares fit, for comparison.
    design = np.hstack([x_train, np.ones((len(x_train), 1), np.float32)]).astype(np.float64)
    coef = np.linalg.lstsq(design, y_train.astype(np.float64), rcond=None)[0]
    exact = x_test.astype(np.float64) @ coef[:-1] + coef[-1]

    print(f"trained {args.steps} full-batch steps on {len(x_train)} patients in "
          f"{train_time:.1f} s")
    print(f"test MSE: {test_mse:.1f}  R^2: {r2(y_test, test_pred):.3f}")
    print(f"closed-form least squares: test MSE: {np.mean((exact - y_test) ** 2):.1f}  "
          f"R^2: {r2(y_test, exact):.3f}")


if __name__ == "__main__":
    main()
