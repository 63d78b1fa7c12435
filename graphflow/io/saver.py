"""Checkpoints: ``Saver``, the checkpoint-state file, and reading checkpoints.

A checkpoint ``<prefix>`` is three files, written in this order, each atomically
(temporary file, fsync, rename):

* ``<prefix>.data-<token>``: the variables' bytes, little-endian, 64-byte aligned;
* ``<prefix>.meta``: the meta graph (optional);
* ``<prefix>.index``: a CheckpointIndex naming each tensor's key, dtype, shape,
  offset, length and CRC32C, itself ending with a CRC32C. Its rename is what makes
  the checkpoint exist.

Then the ``checkpoint`` state file (TF's text form) is updated and checkpoints
beyond ``max_to_keep`` are deleted. The data file's random token means a new save
under the same prefix never touches the data an existing index refers to, so a
process killed at any moment leaves the previous checkpoint loadable.

The Saver reads and writes the variable values a Session holds; it adds no ops
to the graph.
"""

from __future__ import annotations

import os
import time
import warnings
from typing import Any

import numpy as np

from graphflow.framework import dtypes as _dt
from graphflow.framework import errors
from graphflow.framework.graph import GraphKeys, Operation, Tensor, get_default_graph
from graphflow.io import files, text_format
from graphflow.io.messages import (
    CheckpointEntry,
    CheckpointIndex,
    CheckpointState,
    MetaGraphDef,
    SaverDef,
    TensorProto,
)
from graphflow.io.tensors import (
    array_bytes,
    dtype_to_enum,
    make_ndarray,
    shape_to_proto,
    tensor_nbytes,
)
from graphflow.io.wire import serialize_chunks

_STATE_FILE = "checkpoint"
_MAX_STATE_BYTES = 16 << 20


# --- the checkpoint-state file --------------------------------------------------------
def _relative(path: str, save_dir: str) -> str:
    if os.path.dirname(os.path.abspath(path)) == os.path.abspath(save_dir):
        return os.path.basename(path)
    return path


def update_checkpoint_state(save_dir: str, model_checkpoint_path: str,
                            all_model_checkpoint_paths: list[str] | None = None,
                            latest_filename: str | None = None,
                            all_model_checkpoint_timestamps: list[float] | None = None,
                            last_preserved_timestamp: float | None = None) -> None:
    """Writes the ``checkpoint`` state file of ``save_dir`` atomically (TF's text form).

    Paths inside ``save_dir`` are stored relative to it, so the directory can move.

    Args:
      save_dir: the checkpoint directory.
      model_checkpoint_path: the latest checkpoint prefix.
      all_model_checkpoint_paths: the checkpoints still kept, oldest first;
        ``model_checkpoint_path`` is appended if missing.
      latest_filename: the state file's name (default ``checkpoint``).
      all_model_checkpoint_timestamps: save times of those checkpoints.
      last_preserved_timestamp: time of the last checkpoint kept by
        ``keep_checkpoint_every_n_hours``.

    Raises:
      errors.OpError: if the file cannot be written.
    """
    paths = list(all_model_checkpoint_paths or [])
    if not paths or paths[-1] != model_checkpoint_path:
        paths = [p for p in paths if p != model_checkpoint_path] + [model_checkpoint_path]
    state = CheckpointState(
        model_checkpoint_path=_relative(model_checkpoint_path, save_dir),
        all_model_checkpoint_paths=[_relative(p, save_dir) for p in paths],
        all_model_checkpoint_timestamps=list(all_model_checkpoint_timestamps or []),
        last_preserved_timestamp=float(last_preserved_timestamp or 0.0))
    path = os.path.join(save_dir, latest_filename or _STATE_FILE)
    files.atomic_write(path, [text_format.message_to_string(state).encode("utf-8")])


