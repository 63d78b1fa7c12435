"""Vectorisable scalar math for generated Numba loops.

Calls to libm (``np.exp``, ``np.log``, ...) inside an ``@njit`` loop are opaque
to LLVM's loop vectoriser, so a fused elementwise chain containing one runs one
element at a time. The functions here are written with arithmetic, selects and
integer views of float bits only, so after inlining LLVM turns the loop into
SIMD code (``<8 x float>`` on AVX2).

Each function exists in a float32 and a float64 flavour with separate
coefficients; float32 versions use lower-degree polynomials. The code
generator picks implementations from ``FASTMATH`` (name -> (f32, f64)) or,
when the session asks for libm, from ``LIBM`` with the same layout.

Accuracy, measured by tests/test_fastmath.py over a stride through every
float32 bit pattern (plus dense samples near 0 and the thresholds) against a
longdouble reference, in max ulp (float32 / float64 on 2M+ random samples):
exp 0.89/0.93, expm1 1.45/1.90, log 0.75/0.83, log1p 1.44/1.44, tanh 2.44/2.49,
sigmoid 2.00/2.04, softplus 1.72/1.77, erf 1.62/-, pow 0.50/-. The tests assert
<= 4 ulp. erf and pow have no vectorisable float64 version yet: their float64
slot in ``FASTMATH`` is the libm function.

Callers must compile the loop with ``error_model="numpy"`` (see ``_JIT``).

Coefficients: exp's float32 polynomial is a weighted least-squares fit
(relative error, 2000 Chebyshev nodes, float64/longdouble arithmetic) of
``(expm1(r) - r) / r**2`` on [-ln2/2, ln2/2], max relative error 3.8e-9. The
float64 exp polynomial and the log atanh-series are truncated Taylor series
whose remainder is below 2**-56 on the reduced interval. ``LN2_HI`` constants
are ln2 rounded to a mantissa with trailing zero bits so ``k * LN2_HI`` is
exact for every exponent ``k`` that can occur (Cody-Waite reduction).
"""

import math

import numba
import numpy as np

__all__ = ["FASTMATH", "LIBM"]

# error_model="numpy": Python's model checks every division for zero, and that
# branch keeps LLVM from vectorising. Inlining happens at Numba IR level, so the
# calling loop must be compiled with error_model="numpy" too.
_JIT = {"inline": "always", "cache": True, "fastmath": False, "error_model": "numpy"}

_F = np.float32
_D = np.float64

# ---------------------------------------------------------------- float32 constants
_LOG2E_32 = _F(1.4426950408889634)
_LN2_HI_32 = _F(0.693145751953125)  # 0x3f317200: 9 trailing zero mantissa bits
_LN2_LO_32 = _F(1.4286067653301870e-06)  # ln2 - _LN2_HI_32
_EXP_LO_32 = _F(-104.0)  # exp(x) rounds to 0 below about -103.97
_EXP_HI_32 = _F(89.0)  # exp(x) overflows above about 88.72
_EM_BIG = 40.0  # above this expm1(x) == exp(x) to working precision
_TANH_LO_32 = _F(-20.0)  # -2|x| below this: tanh(x) rounds to +/-1 (from |x| > 9.01)
_Q0_32 = _F(0.49999988079071045)
_Q1_32 = _F(0.166665181517601)
_Q2_32 = _F(0.04166953265666962)
_Q3_32 = _F(0.008368915878236294)
_Q4_32 = _F(0.0013751407386735082)
_MIN_NORMAL_32 = _F(1.1754943508222875e-38)
_TWO24_32 = _F(16777216.0)
_SQRTH_BITS_32 = 0x3F3504F3  # bits of sqrt(0.5) in float32
_INF32 = _F(np.inf)
_NAN32 = _F(np.nan)
_ONE32 = _F(1.0)
_TWO32 = _F(2.0)
_HALF32 = _F(0.5)
_ZERO32 = _F(0.0)

