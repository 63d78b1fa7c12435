"""Saving and loading Keras models as data: a JSON description plus a graphflow checkpoint.

``model.save(path)`` writes the directory ``path`` holding

* ``weights.index``, ``weights.data-*``, ``weights.meta``, ``checkpoint``: a
  ``gf.train.Saver`` checkpoint of the model's weights, keyed by variable name
  (``dense/kernel``...), with the meta graph (the whole graph and the saver),
  so ``gf.train.import_meta_graph(path + "/weights.meta")`` and a Session can
  run the model without Keras;
* ``model.json``: the architecture (each layer's class name and config, as
  Keras's JSON), the training config (loss, metrics, optimizer) when it can be
  described, and the checkpoint key of each weight in ``model.weights`` order.
  It is framed with a CRC32C line like graphflow's text files.

Files are data (DESIGN principle 5): loading parses JSON and rebuilds only known
layer, initializer, loss and optimizer classes by name, never running code from
the files; sizes are checked before reading; each file is written atomically,
``model.json`` last, so an interrupted save of a new model leaves no
``model.json`` and an interrupted re-save leaves the previous ``model.json``.
The optimizer's slots are not saved: a loaded model compiles a fresh optimizer.
"""

from __future__ import annotations

import json
import os
import warnings
from typing import Any

from graphflow.framework import errors
from graphflow.io import files
from graphflow.keras import backend, losses, optimizers

FORMAT = "graphflow.keras.model"
FORMAT_VERSION = 1
_JSON = "model.json"
_WEIGHTS = "weights"
_MAX_JSON_BYTES = 64 << 20


def save_model(model: Any, filepath: str, overwrite: bool = True,
               include_optimizer: bool = True) -> None:
    """Saves ``model`` in the directory ``filepath`` (created if missing).

    Args:
      model: a built ``gf.keras`` Model or Sequential.
      filepath: the directory.
      overwrite: replace an existing save; if False and ``filepath`` holds one,
        raise.
      include_optimizer: also save the training config: loss, metrics and the
        optimizer's config (not its slots); without it the model loads uncompiled.

    Raises:
      ValueError: if the model is not built, or something in it cannot be
        described (a custom layer, activation, initializer or constraint).
      FileExistsError: if ``overwrite`` is False and a save is there, or
        ``filepath`` is a file.
      errors.OpError: if a file cannot be written.
    """
    from graphflow.io.saver import Saver

    if not model.built:
        raise ValueError("The model must be built (called on data, or given an input shape) "
                         "before it can be saved")
    path = os.fspath(filepath)
    if os.path.exists(path) and not os.path.isdir(path):
        raise FileExistsError(f"{path} exists and is not a directory")
    if not overwrite and os.path.exists(os.path.join(path, _JSON)):
        raise FileExistsError(f"A model is already saved in {path} (overwrite=False)")
    description = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "graphflow_version": _version(),
        "model_config": {"class_name": type(model).__name__, "config": model.get_config()},
        "training_config": _training_config(model, include_optimizer),
        "weights": [w.op.name for w in model.weights],
        "checkpoint": _WEIGHTS,
    }
    text = json.dumps(description, indent=1, sort_keys=True)
    os.makedirs(path, exist_ok=True)
    weights = model.weights
    if weights:
        saver = Saver(var_list={w.op.name: w for w in weights}, max_to_keep=1)
        saver.save(model.session, os.path.join(path, _WEIGHTS))
    files.atomic_write(os.path.join(path, _JSON), [files.frame_text(text + "\n", "keras model")])


def _version() -> str:
    from graphflow import __version__

    return __version__


