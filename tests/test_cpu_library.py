"""CPU library kernels (graphflow.kernels.cpu.library) against the ops' reference evaluations.

Every handled op runs on random inputs (hypothesis) and on hand-picked edge
cases; outputs must have the reference's shape and dtype and its values:

* bit-exact for MaxPool, MaxPoolGrad, AvgPoolGrad and UnsortedSegmentSum;
* for sums of products (convolutions, AvgPool, BiasAddGrad) within
  ``TOL * scale``, where ``scale`` is the op evaluated on the inputs' absolute
  values (the size of the terms summed), so cancellation does not matter;
* for the softmax family within ``TOL * (|expected| + row scale)``.

Non-finite values must match exactly (NaN where the reference has NaN, same
infinities). Inputs the kernels do not handle must give the reference's result
or its error. Half of the random cases shrink the kernels' chunk and thread
thresholds so the multi-threaded, multi-chunk paths run on small inputs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import numpy as np
import pytest
import threadpoolctl
from hypothesis import given
from hypothesis import strategies as st

import graphflow as gf
from graphflow.compiler.lower import lower
from graphflow.kernels.cpu import blas, convkernels, library, winograd
from graphflow.ops.building import make
from graphflow.runtime.reference import eval_node

FLOATS = [np.float32, np.float64]
# Relative to the scale of the summed terms: float32 sums of tens of products round to
# ~1e-7 of it; float64 to ~1e-15.
TOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}

seeds = st.integers(0, 2**32 - 1)
float_dtypes = st.sampled_from(FLOATS)
paddings = st.sampled_from(["SAME", "VALID"])


# --- helpers -------------------------------------------------------------------------------
def node_of(build: Callable[[], Any]) -> Any:
    """The IR node of the op ``build()`` makes (from placeholders) in a fresh graph."""
    with gf.Graph().as_default() as g:
        out = build()
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        feeds = [op.outputs[0] for op in g.get_operations() if op.type == "Placeholder"]
        prog = lower(outs, [], feeds)
    return next(n for n in prog.nodes if n.name == outs[0].op.name)


def ph(dtype: Any, rank: int | None = 4) -> Any:
    """A placeholder of unknown dims (the node then suits any run-time shape)."""
    return gf.placeholder(gf.as_dtype(np.dtype(dtype)), None if rank is None else [None] * rank)


@contextlib.contextmanager
def tiny_pieces(on: bool = True) -> Iterator[None]:
    """Makes the kernels split small inputs over 3 threads and chunks of 7 rows."""
    names = ("_GRAIN", "_THREADS", "_CHUNK", "_BLAS_SERIAL")
    saved = [getattr(library, k) for k in names]
    if on:
        for k, v in zip(names, (1, 3, 7, True)):
            setattr(library, k, v)
    try:
        yield
    finally:
        for k, v in zip(names, saved):
            setattr(library, k, v)


def evaluate(node: Any, args: list, split: bool = False) -> tuple[list | None, list | None]:
    """(library outputs, reference outputs), or the errors both must raise alike."""
    fn = library.lower_library(node)
    assert fn is not None, f"{node.type} {node.attrs} is not handled"
    # Non-finite inputs make NumPy warn (in the reference as in the kernels' GEMMs).
    with np.errstate(all="ignore"):
        try:
            expected = eval_node(node, list(args), None)
        except gf.errors.OpError as e:
            with pytest.raises(type(e)) as info, tiny_pieces(split):
                fn(node, args)
            assert str(info.value) == str(e)
            return None, None
        with tiny_pieces(split):
            actual = fn(node, args)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert isinstance(a, np.ndarray)
        assert a.shape == e.shape, f"shape {a.shape} != {e.shape}"
        assert a.dtype == e.dtype, f"dtype {a.dtype} != {e.dtype}"
    return actual, expected


def assert_close(actual: np.ndarray, expected: np.ndarray, scale: Any) -> None:
    """``|actual - expected| <= TOL * scale`` where finite; non-finite values identical."""
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(actual[~finite], expected[~finite])
    scale = np.broadcast_to(np.asarray(scale, np.float64), expected.shape)
    diff = np.abs(actual[finite].astype(np.float64) - expected[finite])
    bound = TOL[expected.dtype] * scale[finite]
    bad = ~(diff <= bound)
    assert not bad.any(), (f"{int(bad.sum())} of {diff.size} differ; worst "
                           f"{diff[bad].max():.3g} vs bound {bound[bad].min():.3g}")


def check_exact(node: Any, args: list, split: bool = False) -> None:
    """Values equal to the reference's (NaN where it has NaN)."""
    actual, expected = evaluate(node, args, split)
    for a, e in zip(actual or [], expected or []):
        np.testing.assert_array_equal(a, e)


def check_sum(node: Any, args: list, split: bool = False) -> None:
    """Sums of products: the bound scales with the op evaluated on |inputs|."""
    actual, expected = evaluate(node, args, split)
    if actual is None:
        return
    absolute = [np.abs(a) if a.dtype.kind == "f" else a for a in args]
    with np.errstate(all="ignore"):
        scale = eval_node(node, absolute, None)
    for a, e, s in zip(actual, expected, scale):
        assert_close(a, e, np.abs(s.astype(np.float64)) + np.finfo(e.dtype).tiny)


def rand(rng: np.random.Generator, shape: tuple, dtype: Any, ties: bool = False) -> np.ndarray:
    """Normal values; with ``ties``, a few small integers so windows hold equal maxima."""
    if ties:
        return rng.integers(-2, 3, shape).astype(dtype)
    return (rng.standard_normal(shape) * 3).astype(dtype)


def sprinkle(rng: np.random.Generator, x: np.ndarray, values: tuple) -> np.ndarray:
    """``x`` with a few elements replaced by ``values`` (NaN, inf, huge, ...)."""
    x = x.copy()
    if x.size:
        flat = x.reshape(-1)
        for v in values:
            flat[rng.integers(0, x.size)] = v
    return x


# --- convolutions ------------------------------------------------------------------------
def conv_node(op: str, dtype: Any, strides: tuple, padding: str, **attrs: Any) -> Any:
    s = (1, strides[0], strides[1], 1)
    if op == "_Conv2DBackpropFilterWithBias":  # (made by the compiler's remap pass)
        base = conv_node("Conv2DBackpropFilter", dtype, strides, padding, **attrs)
        return node_of(lambda: make(op, [ph(dtype), ph(np.int32, 1), ph(dtype)],
                                    {**base.attrs, "bias_op": "Sum", "keep_dims": True},
                                    name="wgrad_bias"))
    if op == "Conv2D":
        return node_of(lambda: gf.nn.conv2d(ph(dtype), ph(dtype), s, padding, **attrs))
    if op == "Conv2DBackpropInput":
        return node_of(lambda: gf.nn.conv2d_backprop_input(
            ph(np.int32, 1), ph(dtype), ph(dtype), s, padding, **attrs))
    return node_of(lambda: gf.nn.conv2d_backprop_filter(
        ph(dtype), ph(np.int32, 1), ph(dtype), s, padding, **attrs))