# ---------------------------------------------------------------- float64 constants
_LOG2E_64 = _D(1.4426950408889634)
_LN2_HI_64 = _D(6.93147180369123816490e-01)  # ln2 with the low 32 mantissa bits cleared
_LN2_LO_64 = _D(1.90821492927058770002e-10)  # ln2 - _LN2_HI_64
_EXP_LO_64 = _D(-746.0)
_EXP_HI_64 = _D(710.0)
_MIN_NORMAL_64 = _D(2.2250738585072014e-308)
_TWO54_64 = _D(18014398509481984.0)
_SQRTH_BITS_64 = 0x3FE6A09E667F3BCD  # bits of sqrt(0.5) in float64
_MANT_MASK_64 = (1 << 52) - 1
_SIGN_64 = -(1 << 63)
_INF64 = np.inf
_NAN64 = np.nan


# ---------------------------------------------------------------- bit views
@numba.njit(**_JIT)
def _f2i32(x):
    return np.float32(x).view(np.int32)


@numba.njit(**_JIT)
def _i2f32(i):
    return np.int32(i).view(np.float32)


@numba.njit(**_JIT)
def _f2i64(x):
    return np.float64(x).view(np.int64)


@numba.njit(**_JIT)
def _i2f64(i):
    return np.int64(i).view(np.float64)


# ---------------------------------------------------------------- exp family, float32
@numba.njit(**_JIT)
def _exp_parts32(x):
    # Cody-Waite reduction x = k*ln2 + r, |r| <= ln2/2, and expm1(r) by polynomial.
    # The clamp keeps k in [-150, 128] (also maps NaN to the low end; callers fix NaN
    # up). 2**k is returned as two normal factors because 2**128 and 2**-150 are not
    # representable, while p*s1 stays exact and only the final product rounds.
    xc = x if x > _EXP_LO_32 else _EXP_LO_32
    xc = xc if xc < _EXP_HI_32 else _EXP_HI_32
    kf = np.floor(xc * _LOG2E_32 + _HALF32)
    r = (xc - kf * _LN2_HI_32) - kf * _LN2_LO_32
    q = _Q0_32 + r * (_Q1_32 + r * (_Q2_32 + r * (_Q3_32 + r * _Q4_32)))
    p = r + r * r * q
    k = np.int32(kf)
    k1 = k >> 1
    k2 = k - k1
    s1 = _i2f32(np.int32((k1 + 127) << 23))
    s2 = _i2f32(np.int32((k2 + 127) << 23))
    return p, s1, s2, k


@numba.njit(**_JIT)
def exp_f32(x):
    """Computes e**x for a float32 scalar without libm.

    Args:
      x: a float32 scalar.

    Returns:
      float32 e**x; +inf on overflow, 0 or a denormal on underflow, NaN for NaN.
    """
    p, s1, s2, _ = _exp_parts32(x)
    res = ((_ONE32 + p) * s1) * s2
    return x + x if x != x else res


@numba.njit(**_JIT)
def expm1_f32(x):
    """Computes e**x - 1 for a float32 scalar, accurate near 0, without libm.

    Args:
      x: a float32 scalar.

    Returns:
      float32 e**x - 1; -1 for large negative x, +inf on overflow, NaN for NaN.
    """
    p, s1, s2, k = _exp_parts32(x)
    big = ((_ONE32 + p) * s1) * s2
    # 2**k*(expm1(r) + 1) - 1 written so that nothing cancels: s*p is exact and
    # s - 1 is exact for the k where it matters. k <= 58 here, so s is finite.
    kk = k if k > -126 else -126
    s = _i2f32(np.int32((kk + 127) << 23))
    small = s * p + (s - _ONE32)
    small = small if k > -126 else -_ONE32
    res = big if x > _EM_BIG else small
    res = res if x != _ZERO32 else x  # keeps the sign of -0.0
    return x + x if x != x else res