def _training_config(model: Any, include_optimizer: bool) -> dict[str, Any] | None:
    # As TF1's Keras: without the optimizer there is no training config (loads uncompiled).
    if not getattr(model, "_compiled", False) or not include_optimizer:
        return None
    loss = losses.serialize(model.loss)
    metric_ids = [m for m in model._metric_ids if isinstance(m, str)]
    if loss is None or len(metric_ids) != len(model._metric_ids):
        warnings.warn("The model's loss or metrics are custom functions: the training "
                      "config is not saved and the loaded model will need compile()",
                      stacklevel=3)
        return None
    opt = optimizers.serialize(model.optimizer)
    if opt is None:
        warnings.warn(f"The optimizer {type(model.optimizer).__name__} cannot be described "
                      "(use gf.keras.optimizers); the loaded model will need compile()",
                      stacklevel=3)
        return None
    return {"loss": loss, "metrics": metric_ids, "optimizer_config": opt}


def _read_description(path: str) -> dict[str, Any]:
    name = os.path.join(path, _JSON)
    try:
        size = os.path.getsize(name)
    except OSError:
        raise errors.NotFoundError(None, None, f"No model saved in {path}: {name} does not "
                                               "exist") from None
    if size > _MAX_JSON_BYTES:
        raise errors.DataLossError(None, None, f"{name}: {size} bytes is too large for a model "
                                               "description")
    data = files.unframe_text(files.read_file(name), name)
    if data.startswith(files.TEXT_MAGIC):
        data = data[data.find(b"\n") + 1:]  # the header line frame_text wrote
    try:
        desc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise errors.DataLossError(None, None, f"{name}: not a valid model description "
                                               f"({e})") from None
    if not isinstance(desc, dict) or desc.get("format") != FORMAT:
        raise errors.DataLossError(None, None, f"{name}: not a graphflow Keras model file")
    if desc.get("format_version") != FORMAT_VERSION:
        raise errors.DataLossError(None, None, f"{name}: format version "
                                               f"{desc.get('format_version')!r} is not "
                                               f"supported (this graphflow reads "
                                               f"{FORMAT_VERSION})")
    if not isinstance(desc.get("weights"), list) or not all(
            isinstance(w, str) for w in desc["weights"]):
        raise errors.DataLossError(None, None, f"{name}: malformed weight list")
    return desc


def load_model(filepath: str, compile: bool = True) -> Any:  # noqa: A002 - Keras's name
    """Rebuilds a model saved by ``model.save`` in the default graph and restores its weights.

    Layers get their saved names; their variables are created fresh (made
    unique if the names are taken in this graph) and filled from the
    checkpoint by position, so predictions equal the saved model's.

    Args:
      filepath: the directory given to ``save``.
      compile: compile the model with the saved loss, metrics and optimizer
        (when they were saved).

    Returns:
      The model, its weights restored in its session.

    Raises:
      errors.NotFoundError: if there is no saved model there.
      errors.DataLossError: for a damaged or foreign file.
      ValueError: for an unknown layer class or malformed architecture.
      errors.InvalidArgumentError: if a saved weight's shape does not fit.
    """
    from graphflow.io.saver import Saver
    from graphflow.keras.models import model_from_config

    path = os.fspath(filepath)
    desc = _read_description(path)
    model = model_from_config(desc.get("model_config"))
    weights = model.weights
    keys = desc["weights"]
    if len(keys) != len(weights):
        raise ValueError(f"The saved model has {len(keys)} weights, the rebuilt one "
                         f"{len(weights)}: the description is inconsistent")
    if weights:
        sess = backend._state(model.graph).session
        if sess is None or getattr(sess, "_closed", False):
            from graphflow.runtime.session import Session

            sess = Session(graph=model.graph)
            backend.set_session(sess)
        checkpoint = desc.get("checkpoint", _WEIGHTS)
        if not isinstance(checkpoint, str) or os.path.basename(checkpoint) != checkpoint:
            raise errors.DataLossError(None, None, f"{path}: malformed checkpoint name")
        Saver(var_list=dict(zip(keys, weights))).restore(sess, os.path.join(path, checkpoint))
    tc = desc.get("training_config")
    if compile and isinstance(tc, dict):
        opt = tc.get("optimizer_config")
        model.compile(optimizer=optimizers.deserialize(opt),
                      loss=losses.deserialize(tc.get("loss")),
                      metrics=list(tc.get("metrics") or []))
    return model


__all__ = ["FORMAT", "FORMAT_VERSION", "load_model", "save_model"]
