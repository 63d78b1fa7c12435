"""CRC32C (Castagnoli), as used by iSCSI, ext4 and TensorFlow's file formats.

Pure Python for short inputs; for long ones the data is cut into equal chunks
whose CRCs NumPy computes side by side (one table lookup per byte of every
chunk per step), and the chunk CRCs are combined with GF(2) matrix operators,
as zlib's ``crc32_combine`` does. No compiled extension is needed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_POLY = 0x82F63B78  # the Castagnoli polynomial 0x1EDC6F41, bit-reversed
_MASK = 0xFFFFFFFF


def _make_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ _POLY if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _make_table()
_TABLE_NP = np.array(_TABLE, dtype=np.uint32)
_NUMPY_MIN_BYTES = 4096
_BLOCK = 32 << 20
_LITTLE = np.little_endian


def _raw_python(data: Any, reg: int) -> int:
    table = _TABLE
    for b in bytes(data):
        reg = table[(reg ^ b) & 0xFF] ^ (reg >> 8)
    return reg


# --- GF(2) operators: a 32x32 bit matrix is a list of 32 column ints ---------
def _times(mat: list[int], vec: int) -> int:
    out = 0
    i = 0
    while vec:
        if vec & 1:
            out ^= mat[i]
        vec >>= 1
        i += 1
    return out


def _square(mat: list[int]) -> list[int]:
    return [_times(mat, col) for col in mat]


def _one_zero_bit() -> list[int]:
    mat = [_POLY]
    row = 1
    for _ in range(1, 32):
        mat.append(row)
        row <<= 1
    return mat


# _ZERO_OPS[k]: the operator feeding 2**k zero BYTES through the CRC register.
_ZERO_OPS: list[list[int]] = []


def _zero_op(k: int) -> list[int]:
    while len(_ZERO_OPS) <= k:
        if not _ZERO_OPS:
            m = _one_zero_bit()
            for _ in range(3):  # 8 bits = 1 byte
                m = _square(m)
            _ZERO_OPS.append(m)
        else:
            _ZERO_OPS.append(_square(_ZERO_OPS[-1]))
    return _ZERO_OPS[k]


def _shift(reg: int, nbytes: int) -> int:
    """The register after feeding ``nbytes`` zero bytes (no init, no final xor)."""
    k = 0
    while nbytes and reg:
        if nbytes & 1:
            reg = _times(_zero_op(k), reg)
        nbytes >>= 1
        k += 1
    return reg


def _shift_np(regs: np.ndarray, nbytes: int) -> np.ndarray:
    """:func:`_shift` applied to every element of a uint32 array."""
    mat = _identity()
    k = 0
    n = nbytes
    while n:
        if n & 1:
            op = _zero_op(k)
            mat = [_times(op, col) for col in mat]
        n >>= 1
        k += 1
    out = np.zeros_like(regs)
    for i, col in enumerate(mat):
        if col:
            bit = (regs >> np.uint32(i)) & np.uint32(1)
            out ^= bit * np.uint32(col)
    return out


def _identity() -> list[int]:
    return [1 << i for i in range(32)]


# Slicing-by-4 tables: _TABLES4[k][i] is the register change of byte i followed by k
# zero bytes, so four table lookups advance a register by one 32-bit word.
_TABLES4 = [_TABLE_NP]
for _ in range(3):
    _TABLES4.append((_TABLES4[-1] >> np.uint32(8)) ^ _TABLE_NP[_TABLES4[-1] & np.uint32(0xFF)])


def _raw_numpy(buf: np.ndarray) -> int:
    """CRC register of ``buf`` (uint8, 1-D) starting from 0, without final xor."""
    n = buf.size
    lanes = 1 << max(1, (int((n / 4) ** 0.5)).bit_length() - 1)
    lanes = max(lanes, min(1 << 16, 1 << max(1, (n // 2048).bit_length() - 1)))
    length = -(-n // (lanes * 4)) * 4  # bytes per chunk, a multiple of 4
    pad = lanes * length - n
    # Leading zero bytes leave a register that starts at 0 unchanged, so padding in
    # front makes equal chunks without changing the result.
    if pad:
        buf = np.concatenate([np.zeros(pad, np.uint8), buf])
    words = np.ascontiguousarray(buf.view("<u4").reshape(lanes, length // 4).T)
    if not _LITTLE:
        words = words.byteswap()
    regs = np.zeros(lanes, np.uint32)
    planes = regs.view(np.uint8).reshape(lanes, 4)
    if not _LITTLE:
        planes = planes[:, ::-1]
    b0, b1, b2, b3 = (planes[:, i] for i in range(4))
    t0, t1, t2, t3 = _TABLES4
    acc = np.empty(lanes, np.uint32)
    tmp = np.empty(lanes, np.uint32)
    for row in words:  # one 32-bit word of every chunk per step
        regs ^= row
        np.take(t3, b0, out=acc)
        np.take(t2, b1, out=tmp)
        acc ^= tmp
        np.take(t1, b2, out=tmp)
        acc ^= tmp
        np.take(t0, b3, out=tmp)
        acc ^= tmp
        regs[:] = acc
    # Combine neighbours pairwise: crc(A || B) = shift(crc(A), len(B)) ^ crc(B).
    while regs.size > 1:
        regs = _shift_np(regs[0::2], length) ^ regs[1::2]
        length *= 2
    return int(regs[0])


def _as_uint8(data: Any) -> np.ndarray:
    if isinstance(data, np.ndarray):
        arr = np.ascontiguousarray(data)
        return arr.reshape(-1).view(np.uint8)
    return np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)


def crc32c(data: Any, value: int = 0) -> int:
    """The CRC32C of ``data``, continuing from ``value`` (like ``zlib.crc32``).

    Args:
      data: bytes, bytearray, memoryview or a NumPy array (its raw bytes).
      value: the CRC32C of the data before ``data``, to checksum in pieces:
        ``crc32c(b, crc32c(a)) == crc32c(a + b)``.

    Returns:
      The checksum as an int in [0, 2**32).
    """
    buf = _as_uint8(data)
    reg = (value ^ _MASK) & _MASK
    n = buf.size
    if n < _NUMPY_MIN_BYTES:
        return _raw_python(buf.tobytes(), reg) ^ _MASK
    for start in range(0, n, _BLOCK):  # blocks bound the working memory
        block = buf[start:start + _BLOCK]
        reg = _shift(reg, block.size) ^ _raw_numpy(block)
    return reg ^ _MASK
