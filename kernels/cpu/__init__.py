"""CPU backend: Numba code generation of fused loops, library kernels, vectorisable math."""
