"""``gf.keras.callbacks``: hooks into ``Model.fit`` (History, EarlyStopping, ...).

A callback's ``on_*`` methods get the epoch or batch number and a ``logs``
dict: per batch ``{"batch", "size", "loss", <metrics>}``, per epoch the means
over the epoch's samples plus ``val_*`` entries when there is validation data.
Setting ``model.stop_training = True`` ends training after the current batch.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np


class Callback:
    """Base class: override the hooks you need (all do nothing here).

    Attributes:
      model: the model being trained (set by ``fit``).
      params: ``{"epochs", "steps", "samples", "batch_size", "verbose", "metrics"}``.
    """

    def __init__(self) -> None:
        self.model: Any = None
        self.params: dict[str, Any] = {}
        self.validation_data: Any = None

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def set_model(self, model: Any) -> None:
        self.model = model

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Called at the start of an epoch."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Called at the end of an epoch, with the epoch's mean loss and metrics."""

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Called before a training step."""
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Called after a training step, with its loss and metrics."""
        self.on_batch_end(batch, logs)

    def on_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Called before a training step (the TF1 name)."""

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Called after a training step (the TF1 name)."""

    def on_test_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Called before an evaluation batch."""

    def on_test_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Called after an evaluation batch."""

    def on_predict_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Called before a prediction batch."""

    def on_predict_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Called after a prediction batch."""

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        """Called at the start of training."""

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        """Called at the end of training."""

    def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
        """Called at the start of ``evaluate``."""

    def on_test_end(self, logs: dict[str, Any] | None = None) -> None:
        """Called at the end of ``evaluate``."""

    def on_predict_begin(self, logs: dict[str, Any] | None = None) -> None:
        """Called at the start of ``predict``."""

    def on_predict_end(self, logs: dict[str, Any] | None = None) -> None:
        """Called at the end of ``predict``."""


class CallbackList:
    """Calls each hook on every callback in order."""

    def __init__(self, callbacks: list[Callback] | None = None) -> None:
        self.callbacks = list(callbacks or [])

    def set_model(self, model: Any) -> None:
        for c in self.callbacks:
            c.set_model(model)

    def set_params(self, params: dict[str, Any]) -> None:
        for c in self.callbacks:
            c.set_params(params)

    def __getattr__(self, hook: str) -> Callable[..., None]:
        if not hook.startswith("on_"):
            raise AttributeError(hook)

        def call(*args: Any, **kwargs: Any) -> None:
            for c in self.callbacks:
                getattr(c, hook)(*args, **kwargs)

        return call


class History(Callback):
    """Records the epoch logs: ``history.history["loss"]`` is the list of epoch losses.

    ``Model.fit`` always adds one and returns it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.epoch: list[int] = []
        self.history: dict[str, list[float]] = {}

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)


class LambdaCallback(Callback):
    """A callback from functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``.

    Args:
      on_epoch_begin, on_epoch_end: ``fn(epoch, logs)``.
      on_batch_begin, on_batch_end: ``fn(batch, logs)`` (training batches).
      on_train_begin, on_train_end: ``fn(logs)``.
    """

    def __init__(self, on_epoch_begin: Callable | None = None,
                 on_epoch_end: Callable | None = None, on_batch_begin: Callable | None = None,
                 on_batch_end: Callable | None = None, on_train_begin: Callable | None = None,
                 on_train_end: Callable | None = None, **kwargs: Any) -> None:
        super().__init__()
        for name, fn in [("on_epoch_begin", on_epoch_begin), ("on_epoch_end", on_epoch_end),
                         ("on_batch_begin", on_batch_begin), ("on_batch_end", on_batch_end),
                         ("on_train_begin", on_train_begin), ("on_train_end", on_train_end),
                         *kwargs.items()]:
            if fn is not None:
                setattr(self, name, fn)


class EarlyStopping(Callback):
    """Stops training when ``monitor`` has not improved for ``patience`` epochs.

    Args:
      monitor: the epoch log to watch, e.g. ``"val_loss"`` or ``"loss"``.
      min_delta: the least change that counts as an improvement.
      patience: epochs without improvement before stopping.
      verbose: print a line when stopping.
      mode: ``"min"``, ``"max"`` or ``"auto"`` (max for accuracy-like names).
      baseline: a value the monitor must beat.
      restore_best_weights: at the end, put back the weights of the best epoch.

    Attributes:
      stopped_epoch: the epoch training stopped after (0 if it did not stop early).
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0,
                 verbose: int = 0, mode: str = "auto", baseline: float | None = None,
                 restore_best_weights: bool = False) -> None:
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"EarlyStopping mode {mode!r} is unknown")
        self.monitor = monitor
        self.min_delta = abs(min_delta)
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        self._better = np.greater if mode == "max" else np.less
        if mode == "min":
            self.min_delta *= -1
        self.wait = 0
        self.stopped_epoch = 0
        self.best: float = 0.0
        self.best_weights: Any = None

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best_weights = None
        if self.baseline is not None:
            self.best = self.baseline
        else:
            self.best = np.inf if self._better is np.less else -np.inf

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        if current is None:
            print(f"Early stopping conditioned on metric `{self.monitor}` which is not "
                  f"available. Available metrics are: {','.join((logs or {}).keys())}",
                  file=sys.stderr)
            return
        if self._better(current - self.min_delta, self.best):
            self.best = current
            self.wait = 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped_epoch = epoch
                self.model.stop_training = True
                if self.restore_best_weights and self.best_weights is not None:
                    if self.verbose > 0:
                        print("Restoring model weights from the end of the best epoch.")
                    self.model.set_weights(self.best_weights)

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1:05d}: early stopping")