def out_size(size: int, k: int, stride: int, padding: str) -> int:
    if padding == "SAME":
        return -(-size // stride)
    return max((size - k) // stride + 1, 0)


def conv_args(op: str, rng: np.random.Generator, dtype: Any, x_shape: tuple, f_shape: tuple,
              strides: tuple, padding: str) -> list:
    x = rand(rng, x_shape, dtype)
    f = rand(rng, f_shape, dtype)
    oh = out_size(x_shape[1], f_shape[0], strides[0], padding)
    ow = out_size(x_shape[2], f_shape[1], strides[1], padding)
    dy = rand(rng, (x_shape[0], oh, ow, f_shape[3]), dtype)
    if op == "Conv2D":
        return [x, f]
    if op == "Conv2DBackpropInput":
        return [np.array(x_shape, np.int32), f, dy]
    return [x, np.array(f_shape, np.int32), dy]


CONV_OPS = ["Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter",
            "_Conv2DBackpropFilterWithBias"]


@pytest.mark.parametrize("op", CONV_OPS)
@given(dtype=float_dtypes, n=st.integers(0, 3), h=st.integers(1, 9), w=st.integers(1, 9),
       c=st.integers(1, 7), oc=st.integers(1, 5), kh=st.integers(1, 4), kw=st.integers(1, 4),
       sh=st.integers(1, 3), sw=st.integers(1, 3), padding=paddings, seed=seeds,
       split=st.booleans())
def test_conv_random(op, dtype, n, h, w, c, oc, kh, kw, sh, sw, padding, seed, split):
    # c spans both im2col layouts (<= 4 channels transposed); VALID windows larger than
    # the input check that the reference's error comes out.
    rng = np.random.default_rng(seed)
    node = conv_node(op, dtype, (sh, sw), padding)
    args = conv_args(op, rng, dtype, (n, h, w, c), (kh, kw, c, oc), (sh, sw), padding)
    check_sum(node, args, split)


@pytest.mark.parametrize("op", CONV_OPS)
@given(dtype=float_dtypes, n=st.integers(0, 2), h=st.integers(1, 8), w=st.integers(1, 20),
       c_vec=st.sampled_from([0, 1, 2]), oc_vec=st.sampled_from([1, 2, 5]),
       kh=st.integers(1, 5), kw=st.integers(1, 5), sh=st.integers(1, 2), sw=st.integers(1, 2),
       padding=paddings, seed=seeds, split=st.booleans(), by_rows=st.booleans())
def test_conv_register_blocked_random(op, dtype, n, h, w, c_vec, oc_vec, kh, kw, sh, sw, padding,
                                      seed, split, by_rows):
    # Channel counts in whole vectors take convkernels' tiles (5 vectors: a chunk of 4
    # and one of 1); widths up to 20 cover the remainder tiles of every height. by_rows:
    # every filter counts as too big for L1, so tiles add one window row at a time.
    lanes = convkernels.lanes(dtype)
    c = c_vec * lanes or 3
    oc = oc_vec * lanes
    if op == "Conv2DBackpropInput":  # the input's channels are the result's
        c, oc = oc, c
    rng = np.random.default_rng(seed)
    node = conv_node(op, dtype, (sh, sw), padding)
    args = conv_args(op, rng, dtype, (n, h, w, c), (kh, kw, c, oc), (sh, sw), padding)
    with mock.patch.object(library, "_L1_BYTES", 0 if by_rows else library._L1_BYTES):
        check_sum(node, args, split)


def _bias_relu(conv: np.ndarray, bias: np.ndarray | None, relu: bool) -> np.ndarray:
    """The epilogue as the reference's ops compute it, one after the other."""
    out = conv if bias is None else conv + bias
    return np.maximum(out, np.zeros((), out.dtype)) if relu else out


@given(dtype=float_dtypes, n=st.integers(1, 2), h=st.integers(1, 8), w=st.integers(1, 14),
       c=st.sampled_from([1, 3, 16]), oc_vec=st.sampled_from([1, 2, 5]), k=st.integers(1, 5),
       stride=st.integers(1, 2), padding=paddings, seed=seeds, split=st.booleans(),
       by_rows=st.booleans(), bias=st.booleans(), relu=st.booleans())
def test_conv_store_epilogue_is_the_ops_one_after_the_other(dtype, n, h, w, c, oc_vec, k, stride,
                                                           padding, seed, split, by_rows, bias,
                                                           relu):
    # Bit for bit: the tile adds the bias to the sum it would have stored, and relu
    # keeps NaN and sends -0.0 to +0.0 as NumPy's maximum(x, 0); by_rows applies them in
    # the last of several window-row blocks.
    oc = oc_vec * convkernels.lanes(dtype)
    rng = np.random.default_rng(seed)
    node = conv_node("Conv2D", dtype, (stride, stride), padding)
    x, f = conv_args("Conv2D", rng, dtype, (n, h, w, c), (k, k, c, oc), (stride, stride),
                     padding)
    x = sprinkle(rng, x, (np.nan, np.inf, -np.inf))
    b = sprinkle(rng, rand(rng, (oc,), dtype), (-0.0,)) if bias else None
    with mock.patch.object(library, "_L1_BYTES", 0 if by_rows else library._L1_BYTES), \
            tiny_pieces(split):
        got = library.conv2d_epilogue(node, [x, f], b, relu)
        if got is None:  # the VALID window is larger than the input
            assert out_size(h, k, stride, padding) == 0 or out_size(w, k, stride, padding) == 0
            return
        (conv,) = library.conv2d(node, [x, f])
    want = _bias_relu(conv, b, relu)
    np.testing.assert_array_equal(got[0], want)
    assert np.array_equal(np.signbit(got[0]), np.signbit(want))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("real", [(0, 12), (6, 7), (3, 9), (5, 5)])
def test_conv_kernel_skips_only_padding_rows(dtype, real):
    # The kernel's contract: rows outside [rt, rb) are zeros, and windows skip them. With
    # (6, 7) the first and last output rows see none but padding (their tiles are written
    # by block 0: the bias through relu), (5, 5) has no real row at all; by window-row
    # blocks (ib = 1) and whole windows (ib = kh), tiles crossing row and image ends.
    rng = np.random.default_rng(4)
    ln = convkernels.lanes(dtype)
    n, hp, wp, c, kh, kw, oc = 3, 12, 5, 3, 3, 2, 2 * ln
    x = rand(rng, (n, hp, wp, c), dtype)
    x[:, :real[0]] = 0
    x[:, real[1]:] = 0
    f, b = rand(rng, (kh, kw, c, oc), dtype), rand(rng, (oc,), dtype)
    oh, ow = hp - kh + 1, wp - kw + 1
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))
    conv = np.einsum("nyxcij,ijco->nyxo", win.astype(np.float64), f.astype(np.float64))
    want = np.maximum(conv + b, 0)
    fn = convkernels.conv_kernel(dtype, oc)
    for ib in (1, kh):
        out = np.full((n, oh, ow, oc), np.nan, dtype)
        fn(x.ctypes.data, f.ctypes.data, out.ctypes.data, b.ctypes.data, 0, n * oh * ow, oh,
           ow, wp * c, hp * wp * c, wp * c, c, kh, kw * c, ib,
           convkernels.BIAS | convkernels.RELU, 1, *real)
        np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4)


