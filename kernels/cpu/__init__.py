"""CPU backend: Numba code generation of fused loops, library kernels, vectorisable math."""

from graphflow.kernels.cpu.backend import CpuExecutable, FusedKernel

__all__ = ["CpuExecutable", "FusedKernel"]
