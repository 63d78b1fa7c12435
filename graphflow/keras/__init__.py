"""``gf.keras``: Keras's model-building API on graphflow graphs and Sessions.

``Sequential`` and the functional ``Model(inputs, outputs)`` over Keras layers;
``compile``/``fit``/``evaluate``/``predict``/``summary``/``save``, and
``gf.keras.models.load_model``. Layers create graph ops and variables named as
TF1's Keras names them in graph mode (``dense/kernel:0``); a model's graph and
session are ``model.graph`` and ``model.session``, so it can be rendered with
``gf.viz``, saved with ``gf.train.write_graph`` or run with a Session by hand::

    model = gf.keras.Sequential([
        gf.keras.layers.Dense(16, activation="relu", input_shape=(4,)),
        gf.keras.layers.Dense(3, activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=10, batch_size=32)
"""

from graphflow.keras import (
    activations,
    backend,
    callbacks,
    initializers,
    layers,
    losses,
    metrics,
    models,
    optimizers,
    regularizers,
)
from graphflow.keras.layers import Input
from graphflow.keras.models import Model, Sequential

__all__ = ["Input", "Model", "Sequential", "activations", "backend", "callbacks",
           "initializers", "layers", "losses", "metrics", "models", "optimizers",
           "regularizers"]