def test_filters_are_read_from_cache_line_aligned_memory():
    raw = np.arange(6 * 16 + 1, dtype=np.float32)[1:].reshape(6, 16)  # 4 bytes past a line?
    a = library._aligned(raw)
    assert a.ctypes.data % 64 == 0 and a.flags.c_contiguous
    np.testing.assert_array_equal(a, raw)
    t = library._aligned(raw.T)  # a transposed view: copied in C order
    assert t.ctypes.data % 64 == 0 and t.flags.c_contiguous
    np.testing.assert_array_equal(t, raw.T)
    b = library._aligned(a)
    assert b is a  # already aligned: not copied


def test_conv_store_epilogue_declines_what_it_does_not_take():
    rng = np.random.default_rng(3)
    lanes = convkernels.lanes(np.float32)
    node = conv_node("Conv2D", np.float32, (1, 1), "SAME")
    x, f = conv_args("Conv2D", rng, np.float32, (1, 5, 5, 2), (3, 3, 2, lanes), (1, 1), "SAME")
    assert library.conv2d_epilogue(node, [x, f], np.ones(lanes, np.float64), True) is None
    assert library.conv2d_epilogue(node, [x, f], np.ones((5, lanes), np.float32), True) is None
    assert library.conv2d_epilogue(node, [x, f[..., :3]], None, True) is None  # 3 channels
    b = np.arange(lanes, dtype=np.float32).reshape(1, 1, 1, lanes)  # [oc] broadcast in 4-D
    (got,) = library.conv2d_epilogue(node, [x, f], b, False)
    np.testing.assert_array_equal(got, library.conv2d(node, [x, f])[0] + b)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("op", CONV_OPS)
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_conv_batches_padded_image_chunks_per_thread_match(op, dtype, padding):
    # Batches of several images per thread: each thread pads its own chunks of images
    # (one image per chunk here, or all of a thread's at once) and convolves them.
    lanes = convkernels.lanes(dtype)
    rng = np.random.default_rng(6)
    node = conv_node(op, dtype, (1, 2), padding)
    args = conv_args(op, rng, dtype, (13, 5, 7, lanes), (3, 2, lanes, 2 * lanes), (1, 2),
                     padding)
    for chunk in (1, library._PAD_CHUNK_BYTES):
        with mock.patch.object(library, "_PAD_CHUNK_BYTES", chunk):
            check_sum(node, args)
            check_sum(node, args, split=True)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("op", CONV_OPS)
def test_conv_tiles_by_window_rows_match(op, dtype):
    # Filters too big for L1 are taken a window row at a time by groups of tiles that
    # add onto their outputs: forced here on a case with many groups and a remainder.
    lanes = convkernels.lanes(dtype)
    rng = np.random.default_rng(5)
    node = conv_node(op, dtype, (1, 1), "SAME")
    args = conv_args(op, rng, dtype, (2, 9, 17, lanes), (3, 4, lanes, 2 * lanes), (1, 1), "SAME")
    with mock.patch.object(library, "_L1_BYTES", 0):
        check_sum(node, args)
        check_sum(node, args, split=True)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("op", CONV_OPS)
@pytest.mark.parametrize("x_shape, f_shape, strides, padding", [
    ((0, 5, 5, 3), (3, 3, 3, 4), (1, 1), "SAME"),  # empty batch
    ((2, 1, 1, 2), (1, 1, 2, 3), (1, 1), "SAME"),  # 1x1 image, 1x1 filter (one GEMM)
    ((2, 1, 1, 2), (3, 3, 2, 3), (1, 1), "SAME"),  # 1x1 image, all but one tap padding
    ((2, 7, 8, 3), (2, 2, 3, 2), (3, 4), "SAME"),  # stride > kernel, even kernel
    ((2, 6, 6, 5), (4, 2, 5, 2), (1, 2), "SAME"),  # even kernels: padding after > before
    ((2, 6, 6, 5), (1, 1, 5, 2), (2, 2), "VALID"),  # 1x1 strided: im2col, not one GEMM
    ((1, 4, 4, 6), (4, 4, 6, 3), (1, 1), "VALID"),  # window = image
    ((2, 5, 5, 0), (3, 3, 0, 2), (1, 1), "SAME"),  # no input channels
    ((2, 5, 5, 2), (3, 3, 2, 0), (1, 1), "SAME"),  # no output channels
])
def test_conv_edges(op, dtype, x_shape, f_shape, strides, padding):
    rng = np.random.default_rng(7)
    node = conv_node(op, dtype, strides, padding)
    args = conv_args(op, rng, dtype, x_shape, f_shape, strides, padding)
    check_sum(node, args)
    check_sum(node, args, split=True)


@pytest.mark.parametrize("op", CONV_OPS)
@pytest.mark.parametrize("channels", [(3, 2), (16, 16)])  # im2col; register-blocked tiles
def test_conv_nonfinite_and_large(op, channels):
    rng = np.random.default_rng(3)
    c, oc = channels
    node = conv_node(op, np.float32, (1, 1), "SAME")
    args = conv_args(op, rng, np.float32, (2, 5, 6, c), (3, 3, c, oc), (1, 1), "SAME")
    for k, a in enumerate(args):
        if a.dtype.kind == "f":
            # inf times padding's zeros gives NaN, as in the reference.
            args[k] = sprinkle(rng, a, (np.nan, np.inf, -np.inf, 1e30))
    check_sum(node, args)
    # Every product of two of these overflows (|a*b| >= 2.5e39): every output with an
    # in-bounds term overflows too. Which infinity, or NaN, is not the reference's to
    # decide: it rounds each product to inf and gets NaN where both signs meet, while a
    # fused multiply-add (BLAS's and convkernels') keeps the first infinity it reaches.
    big = [np.float32(1e20) * rng.uniform(0.5, 2, a.shape).astype(np.float32)
           * rng.choice(np.float32([-1, 1]), a.shape) if a.dtype.kind == "f" else a
           for a in conv_args(op, rng, np.float32, (2, 5, 6, c), (3, 3, c, oc), (1, 1), "SAME")]
    actual, expected = evaluate(node, big)
    np.testing.assert_array_equal(np.isfinite(actual[0]), np.isfinite(expected[0]))
    assert not np.isfinite(expected[0]).all()


def test_conv_bad_runtime_shapes_raise_the_reference_errors():
    node = conv_node("Conv2D", np.float32, (1, 1), "VALID")
    x = np.ones((1, 4, 4, 3), np.float32)
    check_sum(node, [x, np.ones((3, 3, 2, 1), np.float32)])  # channel mismatch
    check_sum(node, [x, np.ones((5, 5, 3, 1), np.float32)])  # window larger than input
    check_sum(node, [x, np.ones((0, 3, 3, 1), np.float32)])  # empty window
    bi = conv_node("Conv2DBackpropInput", np.float32, (1, 1), "SAME")
    f = np.ones((3, 3, 3, 2), np.float32)
    check_sum(bi, [np.array([1, 4, 4, 3], np.int32), f, np.ones((1, 4, 5, 2), np.float32)])
    check_sum(bi, [np.array([1, 4, 4], np.int32), f, np.ones((1, 4, 4, 2), np.float32)])
    check_sum(bi, [np.array([1, -4, 4, 3], np.int32), f, np.ones((1, 4, 4, 2), np.float32)])
    bf = conv_node("Conv2DBackpropFilter", np.float32, (1, 1), "SAME")
    check_sum(bf, [x, np.array([3, 3, 3, 2], np.int32), np.ones((2, 4, 4, 2), np.float32)])
    check_sum(bf, [x, np.array([3, 3, 3, 2], np.int64), np.ones((1, 4, 4, 2), np.float32)])


