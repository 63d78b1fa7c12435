"""Execution backends, installed as graphflow.kernels: the only place numba is imported."""
