"""The digits CNN of ``cnn.py`` written with ``gf.layers``, TF1's layer functions.

Each 8x8 grey image passes through ``gf.layers.conv2d`` (16 filters, 3x3, ReLU),
2x2 max pooling, a 32-filter convolution with batch normalization (its
moving averages updated through the UPDATE_OPS collection, wired to the train
op as TF1 programs do), 2x2 max pooling, dropout while training, and a dense
layer to 10 logits. The variables get TF1's names (``conv1/kernel``,
``batch_normalization/moving_mean``, ``logits/bias``). Test accuracy on the
held-out quarter of the data is about 98%.

Run it with ``python3 tools/dev.py example cnn_layers`` (``--steps 20`` for a quick look).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import graphflow as gf

NUM_CLASSES = 10


def build_graph(learning_rate: float, decay_steps: int, seed: int):
    """Builds the model, loss, train op and accuracy; returns the tensors the script runs."""
    gf.set_random_seed(seed)
    x = gf.placeholder(gf.float32, [None, 8, 8, 1], name="images")
    y = gf.placeholder(gf.int64, [None], name="labels")
    training = gf.placeholder_with_default(False, [], name="training")

    h = gf.layers.conv2d(x, 16, 3, padding="same", activation=gf.nn.relu,
                         kernel_initializer=gf.initializers.he_normal(), name="conv1")
    h = gf.layers.max_pooling2d(h, 2, 2, padding="same")                  # [N, 4, 4, 16]
    h = gf.layers.conv2d(h, 32, 3, padding="same", use_bias=False,
                         kernel_initializer=gf.initializers.he_normal(), name="conv2")
    h = gf.nn.relu(gf.layers.batch_normalization(h, training=training))
    h = gf.layers.max_pooling2d(h, 2, 2, padding="same")                  # [N, 2, 2, 32]
    h = gf.layers.flatten(h)
    h = gf.layers.dropout(h, rate=0.1, training=training)
    logits = gf.layers.dense(h, NUM_CLASSES, name="logits")

    with gf.name_scope("loss"):
        loss = gf.reduce_mean(gf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=y, logits=logits))
    global_step = gf.train.get_or_create_global_step()
    lr = gf.train.cosine_decay(learning_rate, global_step, decay_steps, alpha=0.01)
    # Batch norm's moving averages move with each training step.
    with gf.control_dependencies(gf.get_collection(gf.GraphKeys.UPDATE_OPS)):
        train_op = gf.train.AdamOptimizer(lr).minimize(loss, global_step=global_step)
    with gf.name_scope("accuracy"):
        correct = gf.equal(gf.argmax(logits, axis=1), y)
        accuracy = gf.reduce_mean(gf.cast(correct, gf.float32))
    return x, y, training, loss, train_op, accuracy


def batches(num: int, batch_size: int, rng: np.random.Generator):
    """Endless minibatch index arrays, reshuffled every epoch."""
    while True:
        order = rng.permutation(num)
        for i in range(0, num - batch_size + 1, batch_size):
            yield order[i:i + batch_size]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500, help="training steps (default 1500)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., None]  # [N, 8, 8, 1]
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target.astype(np.int64), test_size=0.25, random_state=0)

    start = time.perf_counter()
    x, y, training, loss, train_op, accuracy = build_graph(args.learning_rate, args.steps,
                                                           args.seed)
    graph = gf.get_default_graph()
    rng = np.random.default_rng(args.seed)
    with gf.Session() as sess:
        sess.run(gf.global_variables_initializer())
        for step, idx in zip(range(args.steps), batches(len(x_train), args.batch_size, rng)):
            _, batch_loss = sess.run([train_op, loss], feed_dict={
                x: x_train[idx], y: y_train[idx], training: True})
            if step % 250 == 0 or step == args.steps - 1:
                print(f"step {step:5d}  loss {batch_loss:.4f}")
        train_time = time.perf_counter() - start
        test_acc = sess.run(accuracy, feed_dict={x: x_test, y: y_test})

    names = ", ".join(v.op.name for v in gf.global_variables()[:4])
    print(f"graph: {len(graph.get_operations())} ops; variables {names}, ...")
    print(f"trained {args.steps} steps of batch {args.batch_size} in {train_time:.1f} s")
    print(f"test accuracy: {test_acc:.4f}")


if __name__ == "__main__":
    main()
