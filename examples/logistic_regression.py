"""Multinomial logistic regression on scikit-learn's handwritten digits.

A single linear layer maps the 64 pixels of each 8x8 image to 10 logits; the
loss is the mean softmax cross entropy, minimised by plain minibatch gradient
descent with an exponentially decaying learning rate. Test accuracy on the
held-out quarter of the data is about 96%.

Run it with ``python3 tools/dev.py example logistic_regression`` (``--steps 50``
for a quick look).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from tqdm import tqdm

import graphflow as gf

NUM_CLASSES = 10


def build_graph(num_features: int, learning_rate: float, steps: int):
    """Builds the model, loss, train op and accuracy; returns the tensors the script runs."""
    x = gf.placeholder(gf.float32, [None, num_features], name="images")
    y = gf.placeholder(gf.int64, [None], name="labels")
    w = gf.Variable(gf.zeros([num_features, NUM_CLASSES]), name="weights")
    b = gf.Variable(gf.zeros([NUM_CLASSES]), name="biases")
    logits = gf.matmul(x, w) + b

    loss = gf.reduce_mean(gf.nn.sparse_softmax_cross_entropy_with_logits(labels=y,
                                                                         logits=logits))
    global_step = gf.train.get_or_create_global_step()
    # Halve the learning rate three times over the run, in steps.
    lr = gf.train.exponential_decay(learning_rate, global_step, max(steps // 4, 1), 0.5,
                                    staircase=True)
    train_op = gf.train.GradientDescentOptimizer(lr).minimize(loss, global_step=global_step)
    accuracy = gf.reduce_mean(gf.cast(gf.equal(gf.argmax(logits, axis=1), y), gf.float32))
    return x, y, loss, train_op, accuracy


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="training steps (default 2000)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    digits = load_digits()
    images = (digits.data / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target.astype(np.int64), test_size=0.25, random_state=0)

    start = time.perf_counter()
    x, y, loss, train_op, accuracy = build_graph(images.shape[1], args.learning_rate,
                                                 args.steps)
    rng = np.random.default_rng(args.seed)
    with gf.Session() as sess:
        sess.run(gf.global_variables_initializer())
        bar = tqdm(range(args.steps), desc="logistic regression", unit="step")
        for step in bar:
            idx = rng.choice(len(x_train), args.batch_size, replace=False)
            _, batch_loss = sess.run([train_op, loss], feed_dict={x: x_train[idx],
                                                                  y: y_train[idx]})
            if step % 100 == 0 or step == args.steps - 1:
                bar.set_postfix(loss=f"{batch_loss:.4f}")
        train_time = time.perf_counter() - start
        test_loss, test_acc = sess.run([loss, accuracy], feed_dict={x: x_test, y: y_test})

    print(f"trained {args.steps} steps of batch {args.batch_size} in {train_time:.1f} s")
    print(f"test loss: {test_loss:.4f}")
    print(f"test accuracy: {test_acc:.4f}")


if __name__ == "__main__":
    main()