def get_checkpoint_state(checkpoint_dir: str,
                         latest_filename: str | None = None) -> CheckpointState | None:
    """The checkpoint state of ``checkpoint_dir`` (TF1's ``tf.train.get_checkpoint_state``).

    Relative paths in the file are joined to ``checkpoint_dir``.

    Args:
      checkpoint_dir: the directory.
      latest_filename: the state file's name (default ``checkpoint``).

    Returns:
      A CheckpointState, or None if there is no state file, or (with a warning,
      as TF1 logs) if it is damaged or names no checkpoint.
    """
    checkpoint_dir = os.fspath(checkpoint_dir)
    path = os.path.join(checkpoint_dir, latest_filename or _STATE_FILE)
    try:
        size = os.path.getsize(path)
    except OSError:
        return None
    try:
        if size > _MAX_STATE_BYTES:
            raise errors.DataLossError(None, None, f"{path}: {size} bytes is too large for a "
                                                   "checkpoint state file")
        state = text_format.parse(files.read_file(path), CheckpointState(), source=path)
        if not state.model_checkpoint_path:
            raise errors.DataLossError(None, None, f"{path}: names no model_checkpoint_path")
    except errors.OpError as e:
        warnings.warn(f"{e.message}; the checkpoint state is ignored", stacklevel=2)
        return None

    def full(p: str) -> str:
        return p if os.path.isabs(p) else os.path.join(checkpoint_dir, p)

    state.model_checkpoint_path = full(state.model_checkpoint_path)
    state.all_model_checkpoint_paths = [full(p) for p in state.all_model_checkpoint_paths]
    return state


def checkpoint_exists(checkpoint_prefix: str) -> bool:
    """Whether a checkpoint with this prefix exists (TF1's ``tf.train.checkpoint_exists``).

    Args:
      checkpoint_prefix: e.g. ``/tmp/model.ckpt-100``.

    Returns:
      True if its ``.index`` file exists.
    """
    return os.path.isfile(os.fspath(checkpoint_prefix) + ".index")


def latest_checkpoint(checkpoint_dir: str, latest_filename: str | None = None) -> str | None:
    """The newest checkpoint in ``checkpoint_dir`` (TF1's ``tf.train.latest_checkpoint``).

    Args:
      checkpoint_dir: the directory.
      latest_filename: the state file's name (default ``checkpoint``).

    Returns:
      The prefix (pass it to ``Saver.restore``), or None if there is none or the
      state file names a checkpoint that does not exist.
    """
    state = get_checkpoint_state(checkpoint_dir, latest_filename)
    if state is None:
        return None
    if checkpoint_exists(state.model_checkpoint_path):
        return state.model_checkpoint_path
    warnings.warn(f"The checkpoint state in {checkpoint_dir} names "
                  f"{state.model_checkpoint_path}, which does not exist", stacklevel=2)
    return None


def remove_checkpoint(checkpoint_prefix: str, checkpoint_format_version: int = 2,
                      meta_graph_suffix: str = "meta") -> None:
    """Deletes the files of a checkpoint, its index first (TF1's ``remove_checkpoint``).

    Args:
      checkpoint_prefix: the checkpoint's prefix.
      checkpoint_format_version: accepted for TF1 compatibility.
      meta_graph_suffix: the meta graph file's suffix.
    """
    prefix = os.fspath(checkpoint_prefix)
    files.remove_quietly(prefix + ".index")
    for p in files.side_file_glob(prefix):
        files.remove_quietly(p)
    meta = f"{prefix}.{meta_graph_suffix}"
    files.remove_quietly(meta)
    for p in files.side_file_glob(meta):
        files.remove_quietly(p)


