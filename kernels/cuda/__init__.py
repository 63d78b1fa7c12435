"""CUDA backend: the same kernels and code generation as the CPU one, for Numba-CUDA."""
