"""Neural-network ops: activations, softmax, losses, convolution, pooling, normalization."""

from __future__ import annotations

__all__: list[str] = []
