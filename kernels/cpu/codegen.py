"""Code generation: one fusion group of elementwise/broadcast ops -> one Numba loop.

A group qualifies when every node has a ``scalar`` expression (its OpDef's
format string, e.g. ``"tanh({x})"``), one output, and dtypes the generated
code computes exactly like the NumPy reference. The expression of each node is
parsed with :mod:`ast`, its function names mapped to NumPy scalar functions or
the small helpers of :data:`PRELUDE`, its numeric literals typed with the
node's compute dtype (so ``1+abs(x)`` stays float32), and its result cast to the
node's output dtype. Anything else returns None and the step runs through the
reference evaluation.
"""

from __future__ import annotations

import ast
import hashlib
import os
import pathlib
import re

from graphflow.compiler.ir import Node
from graphflow.framework import op_def as _op_def

# Format-field names of an op's inputs, by arity (the math_ops tables' convention).
_INPUT_NAMES = {1: ("x",), 2: ("x", "y"), 3: ("c", "x", "y")}

_FLOATS = {"float32", "float64"}
_INTS = {"int8", "int16", "int32", "int64", "uint8"}
_BOOL = {"bool"}

# scalar-expression function -> generated-code function.
_FLOAT_FUNCS = {
    "abs": "np.abs", "sqrt": "np.sqrt", "exp": "np.exp", "expm1": "np.expm1",
    "log": "np.log", "log1p": "np.log1p", "sin": "np.sin", "cos": "np.cos",
    "tan": "np.tan", "tanh": "np.tanh", "floor": "np.floor", "ceil": "np.ceil",
    "round": "np.rint", "erf": "math.erf", "sigmoid": "_sigmoid",
    "softplus": "_softplus", "sign": "_sign", "max": "_max", "min": "_min",
    "pow": "np.power",
}
_INT_FUNCS = {"abs": "np.abs", "sign": "_sign", "max": "_max", "min": "_min"}

# Functions with vectorisable implementations in fastmath.py: libm calls keep LLVM from
# vectorising a fused loop (tanh alone was 6x slower than NumPy's). GRAPHFLOW_MATH=libm
# falls back to libm (the kernels' source differs, so the two never share cache entries).
_FAST = ("exp", "expm1", "log", "log1p", "tanh", "sigmoid", "softplus", "erf")
# The default for sessions that do not choose (Session(fast_math=...) overrides it).
DEFAULT_FAST_MATH = os.environ.get("GRAPHFLOW_MATH", "").lower() != "libm"
_FLOAT_FUNCS_BY_DTYPE = {
    width: {**_FLOAT_FUNCS, **{f: f"_{f}{width}" for f in _FAST}} for width in ("32", "64")}

PRELUDE = '''\
import math

import numpy as np
from numba import njit, prange

from graphflow.kernels.cpu.fastmath import @TABLE@ as _TABLE


_exp32, _exp64 = _TABLE["exp"]
_expm132, _expm164 = _TABLE["expm1"]
_log32, _log64 = _TABLE["log"]
_log1p32, _log1p64 = _TABLE["log1p"]
_tanh32, _tanh64 = _TABLE["tanh"]
_sigmoid32, _sigmoid64 = _TABLE["sigmoid"]
_softplus32, _softplus64 = _TABLE["softplus"]
_erf32, _erf64 = _TABLE["erf"]

_OPTS = dict(cache=True, nogil=True, error_model="numpy")


@njit(**_OPTS)
def _max(a, b):
    if a != a:
        return a
    if b != b:
        return b
    return a if a >= b else b


@njit(**_OPTS)
def _min(a, b):
    if a != a:
        return a
    if b != b:
        return b
    return a if a <= b else b


@njit(**_OPTS)
def _sign(x):
    if x > 0:
        return 1
    if x < 0:
        return -1
    return 0 if x == 0 else x


@njit(**_OPTS)
def _sigmoid(x):
    e = np.exp(-np.abs(x))
    return 1 / (1 + e) if x >= 0 else e / (1 + e)


@njit(**_OPTS)
def _softplus(x):
    t = np.log1p(np.exp(-np.abs(x)))
    if x > 0:
        return x + t
    return x if x != x else t
'''


# Numba's cache does not notice changes to fastmath.py that kernels inline, so its source
# hash is part of every kernel's source, and so of the kernel cache key.
_FASTMATH_HASH = hashlib.sha256(
    (pathlib.Path(__file__).parent / "fastmath.py").read_bytes()).hexdigest()[:16]
