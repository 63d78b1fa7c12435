#!/usr/bin/env python3
"""The developer's single entry point: set up the environment, run tests, examples and lint.

Usage (from any directory; uses only the standard library)::

    python3 tools/dev.py test [pytest args...]   run the test suite (2 xdist workers by default)
    python3 tools/dev.py example [name [args...]] run examples/<name>.py (default: mlp)
    python3 tools/dev.py lint [ruff args...]      run ruff over the code

Each command first makes sure the virtual environment ``.venv`` in the repository root exists
and holds graphflow installed in editable mode with the ``dev`` and ``examples`` extras. The
install is redone only when pyproject.toml changed since the last one (their hash
is kept in ``.venv/.graphflow-installed``).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

if sys.version_info < (3, 10):  # noqa: UP036 - this check is for users on an old Python
    sys.exit("error: graphflow needs Python 3.10 or newer; run this script with a newer python3")

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
VENV_PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".graphflow-installed"
EXTRAS = "dev,examples"
INSTALL_INPUTS = ("pyproject.toml",)
LINT_PATHS = ("graphflow", "kernels", "tests", "tools", "examples")
MIN_PIP = (23, 0)


def step(message: str) -> None:
    """Print one line saying what the script is doing now."""
    print(f"[dev] {message}", flush=True)


def fail(message: str, code: int = 1) -> int:
    """Print an error to stderr and return ``code`` for the caller to exit with."""
    print(f"[dev] error: {message}", file=sys.stderr, flush=True)
    return code


def run(cmd: Sequence[str | os.PathLike[str]], *, cwd: Path = ROOT,
        env: dict[str, str] | None = None, quiet: bool = False) -> int:
    """Run ``cmd`` and return its exit code (130 if interrupted with Ctrl-C)."""
    try:
        result = subprocess.run(
            [str(c) for c in cmd], cwd=cwd, env=env,
            stdout=subprocess.DEVNULL if quiet else None,
            stderr=subprocess.DEVNULL if quiet else None,
        )
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        return fail(f"cannot run {cmd[0]}: {exc}")
    return result.returncode


def venv_help() -> str:
    """Return advice for a Python whose ``venv`` module cannot create environments."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return (
        f"could not create a virtual environment with {sys.executable} -m venv.\n"
        f"  On Debian/Ubuntu install the venv module first:  "
        f"sudo apt-get install python3-venv  (or python{version}-venv)\n"
        f"  then run this command again."
    )