# --- Winograd convolutions -----------------------------------------------------------------
WINOGRAD_OPS = ["Conv2D", "Conv2DBackpropInput"]


WGRAD_OPS = ["Conv2DBackpropFilter", "_Conv2DBackpropFilterWithBias"]


@contextlib.contextmanager
def winograd_only() -> Iterator[None]:
    """Every 5x5 stride-1 convolution with whole vectors of channels goes the Winograd way,
    however small; the direct kernels' drivers raise if called."""
    with mock.patch.object(library, "WINOGRAD", True), \
            mock.patch.object(library, "_WINOGRAD_MIN_WORK", 0), \
            mock.patch.object(library, "_conv_rows", side_effect=AssertionError("direct")), \
            mock.patch.object(convkernels, "wgrad_kernel", side_effect=AssertionError("direct")):
        yield


def tile_scale(scale: np.ndarray, m: int) -> np.ndarray:
    """Per output of ``[n, h, w, c]``, the largest ``scale`` among its m x m Winograd tile's
    outputs (the transforms mix a tile's patch, so its rounding is relative to those)."""
    n, h, w, c = scale.shape
    th, tw = -(-h // m), -(-w // m)
    tiles = np.pad(scale.astype(np.float64), ((0, 0), (0, th * m - h), (0, tw * m - w), (0, 0)))
    tiles = tiles.reshape(n, th, m, tw, m, c).max(axis=(2, 4))
    return tiles.repeat(m, axis=1).repeat(m, axis=2)[:, :h, :w]


def check_winograd_wgrad(node: Any, args: list, split: bool = False) -> None:
    """The filter gradient within ``4 * TOL`` of the largest scale among the 25 taps of
    its channel pair (F(5x5, 2x2)'s transforms mix them; measured worst 7.7e-6 in float32
    against 3e-7 direct); the bias's as :func:`check_sum`'s."""
    actual, expected = evaluate(node, args, split)
    if actual is None:
        return
    absolute = [np.abs(a) if a.dtype.kind == "f" else a for a in args]
    scale = eval_node(node, absolute, None)
    taps = scale[0].astype(np.float64).max(axis=(0, 1), keepdims=True)
    assert_close(actual[0], expected[0], 4 * taps + np.finfo(np.float32).tiny)
    for a, e, sc in zip(actual[1:], expected[1:], scale[1:]):
        assert_close(a, e, np.abs(sc.astype(np.float64)) + np.finfo(e.dtype).tiny)


@pytest.mark.parametrize("taps", sorted(winograd.SCHEMES))
def test_winograd_matrices_compute_the_correlations(taps):
    # F(m x m, taps x taps) for the convolution, F(taps x taps, m x m) for the filter
    # gradient (its G's denominators in its A^T), both with the one B^T.
    sch = winograd.SCHEMES[taps]
    m, bt = sch.m, winograd.B_T
    rng = np.random.default_rng(0)
    for _ in range(20):
        d, g = rng.standard_normal((6, 6)), rng.standard_normal((taps, taps))
        want = np.array([[np.sum(d[i:i + taps, j:j + taps] * g) for j in range(m)]
                         for i in range(m)])
        got = sch.a_t @ ((sch.g @ g @ sch.g.T) * (bt @ d @ bt.T)) @ sch.a_t.T
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
        dy = rng.standard_normal((m, m))
        want = np.array([[np.sum(d[i:i + m, j:j + m] * dy) for j in range(taps)]
                         for i in range(taps)])
        got = sch.a_t_wgrad @ ((sch.g_wgrad @ dy @ sch.g_wgrad.T) * (bt @ d @ bt.T)) \
            @ sch.a_t_wgrad.T
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    f = rng.standard_normal((taps, taps, 2, 3))
    u = np.empty((36, 6), np.float64)
    library._winograd_filter(f.reshape(taps, taps * 6), sch.g, u)
    want = np.einsum("ai,ijco,bj->abco", sch.g, f, sch.g).reshape(36, 6)
    np.testing.assert_allclose(u, want, rtol=1e-13, atol=1e-13)


TAPS = sorted(winograd.SCHEMES)


@pytest.mark.parametrize("taps", TAPS)
@pytest.mark.parametrize("op", WINOGRAD_OPS)
@given(n=st.sampled_from([1, 2, 13]), h=st.integers(1, 11), w=st.integers(1, 11),
       c_vec=st.sampled_from([1, 2]), oc_vec=st.sampled_from([1, 2, 5]), padding=paddings,
       seed=seeds, split=st.booleans())
def test_winograd_conv_random(op, taps, n, h, w, c_vec, oc_vec, padding, seed, split):
    # Odd sizes leave tiles past the last row or column; 5 vectors of output channels
    # are a chunk of 4 and one of 1; 13 images with split are whole images per thread,
    # else tiles are split (blocks of tiles cut short).
    dtype = np.float32
    lanes = convkernels.lanes(dtype)
    c, oc = c_vec * lanes, oc_vec * lanes
    if op == "Conv2DBackpropInput":
        c, oc = oc, c
    rng = np.random.default_rng(seed)
    node = conv_node(op, dtype, (1, 1), padding)
    args = conv_args(op, rng, dtype, (n, h, w, c), (taps, taps, c, oc), (1, 1), padding)
    # Within TOL of the largest scale in the output's tile: an output with few terms of
    # its own (at the border, heavy padding) rounds like its tile's others.
    with winograd_only():
        actual, expected = evaluate(node, args, split)
    if actual is None:
        return
    absolute = [np.abs(a) if a.dtype.kind == "f" else a for a in args]
    (scale,) = eval_node(node, absolute, None)
    m = winograd.SCHEMES[taps].m
    assert_close(actual[0], expected[0], tile_scale(scale, m) + np.finfo(np.float32).tiny)


@pytest.mark.parametrize("taps", TAPS)
@pytest.mark.parametrize("op", WINOGRAD_OPS)
def test_winograd_tiles_not_finite_are_computed_directly(op, taps):
    # An inf or NaN spreads over its whole tile in the transforms: such tiles must come
    # out as the direct sum's.
    rng = np.random.default_rng(5)
    node = conv_node(op, np.float32, (1, 1), "SAME")
    args = conv_args(op, rng, np.float32, (2, 9, 10, 16), (taps, taps, 16, 16), (1, 1), "SAME")
    k = -1 if op == "Conv2DBackpropInput" else 0
    args[k] = sprinkle(rng, args[k], (np.nan, np.inf, -np.inf))
    real = convkernels.conv_kernel
    calls = []

    def counted(dtype: Any, oc: int) -> Any:
        fn = real(dtype, oc)
        return lambda *a: (calls.append(a[4:6]), fn(*a))

    with winograd_only(), mock.patch.object(convkernels, "conv_kernel", counted):
        check_sum(node, args)
    m = winograd.SCHEMES[taps].m
    rows = 2 * 9 * -(-10 // m)  # a call per output row of a tile
    assert 0 < len(calls) < rows  # some tiles again, not all


@pytest.mark.parametrize("taps", TAPS)
@pytest.mark.parametrize("op", WINOGRAD_OPS)
@pytest.mark.parametrize("big", [1e35, 2e37])
def test_winograd_large_magnitudes_round_to_their_tiles_scale(op, big, taps):
    # The transforms mix a tile's whole 6x6 patch, so an output's rounding error is a
    # fraction of the largest scale among its tile's four outputs (not of its own, when
    # a neighbour's window holds a huge value). 2e37 overflows the transforms of some
    # tiles (the direct sums stay finite: the filter is small): computed again directly.
    rng = np.random.default_rng(8)
    node = conv_node(op, np.float32, (1, 1), "SAME")
    args = conv_args(op, rng, np.float32, (2, 9, 10, 16), (taps, taps, 16, 16), (1, 1), "SAME")
    args[1] = (args[1] * np.float32(1e-3)).astype(np.float32)
    k = -1 if op == "Conv2DBackpropInput" else 0
    args[k] = sprinkle(rng, args[k], (big, -big))
    with winograd_only():
        (got,), (want,) = evaluate(node, args)
    absolute = [np.abs(a) if a.dtype.kind == "f" else a for a in args]
    (scale,) = eval_node(node, absolute, None)
    assert np.isfinite(want).all() and np.isfinite(got).all()
    assert_close(got, want, 10 * tile_scale(scale, winograd.SCHEMES[taps].m))


@pytest.mark.parametrize("taps", TAPS)
@pytest.mark.parametrize("op", WGRAD_OPS)
@given(n=st.sampled_from([1, 2, 13]), h=st.integers(1, 11), w=st.integers(1, 11),
       c_vec=st.sampled_from([1, 2]), oc_vec=st.sampled_from([1, 2, 5]), padding=paddings,
       seed=seeds, split=st.booleans())
def test_winograd_filter_gradient_random(op, taps, n, h, w, c_vec, oc_vec, padding, seed,
                                         split):
    dtype = np.float32
    lanes = convkernels.lanes(dtype)
    c, oc = c_vec * lanes, oc_vec * lanes
    rng = np.random.default_rng(seed)
    node = conv_node(op, dtype, (1, 1), padding)
    args = conv_args(op, rng, dtype, (n, h, w, c), (taps, taps, c, oc), (1, 1), padding)
    with winograd_only():
        check_winograd_wgrad(node, args, split)


@pytest.mark.parametrize("taps", TAPS)
@pytest.mark.parametrize("op", WGRAD_OPS)
@pytest.mark.parametrize("where", [0, 2])
@pytest.mark.parametrize("values", [(np.nan,), (np.inf, -np.inf), (3e38,)])
def test_winograd_filter_gradient_not_finite_is_direct(op, where, values, taps):
    # An inf or NaN in the input (0) or gradient (2), or a sum that overflows, makes a
    # transformed sum not finite: the whole gradient is the direct kernel's then.
    rng = np.random.default_rng(9)
    node = conv_node(op, np.float32, (1, 1), "SAME")
    args = conv_args(op, rng, np.float32, (2, 9, 10, 16), (taps, taps, 16, 16), (1, 1), "SAME")
    args[where] = sprinkle(rng, args[where], values)
    real = convkernels.wgrad_kernel
    with mock.patch.object(library, "_WINOGRAD_MIN_WORK", 0), \
            mock.patch.object(convkernels, "wgrad_kernel", side_effect=real) as direct:
        check_sum(node, args)
    assert direct.called


def test_winograd_takes_only_finite_float32_filters_and_can_be_turned_off():
    rng = np.random.default_rng(6)
    node = conv_node("Conv2D", np.float32, (1, 1), "SAME")
    x, f = conv_args("Conv2D", rng, np.float32, (2, 6, 6, 16), (5, 5, 16, 16), (1, 1), "SAME")
    bad = sprinkle(rng, f, (np.inf,))
    with mock.patch.object(library, "_WINOGRAD_MIN_WORK", 0), \
            mock.patch.object(winograd, "kernel", side_effect=AssertionError("winograd")):
        check_sum(node, [x, bad])  # the direct kernel: inf times padding is NaN
        with mock.patch.object(library, "WINOGRAD", False):
            check_sum(node, [x, f])
        node64 = conv_node("Conv2D", np.float64, (1, 1), "SAME")
        check_sum(node64, [x.astype(np.float64), f.astype(np.float64)])
    with winograd_only():
        check_sum(node, [x, f])


@given(taps=st.sampled_from(TAPS), n=st.sampled_from([1, 13]), h=st.integers(1, 9),
       w=st.integers(1, 9), oc_vec=st.sampled_from([1, 5]), padding=paddings, seed=seeds,
       split=st.booleans(), bias=st.booleans(), relu=st.booleans(), nonfinite=st.booleans())
def test_winograd_store_epilogue_is_the_ops_one_after_the_other(taps, n, h, w, oc_vec, padding,
                                                                seed, split, bias, relu,
                                                                nonfinite):
    # Bit for bit, also in tiles computed again by the direct kernel (nonfinite).
    dtype = np.float32
    lanes = convkernels.lanes(dtype)
    c, oc = lanes, oc_vec * lanes
    rng = np.random.default_rng(seed)
    node = conv_node("Conv2D", dtype, (1, 1), padding)
    x, f = conv_args("Conv2D", rng, dtype, (n, h, w, c), (taps, taps, c, oc), (1, 1), padding)
    if nonfinite:
        x = sprinkle(rng, x, (np.nan, np.inf, -np.inf))
    b = sprinkle(rng, rand(rng, (oc,), dtype), (-0.0,)) if bias else None
    with winograd_only(), tiny_pieces(split):
        got = library.conv2d_epilogue(node, [x, f], b, relu)
        if got is None:  # the VALID window is larger than the input
            assert padding == "VALID" and min(h, w) < taps
            return
        (conv,) = library.conv2d(node, [x, f])
    want = _bias_relu(conv, b, relu)
    np.testing.assert_array_equal(got[0], want)
    assert np.array_equal(np.signbit(got[0]), np.signbit(want))


# --- matrix products ----------------------------------------------------------------------
def matmul_node(dtype: Any, ta: bool, tb: bool) -> Any:
    return node_of(lambda: gf.matmul(ph(dtype, 2), ph(dtype, 2), transpose_a=ta, transpose_b=tb))


@given(dtype=float_dtypes, m=st.integers(0, 9), k=st.integers(0, 9), n=st.integers(0, 9),
       ta=st.booleans(), tb=st.booleans(), seed=seeds, split=st.booleans())
def test_matmul_random(dtype, m, k, n, ta, tb, seed, split):
    rng = np.random.default_rng(seed)
    a = rand(rng, (k, m) if ta else (m, k), dtype)
    b = rand(rng, (n, k) if tb else (k, n), dtype)
    check_sum(matmul_node(dtype, ta, tb), [a, b], split)


def test_matmul_mismatch_and_nonfinite():
    node = matmul_node(np.float32, False, False)
    check_sum(node, [np.ones((2, 3), np.float32), np.ones((4, 5), np.float32)])  # k differs
    rng = np.random.default_rng(1)
    a = sprinkle(rng, rand(rng, (6, 5), np.float32), (np.nan, np.inf, -np.inf))
    check_sum(node, [a, rand(rng, (5, 7), np.float32)])


@pytest.fixture
def blas_threads_seen(monkeypatch):
    """The BLAS's thread count at each np.matmul blas.matmul makes, in order."""
    seen = []
    real = np.matmul

    def spy(a, b, out=None):
        seen.append(blas.threads())
        return real(a, b, out=out)

    monkeypatch.setattr(blas.np, "matmul", spy)
    return seen


def test_small_products_run_on_one_blas_thread_and_restore_it(monkeypatch, blas_threads_seen):
    seen = blas_threads_seen
    monkeypatch.setattr(blas, "_last_large", [-1.0])  # no large product just before
    with threadpoolctl.threadpool_limits(2, user_api="blas"):  # whatever the environment says
        assert blas.threads() == 2
        a, b = np.ones((8, 8), np.float32), np.ones((8, 8), np.float32)
        out = np.empty((8, 8), np.float32)
        blas.matmul(a, b, out)
        assert seen == [1] and blas.threads() == 2
        np.testing.assert_array_equal(out, 8)
        big = np.ones((256, 256), np.float32)  # 16M multiply-adds: the BLAS's own threads
        blas.matmul(big, big, np.empty((256, 256), np.float32))
        assert seen[-1] == 2


def test_small_products_keep_the_blas_threads_while_its_workers_spin(monkeypatch,
                                                                     blas_threads_seen):
    seen = blas_threads_seen
    a, out = np.ones((8, 8), np.float32), np.empty((8, 8), np.float32)
    big = np.ones((256, 256), np.float32)
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        # (Either window, by whether the BLAS runs on graphflow's pool.)
        monkeypatch.setattr(blas, "SPINNING_S", 60.0)
        monkeypatch.setattr(blas, "_POOL_SPINNING_S", 60.0)
        blas.matmul(big, big, np.empty((256, 256), np.float32))  # its workers now spin
        blas.matmul(a, a, out)
        assert seen == [2, 2]
        monkeypatch.setattr(blas, "SPINNING_S", 0.0)  # long ago: they sleep, stay serial
        monkeypatch.setattr(blas, "_POOL_SPINNING_S", 0.0)
        blas.matmul(a, a, out)
        assert seen == [2, 2, 1] and blas.threads() == 2
    np.testing.assert_array_equal(out, 8)


def test_products_run_plain_numpy_when_no_blas_is_found(monkeypatch):
    monkeypatch.setattr(blas, "_controllers", [])
    assert blas.threads() == 1
    a = np.arange(12, dtype=np.float64).reshape(3, 4)
    out = np.empty((3, 3))
    blas.matmul(a, a.T, out)
    np.testing.assert_array_equal(out, a @ a.T)


def test_matmul_rows_split_over_threads_match():
    rng = np.random.default_rng(2)
    a, b = rand(rng, (300, 40), np.float32), rand(rng, (40, 33), np.float32)
    check_sum(matmul_node(np.float32, False, False), [a, b], split=True)


# --- pooling --------------------------------------------------------------------------------
POOL_OPS = ["MaxPool", "AvgPool", "MaxPoolGrad", "_MaxPoolReluGrad", "AvgPoolGrad",
            "_MaxPoolWithRoute", "_MaxPoolWithRoute+", "_MaxPoolGradRoute"]
# (made by the compiler's remap pass; "+": the positive routes after a relu)


def pool_node(op: str, dtype: Any, ksize: tuple, strides: tuple, padding: str,
              orig_size: tuple = (0, 0)) -> Any:
    attrs = {"ksize": (1, ksize[0], ksize[1], 1), "strides": (1, strides[0], strides[1], 1),
             "padding": padding, "data_format": "NHWC"}
    if op.startswith("_MaxPoolWithRoute"):
        return node_of(lambda: make("_MaxPoolWithRoute", [ph(dtype)],
                                    {**attrs, "positive": op.endswith("+")}, name="pool"))
    if op == "_MaxPoolGradRoute":
        return node_of(lambda: make(op, [ph(np.uint8), ph(dtype)],
                                    {**attrs, "orig_size": orig_size}, name="pool_grad"))
    if op == "MaxPool":
        return node_of(lambda: gf.nn.max_pool(ph(dtype), attrs["ksize"], attrs["strides"],
                                              padding))
    if op == "AvgPool":
        return node_of(lambda: gf.nn.avg_pool(ph(dtype), attrs["ksize"], attrs["strides"],
                                              padding))
    if op in ("MaxPoolGrad", "_MaxPoolReluGrad"):
        return node_of(lambda: make(op, [ph(dtype), ph(dtype), ph(dtype)], attrs,
                                    name="pool_grad"))
    return node_of(lambda: make("AvgPoolGrad", [ph(np.int32, 1), ph(dtype)], attrs))


def pool_args(op: str, rng: np.random.Generator, dtype: Any, x_shape: tuple, ksize: tuple,
              strides: tuple, padding: str, ties: bool = False) -> list:
    x = rand(rng, x_shape, dtype, ties)
    oh = out_size(x_shape[1], ksize[0], strides[0], padding)
    ow = out_size(x_shape[2], ksize[1], strides[1], padding)
    g = rand(rng, (x_shape[0], oh, ow, x_shape[3]), dtype)
    if op in ("MaxPool", "AvgPool") or op.startswith("_MaxPoolWithRoute"):
        return [x]
    if op == "_MaxPoolGradRoute":  # the routes of a relu'd pool of x
        pool = pool_node("_MaxPoolWithRoute+", dtype, ksize, strides, padding)
        try:
            return [eval_node(pool, [x], None)[1], g]
        except gf.errors.InvalidArgumentError:  # a window larger than x: the grad raises too
            return [np.zeros(g.shape, np.uint8), g]
    if op in ("MaxPoolGrad", "_MaxPoolReluGrad"):
        return [x, np.zeros_like(g), g]  # orig_output is not read
    return [np.array(x_shape, np.int32), g]


def check_pool(op: str, node: Any, args: list, split: bool = False) -> None:
    if op == "AvgPool":
        check_sum(node, args, split)
    else:
        check_exact(node, args, split)


@pytest.mark.parametrize("op", POOL_OPS)
@given(dtype=float_dtypes, n=st.integers(0, 3), h=st.integers(1, 9), w=st.integers(1, 9),
       c=st.integers(1, 6), kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3),
       sw=st.integers(1, 3), padding=paddings, ties=st.booleans(), seed=seeds,
       split=st.booleans())
def test_pool_random(op, dtype, n, h, w, c, kh, kw, sh, sw, padding, ties, seed, split):
    rng = np.random.default_rng(seed)
    node = pool_node(op, dtype, (kh, kw), (sh, sw), padding, (h, w))
    check_pool(op, node, pool_args(op, rng, dtype, (n, h, w, c), (kh, kw), (sh, sw), padding,
                                   ties), split)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("op", POOL_OPS)
@pytest.mark.parametrize("x_shape, ksize, strides, padding", [
    ((0, 4, 4, 2), (2, 2), (2, 2), "SAME"),  # empty batch
    ((2, 1, 1, 3), (1, 1), (1, 1), "VALID"),  # 1x1 image
    ((2, 1, 1, 3), (3, 3), (2, 2), "SAME"),  # 1x1 image in a window of padding
    ((1, 7, 9, 2), (2, 2), (3, 4), "SAME"),  # stride > kernel
    ((1, 6, 6, 2), (4, 2), (1, 1), "SAME"),  # even kernel, overlapping windows
    ((2, 5, 5, 0), (2, 2), (2, 2), "SAME"),  # no channels
    ((2, 7, 9, 3), (2, 2), (2, 2), "VALID"),  # tiling windows, a remainder no window reads
    ((1, 7, 8, 3), (3, 3), (3, 3), "SAME"),  # tiling windows padded on both sides
])
def test_pool_edges(op, dtype, x_shape, ksize, strides, padding):
    rng = np.random.default_rng(11)
    node = pool_node(op, dtype, ksize, strides, padding, x_shape[1:3])
    for ties in (False, True):
        args = pool_args(op, rng, dtype, x_shape, ksize, strides, padding, ties)
        check_pool(op, node, args)
        check_pool(op, node, args, split=True)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("op", POOL_OPS)
@pytest.mark.parametrize("window, stride", [((3, 3), (1, 2)), ((2, 2), (2, 2)),
                                            ((3, 2), (3, 2))])
def test_pool_nonfinite_and_ties(op, dtype, window, stride):
    # Max pooling: NaN wins the forward max; the gradient goes to the first strict
    # maximum, never to a later NaN, and stays with a NaN that comes first.
    rng = np.random.default_rng(5)
    node = pool_node(op, dtype, window, stride, "SAME", (7, 6))
    args = pool_args(op, rng, dtype, (2, 7, 6, 4), window, stride, "SAME", ties=True)
    args = [sprinkle(rng, a, (np.nan, np.nan, np.inf, -np.inf, 1e300 if dtype == np.float64
                              else 1e38)) if a.dtype.kind == "f" else a for a in args]
    check_pool(op, node, args)
    equal = [np.zeros_like(a) if a.dtype.kind == "f" else a for a in args]  # all tied
    check_pool(op, node, equal)


def test_max_pool_grad_routes_ties_to_the_first_maximum():
    node = pool_node("MaxPoolGrad", np.float32, (2, 2), (2, 2), "VALID")
    x = np.array([[1, 3], [3, 0]], np.float32).reshape(1, 2, 2, 1)
    (dx,) = library.max_pool_grad(node, [x, x[:, :1, :1], np.full((1, 1, 1, 1), 5, np.float32)])
    np.testing.assert_array_equal(dx.reshape(2, 2), [[0, 5], [0, 0]])
    x = np.array([[np.nan, 3], [4, 0]], np.float32).reshape(1, 2, 2, 1)
    (dx,) = library.max_pool_grad(node, [x, x[:, :1, :1], np.full((1, 1, 1, 1), 5, np.float32)])
    np.testing.assert_array_equal(dx.reshape(2, 2), [[5, 0], [0, 0]])


def test_pool_bad_runtime_shapes_raise_the_reference_errors():
    node = pool_node("MaxPool", np.float32, (3, 3), (1, 1), "VALID")
    check_exact(node, [np.ones((1, 2, 5, 1), np.float32)])  # window larger than input
    grad = pool_node("MaxPoolGrad", np.float32, (2, 2), (2, 2), "SAME")
    x = np.ones((1, 4, 4, 2), np.float32)
    check_exact(grad, [x, x, np.ones((1, 3, 2, 2), np.float32)])  # grad of the wrong shape
    avg = pool_node("AvgPoolGrad", np.float32, (2, 2), (2, 2), "SAME")
    check_exact(avg, [np.array([1, 4, 4, 2], np.int32), np.ones((1, 2, 3, 2), np.float32)])
    check_exact(avg, [np.array([1, 4, 4], np.int32), np.ones((1, 2, 2, 2), np.float32)])


# --- softmax and cross entropies ------------------------------------------------------------
def row_scale(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """1 + the largest |x - max| of each row: the size of log-softmax's terms."""
    with np.errstate(all="ignore"):
        m = np.max(x, axis=axis, keepdims=True, initial=-np.inf)
        s = np.max(np.abs(x - m), axis=axis, keepdims=True, initial=0.0)
    return 1 + np.where(np.isfinite(s), s, 0).astype(np.float64)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@given(dtype=float_dtypes, shape=st.lists(st.integers(0, 6), min_size=1, max_size=3),
       axis=st.integers(-3, 2), special=st.booleans(), seed=seeds, split=st.booleans())
def test_softmax_random(op, dtype, shape, axis, special, seed, split):
    rng = np.random.default_rng(seed)
    axis = axis % len(shape)
    fn = gf.nn.softmax if op == "Softmax" else gf.nn.log_softmax
    node = node_of(lambda: fn(ph(dtype, len(shape)), axis=axis))
    x = rand(rng, tuple(shape), dtype)
    if special:
        x = sprinkle(rng, x * 1e3, (np.nan, np.inf, -np.inf, np.finfo(dtype).max))
    actual, expected = evaluate(node, [x], split)
    with np.errstate(over="ignore"):  # near-max values: an infinite bound is fine
        scale = np.abs(expected[0]) + row_scale(x, axis)
    assert_close(actual[0], expected[0], scale)


def test_softmax_rows_of_minus_inf_and_empty_classes():
    for fn in (gf.nn.softmax, gf.nn.log_softmax):
        node = node_of(lambda fn=fn: fn(ph(np.float32, 2)))
        x = np.array([[-np.inf, -np.inf], [0, -np.inf], [np.inf, 1], [np.nan, 1]], np.float32)
        check_exact(node, [x])
        check_exact(node, [np.zeros((3, 0), np.float32)])
        check_exact(node, [np.zeros((0, 4), np.float32)])


@given(dtype=float_dtypes, batch=st.lists(st.integers(0, 5), min_size=0, max_size=2),
       classes=st.integers(1, 7), broadcast=st.booleans(), special=st.booleans(), seed=seeds,
       split=st.booleans())
def test_softmax_xent_random(dtype, batch, classes, broadcast, special, seed, split):
    rng = np.random.default_rng(seed)
    shape = tuple(batch) + (classes,)
    node = node_of(lambda: make("SoftmaxCrossEntropyWithLogits",
                                [ph(dtype, len(shape)), ph(dtype, len(shape))]))
    x = rand(rng, shape, dtype)
    labels = rng.dirichlet(np.ones(classes), size=shape[:-1]).astype(dtype)
    labels[rng.random(labels.shape) < 0.3] = 0
    if broadcast and batch:
        labels = labels[:1]  # broadcast against the logits' first dim
    if special:
        x = sprinkle(rng, x * 1e3, (np.nan, np.inf, -np.inf))
    actual, expected = evaluate(node, [x, labels], split)
    lp = np.broadcast_to(np.abs(x), expected[1].shape)
    term_scale = np.sum(np.abs(np.broadcast_to(labels, lp.shape)) * row_scale(lp), axis=-1)
    assert_close(actual[0], expected[0], np.abs(expected[0]) + term_scale + 1)
    assert_close(actual[1], expected[1], np.abs(expected[1]) + 1)


def test_softmax_xent_edges():
    node = node_of(lambda: make("SoftmaxCrossEntropyWithLogits",
                                [ph(np.float64, 2), ph(np.float64, 2)]))
    # a zero label times a -inf log-probability is NaN, as in the reference
    check_exact(node, [np.array([[0.0, -np.inf]]), np.array([[1.0, 0.0]])])
    check_exact(node, [np.zeros((2, 0)), np.zeros((2, 0))])  # no classes: loss -0.0
    check_exact(node, [np.zeros((2, 3)), np.zeros((3, 3))])  # not broadcastable: error


@given(dtype=float_dtypes, label_dtype=st.sampled_from([np.int32, np.int64]),
       batch=st.lists(st.integers(0, 5), min_size=0, max_size=2), classes=st.integers(1, 7),
       special=st.booleans(), seed=seeds, split=st.booleans())
def test_sparse_xent_random(dtype, label_dtype, batch, classes, special, seed, split):
    rng = np.random.default_rng(seed)
    shape = tuple(batch) + (classes,)
    node = node_of(lambda: make("SparseSoftmaxCrossEntropyWithLogits",
                                [ph(dtype, len(shape)), ph(label_dtype, len(batch))]))
    x = rand(rng, shape, dtype)
    labels = rng.integers(0, classes, tuple(batch)).astype(label_dtype)
    if special:
        x = sprinkle(rng, x * 1e3, (np.nan, np.inf, -np.inf))
    actual, expected = evaluate(node, [x, labels], split)
    scale = row_scale(x)
    assert_close(actual[0], expected[0], np.abs(expected[0]) + scale[..., 0])
    assert_close(actual[1], expected[1], np.abs(expected[1]) + 1)


def test_sparse_xent_bad_labels_raise_the_reference_errors():
    node = node_of(lambda: make("SparseSoftmaxCrossEntropyWithLogits",
                                [ph(np.float32, 2), ph(np.int64, 1)]))
    x = np.zeros((3, 4), np.float32)
    check_exact(node, [x, np.array([0, 4, 1])])
    check_exact(node, [x, np.array([0, -1, 1])])
    check_exact(node, [x, np.array([0, 1])])
    check_exact(node, [np.zeros((0, 4), np.float32), np.zeros(0, np.int64)])


# --- reductions -----------------------------------------------------------------------------
@given(dtype=float_dtypes, shape=st.lists(st.integers(0, 7), min_size=2, max_size=4),
       special=st.booleans(), seed=seeds, split=st.booleans())
def test_bias_add_grad_random(dtype, shape, special, seed, split):
    rng = np.random.default_rng(seed)
    node = node_of(lambda: make("BiasAddGrad", [ph(dtype, len(shape))],
                                {"data_format": "NHWC"}))
    dy = rand(rng, tuple(shape), dtype)
    if special:
        dy = sprinkle(rng, dy, (np.nan, np.inf, 1e30))
    check_sum(node, [dy], split)


@given(dtype=float_dtypes, rows=st.integers(0, 12), tail=st.lists(st.integers(0, 4), max_size=2),
       num=st.integers(0, 5), id_dtype=st.sampled_from([np.int32, np.int64]),
       two_d=st.booleans(), seed=seeds, split=st.booleans())
def test_unsorted_segment_sum_random(dtype, rows, tail, num, id_dtype, two_d, seed, split):
    rng = np.random.default_rng(seed)
    ids = rng.integers(-1, max(num, 1), rows).astype(id_dtype)  # -1s are dropped
    data = rand(rng, (rows,) + tuple(tail), dtype)
    if two_d and rows % 2 == 0:
        ids, data = ids.reshape(2, -1), data.reshape((2, rows // 2) + tuple(tail))
    node = node_of(lambda: gf.math.unsorted_segment_sum(
        ph(dtype, data.ndim), ph(id_dtype, ids.ndim), ph(id_dtype, 0)))
    # num == 0 with non-negative ids exercises the reference's out-of-range error.
    check_exact(node, [data, ids, np.array(num, id_dtype)], split)


# --- lowering -------------------------------------------------------------------------------
def test_lower_library_declines_what_the_kernels_do_not_implement():
    f16 = np.float16
    declined = [
        node_of(lambda: gf.nn.conv2d(ph(np.float32), ph(np.float32), 1, "SAME",
                                     data_format="NCHW")),
        node_of(lambda: gf.nn.conv2d(ph(np.float32), ph(np.float32), 1,
                                     [[0, 0], [1, 1], [1, 1], [0, 0]])),
        node_of(lambda: gf.nn.conv2d(ph(np.float32), ph(np.float32), 1, "SAME", dilations=2)),
        node_of(lambda: gf.nn.conv2d(ph(f16), ph(f16), 1, "SAME")),
        node_of(lambda: gf.nn.max_pool(ph(np.int32), 2, 2, "SAME")),
        node_of(lambda: gf.nn.avg_pool(ph(np.float32), 2, 2, "SAME", data_format="NCHW")),
        node_of(lambda: gf.nn.softmax(ph(f16, 2))),
        node_of(lambda: make("BiasAddGrad", [ph(np.float32)], {"data_format": "NCHW"})),
        node_of(lambda: gf.math.unsorted_segment_sum(ph(np.int32, 1), ph(np.int32, 1), 3)),
        node_of(lambda: gf.nn.relu(ph(np.float32))),
    ]
    for node in declined:
        assert library.lower_library(node) is None, node
    handled = node_of(lambda: gf.nn.conv2d(ph(np.float64), ph(np.float64), 2, "VALID"))
    assert library.lower_library(handled) is library.LIBRARY["Conv2D"]


def test_library_functions_fall_back_for_unhandled_attrs():
    # Called directly (not through lower_library), a kernel still gives the reference's
    # result for attrs it does not implement.
    rng = np.random.default_rng(2)
    node = node_of(lambda: gf.nn.conv2d(ph(np.float32), ph(np.float32), 1, "SAME",
                                        dilations=2))
    args = [rand(rng, (1, 6, 6, 2), np.float32), rand(rng, (3, 3, 2, 2), np.float32)]
    np.testing.assert_array_equal(library.conv2d(node, args)[0],
                                  eval_node(node, list(args), None)[0])
    node = node_of(lambda: make("BiasAddGrad", [ph(np.float32)], {"data_format": "NCHW"}))
    dy = rand(rng, (2, 3, 4, 5), np.float32)
    np.testing.assert_array_equal(library.bias_add_grad(node, [dy])[0],
                                  eval_node(node, [dy], None)[0])