# --- reading checkpoints ----------------------------------------------------------------
class CheckpointReader:
    """Reads tensors of a checkpoint (TF1's ``tf.train.NewCheckpointReader``).

    Args:
      checkpoint_prefix: the checkpoint's prefix (``.../model.ckpt-100``).

    Raises:
      errors.NotFoundError: if there is no such checkpoint.
      errors.DataLossError: if its index is damaged.
      errors.InvalidArgumentError: if its index is invalid.
    """

    def __init__(self, checkpoint_prefix: str) -> None:
        self.prefix = os.fspath(checkpoint_prefix)
        path = self.prefix + ".index"
        if not os.path.isfile(path):
            raise errors.NotFoundError(
                None, None, f"The passed save_path is not a valid checkpoint: {self.prefix} "
                            f"({path} does not exist)")
        index = CheckpointIndex()
        index.MergeFromString(files.read_file(path), source=path)
        self.index = index
        self.source = path
        self.directory = os.path.dirname(os.path.abspath(path))
        self.entries: dict[str, CheckpointEntry] = {}
        for e in index.entry:
            if e.name in self.entries:
                raise errors.InvalidArgumentError(None, None,
                                                  f"{path}: tensor {e.name!r} appears twice")
            if e.tensor is None or e.tensor.external is None or \
                    e.tensor.external.location != index.data_file:
                raise errors.InvalidArgumentError(
                    None, None, f"{path}: tensor {e.name!r} does not point into the data file "
                                f"{index.data_file!r}")
            self.entries[e.name] = e

    def has_tensor(self, name: str) -> bool:
        """Whether the checkpoint holds a tensor with key ``name``.

        Args:
          name: the checkpoint key.

        Returns:
          A bool.
        """
        return name in self.entries

    def _where(self, name: str) -> str:
        return f"{self.source}: tensor {name!r}"

    def get_variable_to_shape_map(self) -> dict[str, list[int]]:
        """Maps each key to its shape."""
        return {k: list(tensor_nbytes(e.tensor, self._where(k))[1])
                for k, e in self.entries.items()}

    def get_variable_to_dtype_map(self) -> dict[str, _dt.DType]:
        """Maps each key to its dtype."""
        return {k: tensor_nbytes(e.tensor, self._where(k))[0] for k, e in self.entries.items()}

    def get_tensor(self, name: str) -> np.ndarray:
        """The value saved under ``name``.

        Raises:
          errors.NotFoundError: if there is no such key.
          errors.DataLossError: if the data is damaged.
        """
        return self.read([name])[name]

    def read(self, names: list[str]) -> dict[str, np.ndarray]:
        """The values of ``names``, each verified against its CRC32C.

        Raises:
          errors.NotFoundError: if a key is missing.
          errors.DataLossError: if the data file is truncated or damaged.
        """
        for n in names:
            if n not in self.entries:
                raise errors.NotFoundError(
                    None, None, f"Key {n} not found in checkpoint {self.prefix}")
        out = {}
        with files.SideFileReader(self.directory, self.source) as reader:
            if names:
                _, size = reader._open(self.index.data_file, self.source)
                if size != self.index.data_size:
                    raise errors.DataLossError(
                        None, None, f"{self.source}: data file {self.index.data_file!r} has "
                                    f"{size} bytes, the index expects {self.index.data_size}; "
                                    "it was truncated or replaced")
            for n in names:
                arr = make_ndarray(self.entries[n].tensor, self._where(n), external=reader)
                try:
                    arr.flags.writeable = True
                except ValueError:
                    arr = arr.copy()
                out[n] = arr
        return out


def _resolve_checkpoint(ckpt_dir_or_file: str) -> str:
    path = os.fspath(ckpt_dir_or_file)
    if os.path.isdir(path):
        found = latest_checkpoint(path)
        if found is None:
            raise errors.NotFoundError(None, None, f"No checkpoint found in {path}")
        return found
    return path


def load_checkpoint(ckpt_dir_or_file: str) -> CheckpointReader:
    """A CheckpointReader for a checkpoint prefix, or the latest one in a directory.

    Raises:
      errors.NotFoundError: if there is no checkpoint.
    """
    return CheckpointReader(_resolve_checkpoint(ckpt_dir_or_file))


def list_variables(ckpt_dir_or_file: str) -> list[tuple[str, list[int]]]:
    """``(key, shape)`` of every tensor in a checkpoint, sorted by key.

    Raises:
      errors.NotFoundError: if there is no checkpoint.
    """
    return sorted(load_checkpoint(ckpt_dir_or_file).get_variable_to_shape_map().items())


def load_variable(ckpt_dir_or_file: str, name: str) -> np.ndarray:
    """The value of one tensor of a checkpoint.

    Raises:
      errors.NotFoundError: if there is no checkpoint or no such key.
    """
    return load_checkpoint(ckpt_dir_or_file).get_tensor(name)


# --- Saver -------------------------------------------------------------------------------
def _variable_op(v: Any) -> Operation:
    conv = getattr(v, "_as_graph_element", None)
    el = conv() if conv is not None else v
    op = el.op if isinstance(el, Tensor) else el
    if not isinstance(op, Operation) or op.type != "VariableV2":
        raise TypeError(f"Variable to save is not a Variable: {v!r}")
    return op


