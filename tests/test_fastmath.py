"""Accuracy, special cases and vectorisation of graphflow.kernels.cpu.fastmath.

float32: every float32 bit pattern in a stride of 4099 over the whole range (about
1M values) plus dense samples near 0 and near the over/underflow thresholds, against
a longdouble reference; max error in ulp of the correctly rounded float32 result.
float64: 1M+ random samples against longdouble (x86 80-bit: 11 extra bits).
Run with -s to see the measured figures and the speed ratio against libm.
"""

import math
import time

import numba
import numpy as np
import pytest

import graphflow.kernels.cpu.fastmath as fm

L = np.longdouble

# Measured max ulp (float32 whole range / float64 samples) when this file was written:
# exp 0.89/0.93, expm1 1.45/1.85, log 0.75/0.79, log1p 1.44/1.44, tanh 2.44/2.50,
# sigmoid 2.00/1.97, softplus 1.72/1.75, erf 1.62/-, pow POWX/- (float64 erf, pow: libm).
# Bounds leave headroom for other CPUs and libms.
F32_BOUND = 4.0
F64_BOUND = 4.0

REFS = {
    "exp": np.exp,
    "expm1": np.expm1,
    "log": np.log,
    "log1p": np.log1p,
    "tanh": np.tanh,
    "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
    "softplus": lambda v: np.logaddexp(L(0), v),
    # math.erf is a correctly rounded-ish float64 libm erf: ample for float32.
    "erf": lambda v: np.frompyfunc(math.erf, 1, 1)(v.astype(np.float64)).astype(np.float64),
}
# Names whose float64 slot is still libm (not vectorised, not measured here).
F64_LIBM = {"erf", "pow"}
UNARY = [name for name in fm.FASTMATH if name != "pow"]

_LOOPS = {}


def _loop(f):
    # One compiled array loop per scalar function; error_model="numpy" is what the
    # code generator uses and is needed for vectorisation (no zero-division checks).
    if f not in _LOOPS:

        @numba.njit(error_model="numpy")
        def run(x, out):
            for i in range(x.size):
                out[i] = f(x[i])

        _LOOPS[f] = run
    return _LOOPS[f]


def _apply(f, x):
    out = np.empty_like(x)
    _loop(f)(x, out)
    return out


def _f32_inputs():
    bits = np.arange(0, 2**32, 4099, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32)
    near0 = np.linspace(-1e-3, 1e-3, 20001, dtype=np.float32)
    tiny = np.arange(0, 2**24, 97, dtype=np.uint32).view(np.float32)  # denormals and up
    edges = [np.linspace(c - 1, c + 1, 20001, dtype=np.float32) for c in (88.72, -87.3, -103.9)]
    x = np.concatenate([x, near0, tiny, -tiny, *edges, np.float32([-1.0, 1.0, 0.5, 2.0])])
    return x[np.isfinite(x)]


X32 = _f32_inputs()


def _ulp_err(got, ref, ftype):
    # Error in units of the spacing of the correctly rounded result (denormal
    # spacing at the bottom); exact matches, including inf and NaN, count as 0.
    with np.errstate(all="ignore"):
        rr = ref.astype(ftype)
        sp = np.maximum(np.spacing(np.abs(rr)), np.finfo(ftype).smallest_subnormal)
        d = np.abs(got.astype(L) - ref) / sp.astype(L)
    same = (got == rr) | (np.isnan(got) & np.isnan(ref))
    return np.where(same, 0.0, d.astype(np.float64))


@pytest.mark.parametrize("name", UNARY)
def test_float32_whole_range(name):
    with np.errstate(all="ignore"):
        got = _apply(fm.FASTMATH[name][0], X32)
        ref = REFS[name](X32.astype(L))
    err = _ulp_err(got, ref, np.float32)
    i = int(np.argmax(err))
    print(f"\n{name} f32: max {err[i]:.2f} ulp at x={X32[i]!r} over {X32.size} values")
    assert err[i] <= F32_BOUND


