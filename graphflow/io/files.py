"""Reading and writing files safely: atomic replacement, side files, checked text.

* :func:`atomic_write` writes to a temporary file in the same directory, fsyncs
  it, renames it over the target and fsyncs the directory: a crash leaves either
  the old file or the new one, never a mix.
* Tensors too large to keep inside a message go to a *side file* next to it
  (:class:`SideFileWriter`); the message refers to them by file name, offset,
  length and CRC32C, and :class:`SideFileReader` checks all four before reading.
* Text files graphflow writes end with a CRC32C line (:func:`frame_text`), so
  damage to them is detected too; hand-written text without it is accepted.
"""

from __future__ import annotations

import errno
import glob
import os
import re
import secrets
from collections.abc import Iterable
from typing import Any

import numpy as np

from graphflow.framework import errors
from graphflow.io.crc import crc32c
from graphflow.io.messages import ExternalData

ALIGNMENT = 64
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._\-]{0,254}$")
TEXT_MAGIC = b"# graphflow text format"
_CRC_LINE = re.compile(rb"# crc32c ([0-9a-f]{8})\n\Z")


def os_error(e: OSError, path: str, action: str) -> errors.OpError:
    """A graphflow error for an OSError while ``action`` (e.g. "reading") ``path``.

    Args:
      e: the OSError.
      path: the file.
      action: what was being done, for the message.

    Returns:
      NotFoundError, PermissionDeniedError, ResourceExhaustedError (disk full) or
      UnknownError.
    """
    what = f"{action} {path}: {e.strerror or e}"
    if isinstance(e, FileNotFoundError) or e.errno == errno.ENOENT:
        return errors.NotFoundError(None, None, what)
    if isinstance(e, PermissionError):
        return errors.PermissionDeniedError(None, None, what)
    if e.errno == errno.ENOSPC:
        return errors.ResourceExhaustedError(None, None, what)
    return errors.UnknownError(None, None, what)


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # not supported on this platform (e.g. Windows)
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str, chunks: Iterable[Any]) -> None:
    """Replaces ``path`` with the concatenation of ``chunks``, atomically and durably.

    Args:
      path: the file to write.
      chunks: bytes-like objects.

    Raises:
      errors.NotFoundError / PermissionDeniedError / ResourceExhaustedError /
        UnknownError: if the file cannot be written; ``path`` is then unchanged.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp-{os.getpid()}-"
                                  f"{secrets.token_hex(4)}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                     0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                for c in chunks:
                    f.write(c)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    except OSError as e:
        raise os_error(e, path, "writing") from None
    _fsync_dir(directory)


def read_file(path: str) -> bytes:
    """The bytes of ``path``.

    Raises:
      errors.NotFoundError: if it does not exist; other graphflow errors for other
        failures.
    """
    try:
        with open(path, "rb") as f:
            return f.read()
    except IsADirectoryError as e:
        raise errors.InvalidArgumentError(None, None, f"{path} is a directory, not a "
                                                      f"file: {e.strerror}") from None
    except OSError as e:
        raise os_error(e, path, "reading") from None


def remove_quietly(path: str) -> None:
    """Deletes ``path`` if it exists, ignoring errors.

    Args:
      path: the file.
    """
    try:
        os.unlink(path)
    except OSError:
        pass


def side_file_glob(path: str) -> list[str]:
    """The side files belonging to ``path`` (``<path>.data-<token>``).

    Args:
      path: the graph, meta graph or checkpoint file (or prefix).

    Returns:
      Their paths.
    """
    pattern = glob.escape(os.fspath(path)) + ".data-*"
    return [p for p in glob.glob(pattern) if re.search(r"\.data-[0-9a-f]{8}$", p)]


class SideFileWriter:
    """Collects tensor bytes for the side file of ``path``; :meth:`commit` writes it.

    The side file is named ``<path>.data-<random token>``, so writing a new one
    never touches the side file an existing ``path`` refers to; call
    :meth:`remove_stale` once ``path`` itself has been replaced.

    Args:
      path: the file (graph, meta graph or checkpoint index) the data belongs to.
    """

    def __init__(self, path: str) -> None:
        self.path = os.fspath(path)
        self.name = f"{os.path.basename(self.path)}.data-{secrets.token_hex(4)}"
        self.chunks: list[Any] = []
        self.size = 0

    def add(self, data: Any) -> ExternalData:
        """Appends ``data`` to the side file (64-byte aligned).

        Args:
          data: bytes-like (e.g. :func:`tensors.array_bytes` of an array).

        Returns:
          The ExternalData naming the file, offset, length and CRC32C.
        """
        pad = -self.size % ALIGNMENT
        if pad:
            self.chunks.append(bytes(pad))
            self.size += pad
        view = memoryview(data).cast("B") if not isinstance(data, np.ndarray) else data
        length = len(view) if not isinstance(view, np.ndarray) else view.nbytes
        ref = ExternalData(location=self.name, offset=self.size, length=length,
                           crc32c=crc32c(view))
        self.chunks.append(view)
        self.size += length
        return ref

    @property
    def file_path(self) -> str:
        return os.path.join(os.path.dirname(os.path.abspath(self.path)), self.name)

    def commit(self) -> None:
        """Writes the side file atomically (nothing if no data was added)."""
        if self.chunks:
            atomic_write(self.file_path, self.chunks)

    def remove_stale(self) -> None:
        """Deletes older side files of ``path`` (not the one just written)."""
        keep = self.file_path if self.chunks else None
        for p in side_file_glob(os.path.abspath(self.path)):
            if p != keep:
                remove_quietly(p)


class SideFileReader:
    """Reads tensor bytes referenced by :class:`ExternalData` from side files.

    Only plain file names in ``directory`` are accepted (no path separators, no
    ``..``); offsets and lengths are checked against the file's size before any
    buffer is allocated, and the CRC32C is verified.

    Args:
      directory: where the side files are (the referring file's directory).
      source: the referring file, for error messages.
    """

    def __init__(self, directory: str, source: str) -> None:
        self.directory = directory
        self.source = source
        self._files: dict[str, Any] = {}

    def __enter__(self) -> SideFileReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        for f, _ in self._files.values():
            f.close()
        self._files.clear()

    def _open(self, location: str, where: str) -> tuple[Any, int]:
        if location in self._files:
            return self._files[location]
        if not _SAFE_NAME.fullmatch(location):
            raise errors.InvalidArgumentError(
                None, None, f"{where}: side file name {location!r} is not a plain file name "
                            "in the same directory")
        path = os.path.join(self.directory, location)
        try:
            f = open(path, "rb")  # noqa: SIM115 - kept open for further reads, closed in close()
        except OSError as e:
            raise os_error(e, path, f"{where}: opening side file") from None
        size = os.fstat(f.fileno()).st_size
        self._files[location] = (f, size)
        return f, size

    def __call__(self, ref: ExternalData, nbytes: int, where: str) -> np.ndarray:
        """The ``nbytes`` bytes ``ref`` points to, verified, as a uint8 array.

        Raises:
          errors.DataLossError: if the side file is too short or the CRC differs.
          errors.InvalidArgumentError: for a bad reference.
        """
        if ref.length != nbytes or ref.offset < 0:
            raise errors.InvalidArgumentError(
                None, None, f"{where}: bad side-file reference (offset {ref.offset}, length "
                            f"{ref.length}, expected length {nbytes})")
        f, size = self._open(ref.location, where)
        if ref.offset + nbytes > size:
            raise errors.DataLossError(
                None, None, f"{where}: side file {ref.location!r} has {size} bytes, but the "
                            f"tensor needs bytes {ref.offset}..{ref.offset + nbytes}; it was "
                            "truncated or belongs to another file")
        buf = np.empty(nbytes, dtype=np.uint8)
        try:
            f.seek(ref.offset)
            got = f.readinto(memoryview(buf)) if nbytes else 0
        except OSError as e:
            raise os_error(e, os.path.join(self.directory, ref.location), "reading") from None
        if got != nbytes:
            raise errors.DataLossError(
                None, None, f"{where}: side file {ref.location!r} ended after {got} of "
                            f"{nbytes} bytes at byte offset {ref.offset + got}")
        crc = crc32c(buf)
        if crc != ref.crc32c:
            raise errors.DataLossError(
                None, None, f"{where}: checksum mismatch in side file {ref.location!r} bytes "
                            f"{ref.offset}..{ref.offset + nbytes}: CRC32C {crc:#010x}, "
                            f"expected {ref.crc32c:#010x}; the data is damaged")
        return buf


def frame_text(body: str, what: str) -> bytes:
    """``body`` with a header line and a trailing CRC32C line, as UTF-8 bytes.

    Args:
      body: the text form of a message.
      what: the message's name, for the header.

    Returns:
      The bytes to write.
    """
    data = (TEXT_MAGIC.decode() + f" 1: {what}; the last line is a CRC32C of the "
            "lines before it\n" + body).encode("utf-8")
    return data + f"# crc32c {crc32c(data):08x}\n".encode()


def unframe_text(data: bytes, source: str) -> bytes:
    """Checks and strips the CRC32C line of text written by :func:`frame_text`.

    Text without graphflow's header (written by hand, or by other tools) is
    returned unchanged.

    Raises:
      errors.DataLossError: if the header is there but the CRC line is missing or wrong.
    """
    if not data.startswith(TEXT_MAGIC):
        return data
    end = data.rfind(b"# crc32c ")
    m = _CRC_LINE.match(data, end) if end >= 0 else None
    if m is None:
        raise errors.DataLossError(
            None, None, f"{source}: the CRC32C line at the end of the text is missing or "
                        f"malformed (the file was truncated or damaged) at byte offset "
                        f"{max(end, 0)}")
    want = int(m.group(1), 16)
    got = crc32c(memoryview(data)[:end])
    if got != want:
        raise errors.DataLossError(
            None, None, f"{source}: checksum mismatch: bytes 0..{end} have CRC32C "
                        f"{got:#010x}, but the file records {want:#010x} at byte offset {end}")
    return data[:end]