def _saveables(var_list: Any) -> list[tuple[str, Operation]]:
    if var_list is None:
        var_list = get_default_graph().get_collection(GraphKeys.GLOBAL_VARIABLES)
    if isinstance(var_list, dict):
        items = []
        for key, v in var_list.items():
            if not isinstance(key, str):
                raise TypeError(f"var_list keys must be strings, got {key!r}")
            items.append((key, _variable_op(v)))
    else:
        if not isinstance(var_list, (list, tuple, set)):
            var_list = [var_list]
        items = [(op.name, op) for op in (_variable_op(v) for v in var_list)]
    seen: dict[str, Operation] = {}
    out = []
    for key, op in items:
        if key in seen:
            if seen[key] is op:
                continue
            raise errors.GraphValueError(None, None,
                                         f"At least two variables have the same name: {key}")
        seen[key] = op
        out.append((key, op))
    graphs = {id(op.graph) for _, op in out}
    if len(graphs) > 1:
        raise errors.GraphValueError(None, None, "Saver: the variables are in different graphs")
    return out


class Saver:
    """Saves and restores variables (TF1's ``tf.train.Saver``).

    Args:
      var_list: Variables to save: a list (keys are the variables' op names) or a
        dict mapping checkpoint keys to Variables; default all global variables.
      reshape, sharded, name, restore_sequentially, builder, write_version,
        pad_step_number, save_relative_paths, filename: accepted for TF1
        compatibility (paths in the state file are always relative).
      max_to_keep: how many recent checkpoints to keep; None or 0 keeps all.
      keep_checkpoint_every_n_hours: also keep one checkpoint per this many hours.
      saver_def: a SaverDef (from a meta graph) giving ``max_to_keep`` and
        ``keep_checkpoint_every_n_hours``.
      defer_build: find the variables at the first save/restore instead of now.
      allow_empty: allow a Saver with no variables (saving does nothing).

    Raises:
      ValueError: if there are no variables to save (and not ``allow_empty``), or
        two variables share a key.
      TypeError: if ``var_list`` holds something that is not a variable.
    """

    def __init__(self, var_list: Any = None, reshape: bool = False, sharded: bool = False,
                 max_to_keep: int | None = 5, keep_checkpoint_every_n_hours: float = 10000.0,
                 name: str | None = None, restore_sequentially: bool = False,
                 saver_def: SaverDef | None = None, builder: Any = None,
                 defer_build: bool = False, allow_empty: bool = False, write_version: int = 2,
                 pad_step_number: bool = False, save_relative_paths: bool = False,
                 filename: str | None = None) -> None:
        if saver_def is not None:
            max_to_keep = saver_def.max_to_keep
            keep_checkpoint_every_n_hours = saver_def.keep_checkpoint_every_n_hours or 10000.0
        self._var_list_arg = var_list
        self._max_to_keep = max_to_keep
        self._keep_hours = float(keep_checkpoint_every_n_hours)
        self._allow_empty = allow_empty
        self._vars: list[tuple[str, Operation]] | None = None
        self._last_checkpoints: list[tuple[str, float]] = []
        self._next_checkpoint_time = time.time() + self._keep_hours * 3600
        self._last_preserved = 0.0
        if not defer_build:
            self.build()

    def build(self) -> None:
        """Resolves the variables to save (done at construction unless ``defer_build``).

        Raises:
          ValueError: if there are none and ``allow_empty`` is False.
        """
        if self._vars is not None:
            return
        self._vars = _saveables(self._var_list_arg)
        if not self._vars and not self._allow_empty:
            raise errors.GraphValueError(None, None, "No variables to save")

    def _variables(self) -> list[tuple[str, Operation]]:
        self.build()
        assert self._vars is not None
        return self._vars

    def _check_session(self, sess: Any) -> None:
        if getattr(sess, "_closed", False):
            raise RuntimeError("Attempted to use a closed Session.")
        ops = self._variables()
        if ops and sess.graph is not ops[0][1].graph:
            raise errors.GraphValueError(None, None, "The Session's graph is not the graph of "
                                                     "the Saver's variables")

    # --- saving -------------------------------------------------------------------------
    def save(self, sess: Any, save_path: str, global_step: Any = None,
             latest_filename: str | None = None, meta_graph_suffix: str = "meta",
             write_meta_graph: bool = True, write_state: bool = True,
             strip_default_attrs: bool = False, save_debug_info: bool = False) -> str | None:
        """Saves the variables' values in ``sess`` to a checkpoint.

        Args:
          sess: the Session holding the values.
          save_path: the checkpoint prefix, e.g. ``"/tmp/model.ckpt"``.
          global_step: if given (an int, or a Tensor/Variable evaluated in
            ``sess``), ``-<step>`` is appended to the prefix.
          latest_filename: the state file's name (default ``checkpoint``).
          meta_graph_suffix: the meta graph file is ``<prefix>.<suffix>``.
          write_meta_graph: also write the meta graph (with this saver's SaverDef).
          write_state: update the state file and delete checkpoints beyond
            ``max_to_keep``.
          strip_default_attrs, save_debug_info: accepted for TF1 compatibility.

        Returns:
          The checkpoint prefix written (pass it to :meth:`restore`), or None if
          the saver has no variables.

        Raises:
          errors.NotFoundError: if the parent directory does not exist.
          errors.FailedPreconditionError: if a variable is not initialized.
          errors.OpError: if a file cannot be written; the previous checkpoint
            is unaffected.
        """
        self._check_session(sess)
        variables = self._variables()
        if not variables:
            return None
        save_path = os.fspath(save_path)
        step = None
        if global_step is not None:
            if not isinstance(global_step, (int, np.integer)):
                global_step = sess.run(global_step)
            step = int(global_step)
            prefix = f"{save_path}-{step}"
        else:
            prefix = save_path
        save_dir = os.path.dirname(prefix) or "."
        if not os.path.isdir(save_dir):
            raise errors.NotFoundError(None, None, f"Parent directory of {prefix} doesn't "
                                                   "exist, can't save.")
        values = self._read_values(sess, variables)
        writer = files.SideFileWriter(prefix)
        entries = []
        for key, arr in values:
            ref = writer.add(array_bytes(arr))
            entries.append(CheckpointEntry(name=key, tensor=TensorProto(
                dtype=dtype_to_enum(arr.dtype), tensor_shape=shape_to_proto(arr.shape),
                external=ref)))
        index = CheckpointIndex(entry=entries, data_file=writer.name, data_size=writer.size,
                                global_step=step or 0)
        writer.commit()
        if write_meta_graph:
            self.export_meta_graph(f"{prefix}.{meta_graph_suffix}", graph=sess.graph)
        files.atomic_write(prefix + ".index", serialize_chunks(index)[0])
        writer.remove_stale()
        if write_state:
            self._record(prefix, save_dir, latest_filename, meta_graph_suffix)
        return prefix

    def _read_values(self, sess: Any, variables: list[tuple[str, Operation]]
                     ) -> list[tuple[str, np.ndarray]]:
        out = []
        with sess._lock:
            state = sess._state.variables
            for key, op in variables:
                arr = state.get(op.name)
                if arr is None:
                    raise errors.FailedPreconditionError(
                        None, op, f"Attempting to use uninitialized value {op.name}")
                out.append((key, np.asarray(arr)))
        return out

    def _record(self, prefix: str, save_dir: str, latest_filename: str | None,
                meta_graph_suffix: str) -> None:
        now = time.time()
        self._last_checkpoints = [c for c in self._last_checkpoints if c[0] != prefix]
        self._last_checkpoints.append((prefix, now))
        to_delete = []
        if self._max_to_keep:
            while len(self._last_checkpoints) > self._max_to_keep:
                p, t = self._last_checkpoints.pop(0)
                if t > self._next_checkpoint_time:
                    self._next_checkpoint_time += self._keep_hours * 3600
                    self._last_preserved = t
                else:
                    to_delete.append(p)
            kept = self._last_checkpoints
        else:
            kept = self._last_checkpoints[-1:]
        update_checkpoint_state(save_dir, prefix, [p for p, _ in kept], latest_filename,
                                [t for _, t in kept], self._last_preserved)
        for p in to_delete:
            remove_checkpoint(p, meta_graph_suffix=meta_graph_suffix)

    # --- restoring ----------------------------------------------------------------------
    def restore(self, sess: Any, save_path: str) -> None:
        """Restores the variables' values in ``sess`` from a checkpoint.

        Either every variable is restored or, on an error, none is changed.

        Args:
          sess: the Session.
          save_path: a checkpoint prefix, e.g. from :func:`latest_checkpoint`.

        Raises:
          ValueError: if ``save_path`` is None.
          errors.NotFoundError: if there is no such checkpoint, or it lacks a variable.
          errors.InvalidArgumentError: if a saved tensor's dtype or shape does not
            match its variable.
          errors.DataLossError: if the checkpoint is damaged.
        """
        if save_path is None:
            raise errors.GraphValueError(None, None, "Can't load save_path when it is None.")
        self._check_session(sess)
        variables = self._variables()
        reader = CheckpointReader(save_path)
        for key, op in variables:
            entry = reader.entries.get(key)
            if entry is None:
                raise errors.NotFoundError(
                    None, op, f"Key {key} not found in checkpoint {reader.prefix}")
            dtype, dims, _ = tensor_nbytes(entry.tensor, reader._where(key))
            var_t = op.outputs[0]
            if dtype is not var_t.dtype:
                raise errors.InvalidArgumentError(
                    None, op, f"Checkpoint {reader.prefix} holds {key!r} as {dtype.name}, but "
                              f"variable {op.name} is {var_t.dtype.name}")
            if not var_t.shape.is_compatible_with(dims):
                raise errors.InvalidArgumentError(
                    None, op, f"Checkpoint {reader.prefix} holds {key!r} with shape "
                              f"{list(dims)}, but variable {op.name} has shape {var_t.shape} "
                              "(Assign requires shapes of both tensors to match)")
        values = reader.read([key for key, _ in variables])
        with sess._lock:
            for key, op in variables:
                sess._state.variables[op.name] = values[key]

    # --- bookkeeping --------------------------------------------------------------------
    @property
    def last_checkpoints(self) -> list[str]:
        """The kept checkpoints this saver wrote, oldest first."""
        return [p for p, _ in self._last_checkpoints]

    def set_last_checkpoints(self, last_checkpoints: list[str]) -> None:
        """Replaces the list of kept checkpoints (their times are now).

        Args:
          last_checkpoints: checkpoint prefixes, oldest first.
        """
        now = time.time()
        self._last_checkpoints = [(os.fspath(p), now) for p in last_checkpoints]

    def set_last_checkpoints_with_time(self, last_checkpoints_with_time: list[tuple[str, float]]
                                       ) -> None:
        """Replaces the list of kept checkpoints.

        Args:
          last_checkpoints_with_time: ``(prefix, time)`` pairs, oldest first.
        """
        self._last_checkpoints = [(os.fspath(p), float(t)) for p, t in
                                  last_checkpoints_with_time]

    def recover_last_checkpoints(self, checkpoint_paths: list[str]) -> None:
        """Adopts existing checkpoints so ``max_to_keep`` covers them.

        Args:
          checkpoint_paths: prefixes, e.g. a state file's
            ``all_model_checkpoint_paths``; those that no longer exist are skipped.
        """
        found = []
        for p in checkpoint_paths:
            if checkpoint_exists(p):
                found.append((os.fspath(p), os.path.getmtime(os.fspath(p) + ".index")))
        self.set_last_checkpoints_with_time(found)

    def as_saver_def(self) -> SaverDef:
        """The SaverDef describing this saver (stored in meta graphs)."""
        return SaverDef(max_to_keep=int(self._max_to_keep or 0),
                        keep_checkpoint_every_n_hours=self._keep_hours, version=2,
                        variables={key: op.name for key, op in self._variables()})

    to_proto = as_saver_def

    @property
    def saver_def(self) -> SaverDef:
        return self.as_saver_def()

    def export_meta_graph(self, filename: str | None = None,
                          collection_list: list[str] | None = None, as_text: bool = False,
                          export_scope: str | None = None, clear_devices: bool = False,
                          clear_extraneous_savers: bool = False,
                          strip_default_attrs: bool = False, save_debug_info: bool = False,
                          graph: Any = None) -> MetaGraphDef:
        """Exports the meta graph with this saver's SaverDef (see ``export_meta_graph``).

        Returns:
          The MetaGraphDef.

        Raises:
          errors.OpError: if the file cannot be written.
        """
        from graphflow.io.meta_graph import export_meta_graph

        if graph is None:
            ops = self._variables()
            graph = ops[0][1].graph if ops else get_default_graph()
        return export_meta_graph(filename, saver_def=self.as_saver_def(),
                                 collection_list=collection_list, as_text=as_text,
                                 graph=graph, export_scope=export_scope,
                                 clear_devices=clear_devices)
