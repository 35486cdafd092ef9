"""Network building blocks shared by the inverse models."""
from __future__ import annotations

from typing import Sequence

from torch import nn


def mlp(widths: Sequence[int], batchnorm: bool = True, activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """The authors' fully connected stack: ``Linear -> BatchNorm1d -> ReLU`` for every hidden layer.

    Args:
        widths: layer widths including input and output, e.g. ``(2, 500, 500, 1)``.
        batchnorm: put a BatchNorm1d after each hidden Linear (the authors' default).
        activation: the hidden non-linearity.

    Returns:
        A ``Sequential`` mapping ``(n, widths[0]) -> (n, widths[-1])``; the last layer is a plain Linear.
    """
    if len(widths) < 2:
        raise ValueError(f"an mlp needs at least input and output widths; got {list(widths)}")
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            if batchnorm:
                layers.append(nn.BatchNorm1d(b))
            layers.append(activation())
    return nn.Sequential(*layers)


def hidden(width: int, depth: int) -> tuple[int, ...]:
    """``depth`` hidden layers of ``width``: ``hidden(500, 3) == (500, 500, 500)``."""
    return (width,) * depth
