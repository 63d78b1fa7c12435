"""A small convolutional network on scikit-learn's handwritten digits, trained with Adam.

Each 8x8 grey image passes through a 3x3 convolution with 16 filters (ReLU),
2x2 max pooling, a 3x3 convolution with 32 filters (ReLU), 2x2 max pooling, and
a dense layer to 10 logits. Test accuracy on the held-out quarter of the data
is about 98%.

Run it with ``python3 tools/dev.py example cnn`` (``--steps 20`` for a quick look).
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


def conv_relu_pool(x: gf.Tensor, filters: int, name: str, seed: int) -> gf.Tensor:
    """3x3 convolution (SAME padding) + bias + ReLU, then 2x2 max pooling."""
    channels = int(x.shape[-1])
    fan_in = 9 * channels
    with gf.name_scope(name):
        k = gf.Variable(gf.truncated_normal([3, 3, channels, filters],
                                            stddev=np.sqrt(2.0 / fan_in), seed=seed),
                        name="kernel")
        b = gf.Variable(gf.zeros([filters]), name="bias")
        y = gf.nn.relu(gf.nn.bias_add(gf.nn.conv2d(x, k, strides=[1, 1, 1, 1],
                                                   padding="SAME"), b))
        return gf.nn.max_pool(y, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="SAME")


def build_graph(learning_rate: float, decay_steps: int, seed: int):
    """Builds the model, loss, train op and accuracy; returns the tensors the script runs."""
    gf.set_random_seed(seed)
    x = gf.placeholder(gf.float32, [None, 8, 8, 1], name="images")
    y = gf.placeholder(gf.int64, [None], name="labels")
    h = conv_relu_pool(x, 16, "conv1", seed)        # [N, 4, 4, 16]
    h = conv_relu_pool(h, 32, "conv2", seed + 1)    # [N, 2, 2, 32]
    flat = gf.reshape(h, [-1, 2 * 2 * 32])
    with gf.name_scope("logits"):
        w = gf.Variable(gf.truncated_normal([128, NUM_CLASSES], stddev=np.sqrt(1.0 / 128),
                                            seed=seed + 2), name="weights")
        b = gf.Variable(gf.zeros([NUM_CLASSES]), name="biases")
        logits = gf.matmul(flat, w) + b

    with gf.name_scope("loss"):
        loss = gf.reduce_mean(gf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=y, logits=logits))
    global_step = gf.train.get_or_create_global_step()
    lr = gf.train.cosine_decay(learning_rate, global_step, decay_steps, alpha=0.01)
    train_op = gf.train.AdamOptimizer(lr).minimize(loss, global_step=global_step)
    with gf.name_scope("accuracy"):
        correct = gf.equal(gf.argmax(logits, axis=1), y)
        accuracy = gf.reduce_mean(gf.cast(correct, gf.float32))
    return x, y, loss, train_op, accuracy


def batches(num: int, batch_size: int, rng: np.random.Generator):
    """Endless minibatch index arrays, reshuffled every epoch."""
    while True:
        order = rng.permutation(num)
        for i in range(0, num - batch_size + 1, batch_size):
            yield order[i:i + batch_size]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="training steps (default 2000)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., None]  # [N, 8, 8, 1]
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target.astype(np.int64), test_size=0.25, random_state=0)

    start = time.perf_counter()
    x, y, loss, train_op, accuracy = build_graph(args.learning_rate, args.steps, args.seed)
    graph = gf.get_default_graph()
    rng = np.random.default_rng(args.seed)
    with gf.Session() as sess:
        sess.run(gf.global_variables_initializer())
        bar = tqdm(range(args.steps), desc="cnn", unit="step")
        for step, idx in zip(bar, batches(len(x_train), args.batch_size, rng)):
            _, batch_loss = sess.run([train_op, loss], feed_dict={x: x_train[idx],
                                                                  y: y_train[idx]})
            if step % 20 == 0 or step == args.steps - 1:
                bar.set_postfix(loss=f"{batch_loss:.4f}")
        train_time = time.perf_counter() - start
        test_acc = sess.run(accuracy, feed_dict={x: x_test, y: y_test})

    print(f"graph: {len(graph.get_operations())} ops; {len(x_train)} training and "
          f"{len(x_test)} test images")
    print(f"trained {args.steps} steps of batch {args.batch_size} in {train_time:.1f} s")
    print(f"test accuracy: {test_acc:.4f}")


if __name__ == "__main__":
    main()