def pip_version() -> tuple[int, ...] | None:
    """Return the version of pip in the virtual environment, or None if pip is missing."""
    try:
        out = subprocess.run(
            [str(VENV_PYTHON), "-m", "pip", "--version"],
            capture_output=True, text=True, check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    match = re.match(r"pip (\d+)\.(\d+)", out)
    return (int(match.group(1)), int(match.group(2))) if match else None


def ensure_venv() -> int:
    """Create ``.venv`` with this Python if it is missing or broken; return 0 on success."""
    if VENV_PYTHON.exists() and pip_version() is not None:
        return 0
    if VENV.exists():
        step(f"recreating the broken virtual environment {VENV.relative_to(ROOT)}")
    else:
        step(f"creating virtual environment {VENV.relative_to(ROOT)} with {sys.executable}")
    code = run([sys.executable, "-m", "venv", "--clear", VENV])
    version = pip_version() if code == 0 else None
    if version is None:
        shutil.rmtree(VENV, ignore_errors=True)  # a half-made venv would only confuse next time
        return fail(venv_help())
    if version < MIN_PIP:
        step(f"upgrading pip {'.'.join(map(str, version))} (older than 23)")
        code = run([VENV_PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
        if code != 0:
            return fail("upgrading pip failed", code)
    return 0


def install_hash() -> str:
    """Return a hash of everything that decides what the editable install contains."""
    digest = hashlib.sha256(EXTRAS.encode())
    for name in INSTALL_INPUTS:
        path = ROOT / name
        digest.update(name.encode() + b"\0")
        digest.update(path.read_bytes() if path.exists() else b"")
    return digest.hexdigest()


def ensure_dot() -> None:
    """Install Graphviz's ``dot`` (graph images) where that needs no prompt: as root with apt.

    Anywhere else, say how to get it; everything but rendering images works without it.
    """
    if shutil.which("dot"):
        return
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        step("installing Graphviz's dot for graph images (apt-get install graphviz)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if run(["apt-get", "update", "-qq"], env=env, quiet=True) == 0 and run(
                ["apt-get", "install", "-y", "-qq", "graphviz"], env=env, quiet=True) == 0:
            return
        step("warning: could not install graphviz; rendering images will say what is missing")
        return
    step("note: Graphviz's dot is not installed; graph images need it "
         "(e.g. sudo apt-get install graphviz, or brew install graphviz)")


def ensure_installed() -> int:
    """Make sure graphflow is installed in ``.venv`` (editable, with extras); return 0 if so."""
    ensure_dot()
    code = ensure_venv()
    if code != 0:
        return code
    wanted = install_hash()
    if STAMP.exists() and STAMP.read_text().strip() == wanted:
        step("graphflow is installed and pyproject.toml is unchanged: skipping install")
        return 0
    step(f"installing graphflow in editable mode with extras [{EXTRAS}] into .venv")
    start = time.monotonic()
    code = run([VENV_PYTHON, "-m", "pip", "install", "--disable-pip-version-check",
                "-e", f".[{EXTRAS}]"])
    if code != 0:
        STAMP.unlink(missing_ok=True)
        return fail(f"pip install failed (exit code {code})", code or 1)
    STAMP.write_text(wanted + "\n")
    step(f"installed in {time.monotonic() - start:.1f} s")
    return 0


def has_workers_option(args: Sequence[str]) -> bool:
    """Return whether pytest ``args`` already choose xdist workers (or disable xdist)."""
    for arg in args:
        if arg == "--":
            break
        if re.fullmatch(r"-n.*|--numprocesses(=.*)?", arg) or arg == "no:xdist":
            return True
    return False


def from_caller_dir(args: Sequence[str]) -> list[str]:
    """Make path arguments given relative to the caller's directory absolute.

    Commands run in the repository root, so ``dev.py test test_x.py`` typed in tests/ would
    otherwise not find its file.
    """
    cwd = Path.cwd()
    if cwd == ROOT:
        return list(args)
    out = []
    for arg in args:
        candidate = cwd / arg.split("::", 1)[0]
        if not arg.startswith("-") and candidate.exists():
            arg = str(cwd / arg)
        out.append(arg)
    return out


def cmd_test(args: Sequence[str]) -> int:
    """Run pytest in the virtual environment; 'no tests collected' counts as a failure."""
    code = ensure_installed()
    if code != 0:
        return code
    pytest_args = from_caller_dir(args)
    if not has_workers_option(pytest_args):
        pytest_args = ["-n", "2", *pytest_args]
    env = dict(os.environ)
    env["NUMBA_ENABLE_CUDASIM"] = "1"  # CUDA kernels run on Numba's simulator without a GPU
    # Two xdist workers already fill both cores; threaded BLAS on top of them made tiny
    # matmuls 100-1000x slower through oversubscription.
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    # Keep the repository root off sys.path (Python >= 3.11), so tests import graphflow the way
    # users do and a stray `import kernels` fails as it would after a real install.
    env["PYTHONSAFEPATH"] = "1"
    step("running: pytest " + " ".join(pytest_args))
    code = run([VENV_PYTHON, "-m", "pytest", *pytest_args], env=env)
    if code == 5:
        return fail("pytest collected no tests (exit code 5): that counts as a failure")
    return code


def available_examples() -> list[str]:
    """Return the names of the runnable examples in examples/."""
    return sorted(p.stem for p in (ROOT / "examples").glob("*.py") if not p.stem.startswith("_"))


def cmd_example(args: Sequence[str]) -> int:
    """Run ``examples/<name>.py`` (default: mlp) with the virtual environment's Python."""
    name = args[0] if args else "mlp"
    name = name.removesuffix(".py").removeprefix("examples/")
    script = ROOT / "examples" / f"{name}.py"
    if not script.is_file():
        names = ", ".join(available_examples()) or "(none yet)"
        return fail(f"no example named {name!r} ({script} does not exist).\n"
                    f"  Available examples: {names}", 2)
    code = ensure_installed()
    if code != 0:
        return code
    step(f"running example {script.relative_to(ROOT)}")
    env = dict(os.environ)
    # The examples' matrices are small: extra BLAS threads only contend for the cores.
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    return run([VENV_PYTHON, script, *args[1:]], cwd=Path.cwd(), env=env)


def cmd_lint(args: Sequence[str]) -> int:
    """Run ``ruff check`` over the project's code in the virtual environment."""
    code = ensure_installed()
    if code != 0:
        return code
    paths = [p for p in LINT_PATHS if (ROOT / p).exists()]
    step("running: ruff check " + " ".join([*paths, *args]))
    return run([BIN / "ruff", "check", *paths, *from_caller_dir(args)])


COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "test": cmd_test,
    "example": cmd_example,
    "lint": cmd_lint,
}


def main(argv: Sequence[str]) -> int:
    """Dispatch ``argv`` (without the program name) to a command; return the exit code."""
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__)
        return 0 if argv else 2
    command = COMMANDS.get(argv[0])
    if command is None:
        return fail(f"unknown command {argv[0]!r}; choose one of: {', '.join(COMMANDS)}", 2)
    return command(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