# ---------------------------------------------------------------- exp family, float64
@numba.njit(**_JIT)
def _exp_parts64(x):
    # Same reduction as _exp_parts32; expm1(r) by its Taylor series to r**13, whose
    # remainder (|r| <= 0.347) is below 5e-18 relative.
    xc = x if x > _EXP_LO_64 else _EXP_LO_64
    xc = xc if xc < _EXP_HI_64 else _EXP_HI_64
    kf = np.floor(xc * _LOG2E_64 + 0.5)
    r = (xc - kf * _LN2_HI_64) - kf * _LN2_LO_64
    q = 1.0 / 6227020800.0
    q = 1.0 / 479001600.0 + r * q
    q = 1.0 / 39916800.0 + r * q
    q = 1.0 / 3628800.0 + r * q
    q = 1.0 / 362880.0 + r * q
    q = 1.0 / 40320.0 + r * q
    q = 1.0 / 5040.0 + r * q
    q = 1.0 / 720.0 + r * q
    q = 1.0 / 120.0 + r * q
    q = 1.0 / 24.0 + r * q
    q = 1.0 / 6.0 + r * q
    q = 0.5 + r * q
    p = r + r * r * q
    k = np.int64(kf)
    k1 = k >> 1
    k2 = k - k1
    s1 = _i2f64((k1 + 1023) << 52)
    s2 = _i2f64((k2 + 1023) << 52)
    return p, s1, s2, k


@numba.njit(**_JIT)
def exp_f64(x):
    """Computes e**x for a float64 scalar without libm.

    Args:
      x: a float64 scalar.

    Returns:
      float64 e**x; +inf on overflow, 0 or a denormal on underflow, NaN for NaN.
    """
    p, s1, s2, _ = _exp_parts64(x)
    res = ((1.0 + p) * s1) * s2
    return x + x if x != x else res


@numba.njit(**_JIT)
def expm1_f64(x):
    """Computes e**x - 1 for a float64 scalar, accurate near 0, without libm.

    Args:
      x: a float64 scalar.

    Returns:
      float64 e**x - 1; -1 for large negative x, +inf on overflow, NaN for NaN.
    """
    p, s1, s2, k = _exp_parts64(x)
    big = ((1.0 + p) * s1) * s2
    kk = k if k > -1022 else -1022
    s = _i2f64((kk + 1023) << 52)
    small = s * p + (s - 1.0)
    small = small if k > -1022 else -1.0
    res = big if x > _EM_BIG else small
    res = res if x != 0 else x  # keeps the sign of -0.0
    return x + x if x != x else res


# ---------------------------------------------------------------- log family, float32
@numba.njit(**_JIT)
def log_f32(x):
    """Computes the natural logarithm of a float32 scalar without libm.

    Args:
      x: a float32 scalar.

    Returns:
      float32 log(x); -inf for 0, NaN for negative x and NaN, +inf for +inf.
    """
    # Denormals are scaled into the normal range first so the exponent field is exact.
    tiny = x < _MIN_NORMAL_32
    xs = x * _TWO24_32 if tiny else x
    eadj = -24 if tiny else 0
    # x = 2**e * m with m in [sqrt(1/2), sqrt(2)): offsetting the bits by those of
    # sqrt(1/2) makes the exponent field carry exactly when m would pass sqrt(2).
    ix = np.int64(_f2i32(xs)) - _SQRTH_BITS_32
    e = (ix >> 23) + eadj
    m = _i2f32(np.int32((ix & 0x7FFFFF) + _SQRTH_BITS_32))
    f = m - _ONE32
    # log(1+f) = 2*atanh(s), s = f/(2+f); R is the atanh series beyond 2s.
    s = f / (_TWO32 + f)
    z = s * s
    R = z * (_F(2.0 / 3.0) + z * (_F(0.4) + z * (_F(2.0 / 7.0) + z * _F(2.0 / 9.0))))
    hfsq = _HALF32 * f * f
    ef = np.float32(e)
    res = ef * _LN2_HI_32 + (f - (hfsq - (s * (hfsq + R) + ef * _LN2_LO_32)))
    res = res if x < _INF32 else x
    res = res if x != _ZERO32 else -_INF32
    res = res if x >= _ZERO32 else _NAN32
    return x + x if x != x else res


@numba.njit(**_JIT)
def log1p_f32(x):
    """Computes log(1 + x) for a float32 scalar, accurate near 0, without libm.

    Args:
      x: a float32 scalar.

    Returns:
      float32 log(1 + x); -inf for -1, NaN below -1 and for NaN, +inf for +inf.
    """
    # u = 1 + x rounds; c is the rounding error, and log(1+x) = log(u) + c/u to first
    # order, which restores the bits of x that 1 + x dropped.
    u = _ONE32 + x
    c = x - (u - _ONE32)
    # u == 0 only for x == -1, which is patched below; the guard avoids 0/0.
    res = log_f32(u) + c / (u if u != _ZERO32 else _ONE32)
    res = res if x < _INF32 else x
    res = res if x != -_ONE32 else -_INF32
    res = res if x >= -_ONE32 else _NAN32
    res = res if x != _ZERO32 else x  # keeps the sign of -0.0
    return x + x if x != x else res