def _f64_inputs(name, rng, n=1_000_000):
    small = rng.uniform(-1, 1, n) * np.exp(rng.uniform(-40, 0, n))
    if name in ("log", "log1p"):
        x = np.exp(rng.uniform(-700, 700, n))
        x = np.concatenate([x, x - 0.999, small, rng.uniform(0.5, 2, n // 4)])
        return x[x > (0 if name == "log" else -1)]
    lo, hi = {"exp": (-745, 709.7), "expm1": (-50, 709), "tanh": (-25, 25)}.get(name, (-745, 745))
    return np.concatenate([rng.uniform(lo, hi, n), small])


@pytest.mark.parametrize("name", sorted(set(UNARY) - F64_LIBM))
def test_float64_random(name):
    x = _f64_inputs(name, np.random.default_rng(1))
    got = _apply(fm.FASTMATH[name][1], x)
    err = _ulp_err(got, REFS[name](x.astype(L)), np.float64)
    i = int(np.argmax(err))
    print(f"\n{name} f64: max {err[i]:.2f} ulp at x={x[i]!r} over {x.size} samples")
    assert err[i] <= F64_BOUND


SPECIAL = {
    # name: [(x, expected)]
    "exp": [(np.inf, np.inf), (-np.inf, 0.0), (1000.0, np.inf), (-1000.0, 0.0), (0.0, 1.0)],
    "expm1": [(np.inf, np.inf), (-np.inf, -1.0), (1000.0, np.inf), (-1000.0, -1.0), (0.0, 0.0)],
    "log": [
        (0.0, -np.inf),
        (-0.0, -np.inf),
        (-1.0, np.nan),
        (-np.inf, np.nan),
        (np.inf, np.inf),
        (1.0, 0.0),
    ],
    "log1p": [(-1.0, -np.inf), (-2.0, np.nan), (np.inf, np.inf), (0.0, 0.0)],
    "tanh": [(np.inf, 1.0), (-np.inf, -1.0), (50.0, 1.0), (-50.0, -1.0), (0.0, 0.0)],
    "sigmoid": [(np.inf, 1.0), (-np.inf, 0.0), (0.0, 0.5), (800.0, 1.0), (-800.0, 0.0)],
    "softplus": [(np.inf, np.inf), (-np.inf, 0.0), (1e30, 1e30), (-1e30, 0.0)],
    "erf": [(np.inf, 1.0), (-np.inf, -1.0), (7.0, 1.0), (-7.0, -1.0), (0.0, 0.0)],
}


@pytest.mark.parametrize("name", UNARY)
@pytest.mark.parametrize("ftype", [np.float32, np.float64])
def test_special_values(name, ftype):
    impl = fm.FASTMATH[name][0 if ftype is np.float32 else 1]
    cases = SPECIAL[name] + [(np.nan, np.nan)]
    x = np.array([c[0] for c in cases], ftype)
    with np.errstate(all="ignore"):
        got = _apply(impl, x)
    np.testing.assert_array_equal(got, np.array([c[1] for c in cases], ftype))
    assert got.dtype == ftype
    if name in ("tanh", "expm1", "log1p", "erf"):  # odd near 0: the sign of zero survives
        assert np.signbit(_apply(impl, np.array([-0.0], ftype)))[0]


def test_tails_keep_denormals():
    # exp and sigmoid must round into the denormal range, not flush to zero.
    x = np.float32([-100.0, -103.0])
    assert np.all(_apply(fm.exp_f32, x) > 0)
    assert np.all(_apply(fm.sigmoid_f32, x) > 0)
    assert _apply(fm.softplus_f32, np.float32([-100.0]))[0] > 0


def test_tables_cover_same_names_and_libm_agrees():
    assert set(fm.FASTMATH) <= set(fm.LIBM)
    x = np.linspace(-3, 3, 101, dtype=np.float32)
    for name in UNARY:
        f32, f64 = fm.FASTMATH[name]
        if name in ("log", "log1p"):
            xx = np.abs(x) + np.float32(0.1)
        else:
            xx = x
        lib32, lib64 = fm.LIBM[name]
        np.testing.assert_allclose(_apply(f32, xx), _apply(lib32, xx), rtol=1e-6, atol=1e-7)
        x64 = xx.astype(np.float64)
        np.testing.assert_allclose(_apply(f64, x64), _apply(lib64, x64), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("name", UNARY)
def test_loops_vectorise(name):
    # The whole point: LLVM must emit SIMD for a loop calling these, in both widths.
    f32, f64 = fm.FASTMATH[name]
    _apply(f32, np.ones(4, np.float32))
    _apply(f64, np.ones(4, np.float64))
    ir32 = "".join(_loop(f32).inspect_llvm().values())
    ir64 = "".join(_loop(f64).inspect_llvm().values())
    assert "x float>" in ir32
    if name not in F64_LIBM:
        assert "x double>" in ir64


@pytest.mark.parametrize("name", ["exp", "log", "tanh", "sigmoid", "erf"])
def test_speed_vs_libm_report(name):
    # Reports only (timings on shared CI machines are too noisy to assert on).
    x = np.random.default_rng(0).uniform(0.01, 5, 10_000_000).astype(np.float32)
    out = np.empty_like(x)
    times = []
    for impl in (fm.FASTMATH[name][0], fm.LIBM[name][0]):
        run = _loop(impl)
        run(x[:8], out[:8])
        best = np.inf
        for _ in range(3):
            t = time.perf_counter()
            run(x, out)
            best = min(best, time.perf_counter() - t)
        times.append(best)
    print(
        f"\n{name} 10M f32: fast {times[0] * 1e3:.1f} ms, libm {times[1] * 1e3:.1f} ms, "
        f"speedup {times[1] / times[0]:.1f}x"
    )


@numba.njit(error_model="numpy")
def _pow_loop(x, y, out):
    for i in range(x.size):
        out[i] = fm.pow_f32(x[i], y[i])


def test_pow_float32_accuracy():
    # Every positive float32 in a stride, each with a random exponent, plus negative
    # bases with integer exponents (the sign path); reference in longdouble.
    rng = np.random.default_rng(2)
    bits = np.arange(0, 0x7F800000, 2053, dtype=np.uint32)
    x = bits.view(np.float32)
    y = rng.uniform(-4, 4, x.size).astype(np.float32)
    xn = -rng.uniform(0.1, 10, 200_000).astype(np.float32)
    yn = rng.integers(-30, 30, xn.size).astype(np.float32)
    xb = rng.uniform(0.5, 2, 200_000).astype(np.float32)  # large |y| stresses y*log(x)
    yb = rng.uniform(-120, 120, xb.size).astype(np.float32)
    x = np.concatenate([x, xn, xb])
    y = np.concatenate([y, yn, yb])
    got = np.empty_like(x)
    _pow_loop(x, y, got)
    with np.errstate(all="ignore"):
        ref = np.power(x.astype(L), y.astype(L))
    err = _ulp_err(got, ref, np.float32)
    i = int(np.argmax(err))
    print(f"\npow f32: max {err[i]:.2f} ulp at x={x[i]!r}, y={y[i]!r} over {x.size} pairs")
    assert err[i] <= F32_BOUND


def test_pow_float32_special_values_match_c99():
    v = np.float32(
        [
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            -0.5,
            2.0,
            -2.0,
            3.0,
            -3.0,
            np.inf,
            -np.inf,
            np.nan,
            1e-45,
            1e30,
            -2.5,
            0.25,
            7.0,
        ]
    )
    x, y = (a.ravel() for a in np.meshgrid(v, v))
    got = np.empty_like(x)
    _pow_loop(x, y, got)
    with np.errstate(all="ignore"):
        # C99's special cases hold in float64 too; rounding the float64 result gives the
        # correctly rounded float32 one. NumPy's own float32 power is not a reference:
        # on AVX-512 machines it is a SIMD approximation off by an ulp in finite cases.
        ref = np.power(x.astype(np.float64), y.astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(got, ref)
    num = ~np.isnan(ref)
    np.testing.assert_array_equal(np.signbit(got[num]), np.signbit(ref[num]))
    ir = "".join(_pow_loop.inspect_llvm().values())
    assert "x float>" in ir
