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


def y_features(y_dim: int, features: int) -> tuple[nn.Module, int]:
    """The network that feeds ``y`` to a model, and its output width: the identity, or for ``features > 0``
    the authors' spectrum encoder (150-500x4-features) used on D4's 300-point spectra."""
    if features:
        return SpectrumEncoder(y_dim, features, hidden(500, 4)), features
    return nn.Identity(), y_dim


class SpectrumEncoder(nn.Module):
    """The authors' encoder for D4's 300-point spectra: three Conv1d layers, a 1x1 conv, then an mlp.

    Conv1d(1->4, k=5, s=1), Conv1d(4->4, k=5, s=1), Conv1d(4->4, k=8, s=2) halve 300 points to 150, a 1x1
    convolution merges the channels, and ``mlp((150, *widths, out))`` maps the 150 features to ``out``.
    Input ``(n, L)`` -> output ``(n, out)``; ``L`` must be even.
    """

    def __init__(self, length: int, out: int, widths: Sequence[int]):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv1d(1, 4, 5, stride=1, padding=2), nn.ReLU(),
            nn.Conv1d(4, 4, 5, stride=1, padding=2), nn.ReLU(),
            nn.Conv1d(4, 4, 8, stride=2, padding=3), nn.ReLU(),
            nn.Conv1d(4, 1, 1),
        )
        self.head = mlp((length // 2, *widths, out))

    def forward(self, y):
        return self.head(self.convs(y.unsqueeze(1)).squeeze(1))