# ---------------------------------------------------------------- log family, float64
@numba.njit(**_JIT)
def log_f64(x):
    """Computes the natural logarithm of a float64 scalar without libm.

    Args:
      x: a float64 scalar.

    Returns:
      float64 log(x); -inf for 0, NaN for negative x and NaN, +inf for +inf.
    """
    tiny = x < _MIN_NORMAL_64
    xs = x * _TWO54_64 if tiny else x
    eadj = -54 if tiny else 0
    ix = _f2i64(xs) - _SQRTH_BITS_64
    e = (ix >> 52) + eadj
    m = _i2f64((ix & _MANT_MASK_64) + _SQRTH_BITS_64)
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    # atanh series terms 2/(2j+1) up to j = 10: remainder below 1e-18 for s**2 < 0.0295.
    w = 2.0 / 21.0
    w = 2.0 / 19.0 + z * w
    w = 2.0 / 17.0 + z * w
    w = 2.0 / 15.0 + z * w
    w = 2.0 / 13.0 + z * w
    w = 2.0 / 11.0 + z * w
    w = 2.0 / 9.0 + z * w
    w = 2.0 / 7.0 + z * w
    w = 2.0 / 5.0 + z * w
    w = 2.0 / 3.0 + z * w
    R = z * w
    hfsq = 0.5 * f * f
    ef = np.float64(e)
    res = ef * _LN2_HI_64 + (f - (hfsq - (s * (hfsq + R) + ef * _LN2_LO_64)))
    res = res if x < _INF64 else x
    res = res if x != 0.0 else -_INF64
    res = res if x >= 0.0 else _NAN64
    return x + x if x != x else res


@numba.njit(**_JIT)
def log1p_f64(x):
    """Computes log(1 + x) for a float64 scalar, accurate near 0, without libm.

    Args:
      x: a float64 scalar.

    Returns:
      float64 log(1 + x); -inf for -1, NaN below -1 and for NaN, +inf for +inf.
    """
    u = 1.0 + x
    c = x - (u - 1.0)
    res = log_f64(u) + c / (u if u != 0.0 else 1.0)
    res = res if x < _INF64 else x
    res = res if x != -1.0 else -_INF64
    res = res if x >= -1.0 else _NAN64
    res = res if x != 0.0 else x  # keeps the sign of -0.0
    return x + x if x != x else res


# ---------------------------------------------------------------- composites
@numba.njit(**_JIT)
def tanh_f32(x):
    """Computes tanh of a float32 scalar without libm.

    Args:
      x: a float32 scalar.

    Returns:
      float32 tanh(x), saturating at +/-1, NaN for NaN, sign of zero kept.
    """
    # tanh|x| = -t/(t+2) with t = expm1(u), u = -2|x| in [-20, 0]: no overflow, no
    # cancellation near 0 because expm1 is relatively accurate there. expm1 is inlined
    # for this range only (one scale factor, no overflow or denormal branches): tanh is
    # the costliest function of typical activations.
    u = _F(-2.0) * abs(x)
    u = u if u > _TANH_LO_32 else _TANH_LO_32  # tanh rounds to 1 beyond; NaN goes here too
    kf = np.floor(u * _LOG2E_32 + _HALF32)
    r = (u - kf * _LN2_HI_32) - kf * _LN2_LO_32
    q = _Q0_32 + r * (_Q1_32 + r * (_Q2_32 + r * (_Q3_32 + r * _Q4_32)))
    p = r + r * r * q
    s = _i2f32(np.int32((np.int32(kf) + 127) << 23))  # 2**k, k in [-29, 0]
    t = s * p + (s - _ONE32)  # s*p exact; s-1 exact where it matters
    a = -t / (t + _TWO32)
    res = _i2f32(np.int32((np.int64(_f2i32(a)) & 0x7FFFFFFF)
                          | (np.int64(_f2i32(x)) & -(1 << 31))))
    return x + x if x != x else res