_PRELUDES = {fast: f"# fastmath {_FASTMATH_HASH}\n" + PRELUDE.replace(
    "@TABLE@", "FASTMATH" if fast else "LIBM") for fast in (True, False)}


def _np_type(dtype_name: str) -> str:
    return "np.bool_" if dtype_name == "bool" else f"np.{dtype_name}"


class _Rewrite(ast.NodeTransformer):
    """Maps function names, types literals; raises ValueError on anything unsupported."""

    def __init__(self, compute: str, names: set[str]) -> None:
        self.compute = compute
        self.names = names
        if compute in _FLOATS:
            self.funcs = _FLOAT_FUNCS_BY_DTYPE[compute[-2:]]
        elif compute in _INTS:
            self.funcs = _INT_FUNCS
        else:
            self.funcs = {}

    def visit_Call(self, node: ast.Call) -> ast.AST:
        if not isinstance(node.func, ast.Name) or node.func.id not in self.funcs or node.keywords:
            raise ValueError("unsupported call")
        node.args = [self.visit(a) for a in node.args]
        node.func = ast.parse(self.funcs[node.func.id], mode="eval").body
        return node

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id not in self.names:
            raise ValueError(f"unknown name {node.id}")
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        if self.compute == "bool" or isinstance(node.value, bool) or not isinstance(
                node.value, (int, float)):
            raise ValueError("unsupported literal")
        call = ast.parse(f"{_np_type(self.compute)}({node.value!r})", mode="eval").body
        return call

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        if self.compute not in _FLOATS and self.compute not in _INTS:
            raise ValueError("arithmetic on bool")
        allowed = (ast.Add, ast.Sub, ast.Mult)
        if self.compute in _FLOATS:
            allowed = allowed + (ast.Div,)
        if not isinstance(node.op, allowed):
            raise ValueError("unsupported operator")
        return self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        if isinstance(node.op, ast.Not) and self.compute == "bool":
            return self.generic_visit(node)
        if isinstance(node.op, ast.USub) and self.compute in _FLOATS | _INTS:
            return self.generic_visit(node)
        raise ValueError("unsupported unary operator")

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:
        if self.compute != "bool":
            raise ValueError("logic on non-bool")
        return self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        return self.generic_visit(node)

    def visit_IfExp(self, node: ast.IfExp) -> ast.AST:
        return self.generic_visit(node)

    def generic_visit(self, node: ast.AST) -> ast.AST:
        if not isinstance(node, (ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp,
                                 ast.Compare, ast.IfExp, ast.operator, ast.unaryop,
                                 ast.boolop, ast.cmpop, ast.Load)):
            raise ValueError(f"unsupported syntax {type(node).__name__}")
        return super().generic_visit(node)


def node_expression(node: Node, args: list[str]) -> str | None:
    """The generated-code expression computing ``node`` from variables ``args``, or None."""
    od = node.op_def
    if (od.scalar is None or od.kind not in (_op_def.ELEMENTWISE, _op_def.BROADCAST)
            or od.stateful or len(node.dtypes) != 1 or node.regions
            or len(args) not in _INPUT_NAMES):
        return None
    out = node.dtypes[0].name
    ins = [p.dtypes[i].name for p, i in node.inputs]
    supported = _FLOATS | _INTS | _BOOL
    if out not in supported or any(d not in supported for d in ins):
        return None
    # The compute dtype: the value inputs' (SelectV2's condition is input 0).
    compute = ins[-1]
    names = _INPUT_NAMES[len(args)]
    try:
        text = od.scalar.format(**dict(zip(names, args)))
        tree = ast.parse(text, mode="eval")
        tree = _Rewrite(compute, set(args)).visit(tree)
    except (ValueError, KeyError, IndexError, SyntaxError):
        return None
    return f"{_np_type(out)}({ast.unparse(tree.body)})"


class Kernel:
    """The generated source of one fusion group at one rank.

    Attributes:
      source: a complete Python module defining ``kernel(a0.., o0..)``.
      n_in, n_out: argument counts.
    """

    def __init__(self, source: str, n_in: int, n_out: int) -> None:
        self.source = source
        self.n_in = n_in
        self.n_out = n_out