class ModelCheckpoint(Callback):
    """Saves the model (``model.save``) after every epoch, or only when it improved.

    Args:
      filepath: the save path; may hold ``{epoch}`` and log names, e.g.
        ``"ckpt-{epoch:02d}-{val_loss:.2f}"``.
      monitor: the log deciding "best" with ``save_best_only``.
      verbose: print a line per save.
      save_best_only: save only when ``monitor`` improved.
      mode: ``"min"``, ``"max"`` or ``"auto"``.
      save_weights_only: must be False (a save holds the architecture too).
      period: epochs between saves.
    """

    def __init__(self, filepath: str, monitor: str = "val_loss", verbose: int = 0,
                 save_best_only: bool = False, save_weights_only: bool = False,
                 mode: str = "auto", period: int = 1) -> None:
        super().__init__()
        if save_weights_only:
            raise NotImplementedError("ModelCheckpoint(save_weights_only=True)")
        self.filepath = str(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.period = period
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        self._better = np.greater if mode == "max" else np.less
        self.best = np.inf if mode == "min" else -np.inf
        self._since = 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self._since += 1
        if self._since < self.period:
            return
        self._since = 0
        path = self.filepath.format(epoch=epoch + 1, **logs)
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None or not self._better(current, self.best):
                return
            self.best = current
        if self.verbose > 0:
            print(f"Epoch {epoch + 1:05d}: saving model to {path}")
        self.model.save(path)


class ProgbarLogger(Callback):
    """Prints training progress: a tqdm bar per epoch when tqdm is installed and
    ``verbose=1``, else plain lines; always an end-of-epoch summary line.

    Args:
      verbose: 1 for a progress bar, 2 for one line per epoch.
      file: where to print (default ``sys.stdout``).
    """

    def __init__(self, verbose: int = 1, file: Any = None) -> None:
        super().__init__()
        self.verbose = verbose
        self.file = file
        self._bar: Any = None
        self._start = 0.0
        self._seen = 0

    def _out(self) -> Any:
        return self.file or sys.stdout

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._seen = 0
        epochs = self.params.get("epochs", 1)
        print(f"Epoch {epoch + 1}/{epochs}", file=self._out())
        if self.verbose == 1:
            try:
                from tqdm import tqdm
            except ImportError:
                self._bar = None
            else:
                self._bar = tqdm(total=self.params.get("samples"), unit="sample",
                                 leave=False, file=sys.stderr, dynamic_ncols=True,
                                 disable=None)

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        size = int(logs.get("size", 0))
        self._seen += size
        if self._bar is not None:
            self._bar.update(size)
            self._bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items()
                                   if k not in ("batch", "size")}, refresh=False)

    def on_epoch_end(self, epoch, logs=None):
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        took = time.perf_counter() - self._start
        parts = [f"{self._seen}/{self.params.get('samples', self._seen)}", f"{took:.1f}s"]
        parts += [f"{k}: {v:.4f}" for k, v in (logs or {}).items()]
        print(" - ".join(parts), file=self._out())


__all__ = ["Callback", "CallbackList", "EarlyStopping", "History", "LambdaCallback",
           "ModelCheckpoint", "ProgbarLogger"]