@numba.njit(**_JIT)
def tanh_f64(x):
    """Computes tanh of a float64 scalar without libm.

    Args:
      x: a float64 scalar.

    Returns:
      float64 tanh(x), saturating at +/-1, NaN for NaN, sign of zero kept.
    """
    t = expm1_f64(-2.0 * abs(x))
    a = -t / (t + 2.0)
    return _i2f64(_f2i64(a) | (_f2i64(x) & _SIGN_64))


@numba.njit(**_JIT)
def sigmoid_f32(x):
    """Computes the logistic sigmoid 1/(1+exp(-x)) of a float32 scalar.

    Args:
      x: a float32 scalar.

    Returns:
      float32 sigmoid(x); exact 1 and denormal/0 tails, NaN for NaN.
    """
    # e = exp(-|x|) never overflows; for x < 0 use e/(1+e) so the small tail keeps
    # its relative precision down to the denormals instead of flushing to 0.
    e = exp_f32(-abs(x))
    num = _ONE32 if x >= _ZERO32 else e
    return num / (_ONE32 + e)


@numba.njit(**_JIT)
def sigmoid_f64(x):
    """Computes the logistic sigmoid 1/(1+exp(-x)) of a float64 scalar.

    Args:
      x: a float64 scalar.

    Returns:
      float64 sigmoid(x); exact 1 and denormal/0 tails, NaN for NaN.
    """
    e = exp_f64(-abs(x))
    num = 1.0 if x >= 0.0 else e
    return num / (1.0 + e)


@numba.njit(**_JIT)
def softplus_f32(x):
    """Computes softplus log(1 + exp(x)) of a float32 scalar.

    Args:
      x: a float32 scalar.

    Returns:
      float32 softplus(x); equal to x for large x, exp(x) for very negative x.
    """
    # max(x, 0) + log1p(exp(-|x|)): the exp argument is never positive, so nothing
    # overflows and the large-x result is exactly x.
    m = x if x > _ZERO32 else _ZERO32
    return m + log1p_f32(exp_f32(-abs(x)))


@numba.njit(**_JIT)
def softplus_f64(x):
    """Computes softplus log(1 + exp(x)) of a float64 scalar.

    Args:
      x: a float64 scalar.

    Returns:
      float64 softplus(x); equal to x for large x, exp(x) for very negative x.
    """
    m = x if x > 0.0 else 0.0
    return m + log1p_f64(exp_f64(-abs(x)))


# erf, float32. Both polynomials are relative-error weighted least-squares fits on
# 3000 Chebyshev nodes (float64, scipy.special references), coefficients rounded to
# float32 and re-checked with float32 Horner evaluation:
#   |x| < 0.921875: erf(x) = x + x*P(x*x), P of degree 5 (model error 0.4 ulp);
#   above:          erf(x) = 1 - exp(-x*x) * R(|x| - 2.25), R ~ erfcx, degree 10 on
#                   [0.921875, 4] (model error 1.3 ulp); erf rounds to 1 beyond 3.92.
# The shift by 2.25 keeps R's monomial coefficients small; fits in 1/x or unshifted x
# lost several ulp to float32 coefficient rounding.
_ERF_SPLIT_32 = _F(0.921875)
_ERF_SHIFT_32 = _F(2.25)
_ERF_CLAMP_32 = _F(4.0)
_EP0 = _F(0.12837915122509003)
_EP1 = _F(-0.3761250376701355)
_EP2 = _F(0.11281904578208923)
_EP3 = _F(-0.026769496500492096)
_EP4 = _F(0.004997011739760637)
_EP5 = _F(-0.0006008737254887819)
_ER0 = _F(0.2310873121023178)
_ER1 = _F(-0.08848641067743301)
_ER2 = _F(0.03199132904410362)
_ER3 = _F(-0.011002346873283386)
_ER4 = _F(0.0036245929077267647)
_ER5 = _F(-0.0011447854340076447)
_ER6 = _F(0.0003403668524697423)
_ER7 = _F(-9.939340816345066e-05)
_ER8 = _F(3.380818816367537e-05)
_ER9 = _F(-1.0805474630615208e-05)
_ER10 = _F(1.7059082892956212e-06)