def group_body(nodes: list[Node], inputs: list, outputs: list) -> list[str] | None:
    """Per-element statements of the group, or None when a node cannot be generated.

    Input ``j`` is read into ``a{j}``-named scalars by the caller; group outputs are
    the variables ``r{k}`` (returned as the last statements' targets).
    """
    var: dict[tuple[int, int], str] = {}
    for j, (n, i) in enumerate(inputs):
        var[(n.id, i)] = f"x{j}"
    lines = []
    for k, n in enumerate(nodes):
        args = []
        for p, i in n.inputs:
            name = var.get((p.id, i))
            if name is None:
                return None
            args.append(name)
        expr = node_expression(n, args)
        if expr is None:
            return None
        var[(n.id, 0)] = f"t{k}"
        lines.append(f"t{k} = {expr}")
    for k, (n, i) in enumerate(outputs):
        lines.append(f"r{k} = {var[(n.id, i)]}")
    return lines


def kernel_source(body: list[str], n_in: int, n_out: int, rank: int,
                  fast_math: bool = DEFAULT_FAST_MATH, scalars: tuple[bool, ...] = (),
                  parallel: bool = False) -> str:
    """A module whose ``kernel`` loops over rank-``rank`` outputs (inputs broadcast to them).

    Args:
      body: per-element statements from :func:`group_body`.
      n_in, n_out: argument counts.
      rank: loop depth.
      fast_math: graphflow's vectorisable math (True) or libm.
      scalars: per input, True when it holds one element: it is read once before the
        loop (a loop-invariant load LLVM need not prove invariant, so the loop vectorises).
      parallel: the outer loop is a ``prange`` over Numba's thread pool.
    """
    scalars = tuple(scalars) + (False,) * (n_in - len(scalars))
    ins = [f"a{j}" for j in range(n_in)]
    outs = [f"o{k}" for k in range(n_out)]
    idx = ", ".join(f"i{d}" for d in range(rank))
    zero = ", ".join("0" for _ in range(rank))
    opts = "parallel=True, **_OPTS" if parallel else "**_OPTS"
    lines = [_PRELUDES[fast_math], "", f"@njit({opts})",
             f"def kernel({', '.join(ins + outs)}):"]
    ind = "    "
    for j in range(n_in):
        if scalars[j]:
            lines.append(f"{ind}x{j} = a{j}[{zero}]")
    for d in range(rank):
        rng = "prange" if parallel and d == 0 else "range"
        lines.append(f"{ind}for i{d} in {rng}(o0.shape[{d}]):")
        ind += "    "
    for j in range(n_in):
        if not scalars[j]:
            lines.append(f"{ind}x{j} = a{j}[{idx}]")
    lines += [ind + s for s in body]
    for k in range(n_out):
        lines.append(f"{ind}o{k}[{idx}] = r{k}")
    return "\n".join(lines) + "\n"


_NAME = re.compile(r"\b([tx]\d+)\b")


def _second_pass(body: list[str], widths: list[int]) -> tuple[list[int], list[str]] | None:
    """Outputs narrower than the widest (a relu's bool mask beside its float result) and
    the statements that compute them from the wider outputs' stored values, or None.

    A loop storing into arrays of different element widths vectorises poorly (the mlp's
    bias+relu+mask epilogue: 26.7 us against 20.0 as two loops). The narrow outputs
    then take a second loop over the row, reading back what the first stored (in L1),
    when that needs no transcendental call recomputed.
    """
    if len(widths) < 2 or len(set(widths)) == 1:
        return None
    wide = max(widths)
    narrow = [k for k, w in enumerate(widths) if w < wide]
    stmts = {}
    outs = {}
    for line in body:
        target, expr = line.split(" = ", 1)
        if target.startswith("r"):
            outs[int(target[1:])] = expr
        else:
            stmts[target] = expr
    stored = {outs[k]: k for k in range(len(widths))
              if k not in narrow and outs[k].startswith("t")}
    need: list[str] = []

    def visit(name: str) -> None:
        if name in need or name in stored or name.startswith("x"):
            return
        expr = stmts[name]
        for dep in _NAME.findall(expr):
            visit(dep)
        need.append(name)

    for k in narrow:
        if outs[k] not in stored:
            visit(outs[k])
    if any(_HEAVY_CALL.search(stmts[n]) for n in need):
        return None
    order = [line.split(" = ", 1)[0] for line in body]
    used = set(need) | {outs[k] for k in narrow}
    lines = [f"{name} = o{k}[base + j]" for name, k in stored.items()
             if name in used or any(name in _NAME.findall(stmts[n]) for n in need)]
    lines += [f"{n} = {stmts[n]}" for n in sorted(need, key=order.index)]
    lines += [f"o{k}[base + j] = {outs[k]}" for k in narrow]
    return narrow, lines


