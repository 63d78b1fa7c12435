"""Quick start: a nearest-centroid classifier on scikit-learn's handwritten digits.

Everything between loading the data and printing the result is a graphflow
graph: placeholders feed the images, a variable keeps the class centroids that
one run computes, and a second run classifies the test images with them.

Run it with ``python3 tools/dev.py example quickstart``.
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import graphflow as gf

NUM_CLASSES = 10


def build_graph(num_features: int):
    """Builds the fit and predict ops; returns the tensors the script runs."""
    x = gf.placeholder(gf.float32, [None, num_features], name="images")
    y = gf.placeholder(gf.int64, [None], name="labels")
    centroids = gf.Variable(gf.zeros([NUM_CLASSES, num_features]), name="centroids")

    with gf.name_scope("fit"):
        classes = gf.constant(np.arange(NUM_CLASSES, dtype=np.int64), name="classes")
        onehot = gf.cast(gf.equal(gf.expand_dims(y, 1), classes), gf.float32)
        counts = gf.reduce_sum(onehot, axis=0)
        sums = gf.matmul(onehot, x, transpose_a=True)
        fit = gf.assign(centroids, sums / gf.maximum(gf.expand_dims(counts, 1), 1.0))

    with gf.name_scope("predict"):
        # |x - c|^2 = |x|^2 - 2 x.c + |c|^2, all pairs at once.
        dist = (gf.reduce_sum(gf.square(x), axis=1, keepdims=True)
                - 2.0 * gf.matmul(x, centroids, transpose_b=True)
                + gf.reduce_sum(gf.square(centroids), axis=1))
        predicted = gf.argmin(dist, axis=1)
        accuracy = gf.reduce_mean(gf.cast(gf.equal(predicted, y), gf.float32))
    return x, y, fit, predicted, accuracy


def main() -> None:
    digits = load_digits()
    images = (digits.data / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target.astype(np.int64), test_size=0.25, random_state=0)

    start = time.perf_counter()
    x, y, fit, predicted, accuracy = build_graph(images.shape[1])
    graph = gf.get_default_graph()
    with gf.Session(backend="reference") as sess:
        sess.run(gf.global_variables_initializer())
        sess.run(fit, feed_dict={x: x_train, y: y_train})
        acc, pred = sess.run([accuracy, predicted], feed_dict={x: x_test, y: y_test})
    elapsed = time.perf_counter() - start

    print(f"graph: {len(graph.get_operations())} ops")
    print(f"train images: {len(x_train)}, test images: {len(x_test)}")
    print(f"first test predictions: {pred[:10].tolist()} (true: {y_test[:10].tolist()})")
    print(f"nearest-centroid test accuracy: {acc:.3f}  ({elapsed * 1000:.0f} ms)")
    if acc < 0.85:
        raise SystemExit(f"accuracy {acc:.3f} is below the expected 0.85")


if __name__ == "__main__":
    main()