@numba.njit(**_JIT)
def erf_f32(x):
    """Computes the error function of a float32 scalar without libm.

    Args:
      x: a float32 scalar.

    Returns:
      float32 erf(x), exactly +/-1 for |x| >= 3.92, NaN for NaN, sign of zero kept.
    """
    a = abs(x)
    z = a * a
    small = x + x * (_EP0 + z * (_EP1 + z * (_EP2 + z * (_EP3 + z * (_EP4 + z * _EP5)))))
    # Clamping keeps R in its fitted range; past 4, exp(-z)*R is below half an ulp of 1.
    u = (a if a < _ERF_CLAMP_32 else _ERF_CLAMP_32) - _ERF_SHIFT_32
    r = _ER9 + u * _ER10
    r = _ER8 + u * r
    r = _ER7 + u * r
    r = _ER6 + u * r
    r = _ER5 + u * r
    r = _ER4 + u * r
    r = _ER3 + u * r
    r = _ER2 + u * r
    r = _ER1 + u * r
    r = _ER0 + u * r
    big = _ONE32 - exp_f32(-z) * r
    big = big if x > _ZERO32 else -big
    return small if a < _ERF_SPLIT_32 else big


@numba.njit(**_JIT)
def _pow_core64(ax, yd):
    # exp(yd*log(ax)) for pow_f32, in float64 with series cut to what a float32 result
    # needs: log's atanh series to s**12 (remainder < 5e-11 relative) and expm1's Taylor
    # series to r**10 (< 3e-13); |yd*log(ax)| <= ~150 matters, so the absolute error
    # of the exponent stays below 1e-8, a fraction of a float32 ulp. About half the
    # work of exp_f64(log_f64(.)). ax >= 0; special cases are handled by the caller.
    tiny = ax < _MIN_NORMAL_64
    xs = ax * _TWO54_64 if tiny else ax
    eadj = -54 if tiny else 0
    ix = _f2i64(xs) - _SQRTH_BITS_64
    e = (ix >> 52) + eadj
    f = _i2f64((ix & _MANT_MASK_64) + _SQRTH_BITS_64) - 1.0
    s = f / (2.0 + f)
    z = s * s
    w = 2.0 / 11.0 + z * (2.0 / 13.0)
    R = z * (2.0 / 3.0 + z * (0.4 + z * (2.0 / 7.0 + z * (2.0 / 9.0 + z * w))))
    hfsq = 0.5 * f * f
    ef = np.float64(e)
    lg = ef * _LN2_HI_64 + (f - (hfsq - (s * (hfsq + R) + ef * _LN2_LO_64)))
    lg = lg if ax < _INF64 else ax
    lg = lg if ax != 0.0 else -_INF64
    t = yd * lg
    tc = t if t > _EXP_LO_64 else _EXP_LO_64
    tc = tc if tc < _EXP_HI_64 else _EXP_HI_64
    kf = np.floor(tc * _LOG2E_64 + 0.5)
    r = (tc - kf * _LN2_HI_64) - kf * _LN2_LO_64
    q = 1.0 / 3628800.0
    q = 1.0 / 362880.0 + r * q
    q = 1.0 / 40320.0 + r * q
    q = 1.0 / 5040.0 + r * q
    q = 1.0 / 720.0 + r * q
    q = 1.0 / 120.0 + r * q
    q = 1.0 / 24.0 + r * q
    q = 1.0 / 6.0 + r * q
    q = 0.5 + r * q
    p = r + r * r * q
    k = np.int64(kf)
    k1 = k >> 1
    s1 = _i2f64((k1 + 1023) << 52)
    s2 = _i2f64((k - k1 + 1023) << 52)
    res = ((1.0 + p) * s1) * s2
    return t + t if t != t else res