def rowcol_source(body: list[str], kinds: str, n_out: int,
                  fast_math: bool = DEFAULT_FAST_MATH, widths: list[int] | None = None) -> str:
    """A module whose ``kernel`` loops over a ``rows x cols`` output stored flat.

    The output's dims are split in two (rows: the leading dims, cols: the rest), and
    every input is contiguous and one of: ``F`` the full output shape, ``R`` a row
    broadcast down the rows (a bias), ``C`` a column broadcast along each row
    (a per-row statistic), ``S`` one element. Each is indexed with unit stride in the
    inner loop, so the loop vectorises, where broadcast views with zero strides (the
    rank-N kernel) do not.

    Args:
      body: per-element statements from :func:`group_body`.
      kinds: one letter per input, as above.
      n_out: number of outputs (flat, ``rows * cols`` elements).
      fast_math: graphflow's vectorisable math (True) or libm.
      widths: the outputs' element sizes; narrower ones may be stored by a second loop
        over each row (see :func:`_second_pass`).

    Returns:
      The module source; ``kernel(a0.., o0.., cols)`` takes 1-D arrays.
    """
    ins = [f"a{j}" for j in range(len(kinds))]
    outs = [f"o{k}" for k in range(n_out)]
    second = _second_pass(body, widths) if widths else None
    narrow = second[0] if second else []
    lines = [_PRELUDES[fast_math], "", "@njit(**_OPTS)",
             f"def kernel({', '.join(ins + outs)}, cols):"]
    for j, kind in enumerate(kinds):
        if kind == "S":
            lines.append(f"    x{j} = a{j}[0]")
    lines += ["    rows = o0.shape[0] // cols", "    for i in range(rows):"]
    for j, kind in enumerate(kinds):
        if kind == "C":
            lines.append(f"        x{j} = a{j}[i]")

    def loads(text: str) -> list[str]:
        # The row's elements of the F and R inputs that ``text`` reads.
        names = set(_NAME.findall(text))
        return [f"            x{j} = a{j}[base + j]" if kind == "F" else
                f"            x{j} = a{j}[j]" for j, kind in enumerate(kinds)
                if kind in "FR" and f"x{j}" in names]

    lines += ["        base = i * cols", "        for j in range(cols):"]
    first = [st for st in body if not (st.startswith("r") and int(st[1:st.index(" ")])
                                         in narrow)]
    lines += loads("\n".join(first))
    lines += ["            " + st for st in first]
    for k in range(n_out):
        if k not in narrow:
            lines.append(f"            o{k}[base + j] = r{k}")
    if second:
        lines.append("        for j in range(cols):")
        lines += loads("\n".join(second[1]))
        lines += ["            " + st for st in second[1]]
    return "\n".join(lines) + "\n"


# Calls that cost several times a memory access per element (see body_weight).
_HEAVY = ("_exp", "_expm1", "_log", "_tanh", "_sigmoid", "_softplus", "_erf", "_pow",
          "np.exp", "np.expm1", "np.log", "np.tanh", "np.sin", "np.cos", "np.tan",
          "np.power", "math.erf")
# A call of one of them, fast math's included (``_exp32(``, ``_tanh64(``).
_HEAVY_CALL = re.compile(r"(?<![\w.])(?:" + "|".join(re.escape(f) for f in _HEAVY)
                         + r")(?:32|64)?\(")


def body_weight(body: list[str]) -> int:
    """A rough per-element cost of a loop body, in units of a memory-bound element.

    Decides when a loop is worth splitting across threads: waking a worker costs
    tens of microseconds, which a cheap loop (about 0.2 ns per element) only earns
    back from about a million elements, a loop of tanh and sigmoid from ~100K.
    Each transcendental call counts 5, each division or square root 1.
    """
    text = "\n".join(body)
    return 1 + 5 * len(_HEAVY_CALL.findall(text)) + text.count("/") + text.count("np.sqrt(")