@numba.njit(**_JIT)
def pow_f32(x, y):
    """Computes x**y for float32 scalars with C99 powf special cases, without libm.

    Args:
      x: a float32 scalar, the base.
      y: a float32 scalar, the exponent.

    Returns:
      float32 x**y. NaN for negative finite x with finite non-integer y; signed
      zeros and infinities as C99 specifies; pow(x, 0) == pow(1, y) == 1.
    """
    # exp(y*log|x|) in float64: the float64 log/exp errors (~1e-16 relative, times
    # |y*log|x|| <= ~150 before the result leaves float32 range) are far below a
    # float32 ulp, so the final rounding to float32 dominates. Float64 lanes halve
    # the SIMD width but need no extra-precise log.
    xd = np.float64(x)
    yd = np.float64(y)
    mag = _pow_core64(abs(xd), yd)
    yint = yd == np.floor(yd)  # true for +/-inf too, which count as even
    h = yd * 0.5
    yodd = yint and h != np.floor(h)
    neg = _f2i32(x) < 0  # sign bit, so -0.0 counts as negative
    res = -mag if (neg and yodd) else mag
    # Negative finite base with a finite non-integer exponent has no real value.
    res = _NAN64 if (xd < 0.0 and xd > -_INF64 and not yint) else res
    # |x| == 1 with infinite y would give inf*0 = NaN above; C99 says 1.
    res = 1.0 if (abs(xd) == 1.0 and abs(yd) == _INF64) else res
    res = 1.0 if (yd == 0.0 or xd == 1.0) else res
    return np.float32(res)


# ---------------------------------------------------------------- libm fallbacks
@numba.njit(cache=True)
def _libm_exp(x):
    return np.exp(x)


@numba.njit(cache=True)
def _libm_expm1(x):
    return np.expm1(x)


@numba.njit(cache=True)
def _libm_log(x):
    return np.log(x)


@numba.njit(cache=True)
def _libm_log1p(x):
    return np.log1p(x)


@numba.njit(cache=True)
def _libm_tanh(x):
    return np.tanh(x)


@numba.njit(cache=True)
def _libm_erf(x):
    return math.erf(x)


@numba.njit(cache=True)
def _libm_sigmoid32(x):
    e = np.exp(-abs(x))
    num = _ONE32 if x >= _ZERO32 else e
    return num / (_ONE32 + e)


@numba.njit(cache=True)
def _libm_sigmoid64(x):
    e = np.exp(-abs(x))
    num = 1.0 if x >= 0.0 else e
    return num / (1.0 + e)


@numba.njit(cache=True)
def _libm_softplus32(x):
    m = x if x > _ZERO32 else _ZERO32
    return m + np.log1p(np.exp(-abs(x)))


@numba.njit(cache=True)
def _libm_softplus64(x):
    m = x if x > 0.0 else 0.0
    return m + np.log1p(np.exp(-abs(x)))


@numba.njit(cache=True)
def _libm_pow(x, y):
    return x**y


# name -> (float32 implementation, float64 implementation). Functions missing here
# (see LIBM) have no vectorisable version yet and must come from LIBM.
FASTMATH = {
    "exp": (exp_f32, exp_f64),
    "expm1": (expm1_f32, expm1_f64),
    "log": (log_f32, log_f64),
    "log1p": (log1p_f32, log1p_f64),
    "tanh": (tanh_f32, tanh_f64),
    "sigmoid": (sigmoid_f32, sigmoid_f64),
    "softplus": (softplus_f32, softplus_f64),
    # No vectorisable float64 erf yet: the float64 slot is libm so lookups by dtype
    # keep working; only the float32 version vectorises.
    "erf": (erf_f32, _libm_erf),
    # Same for pow: float64 needs a double-double log for full accuracy, not done yet.
    # pow_f32 alone runs at ~0.8x the speed of libm powf (it works in float64 lanes);
    # its gain is that the surrounding fused loop still vectorises.
    "pow": (pow_f32, _libm_pow),
}

# Same layout, backed by libm; selected when the session disables fast math.
LIBM = {
    "exp": (_libm_exp, _libm_exp),
    "expm1": (_libm_expm1, _libm_expm1),
    "log": (_libm_log, _libm_log),
    "log1p": (_libm_log1p, _libm_log1p),
    "tanh": (_libm_tanh, _libm_tanh),
    "sigmoid": (_libm_sigmoid32, _libm_sigmoid64),
    "softplus": (_libm_softplus32, _libm_softplus64),
    "erf": (_libm_erf, _libm_erf),
    "pow": (_libm_pow, _libm_pow),
}
