"""D2, the 2-D sine wave: ``y = sin(3 pi x1) + cos(3 pi x2)`` with ``x ~ U(-1, 1)^2`` (paper section 5.1)."""
import math

import torch

from .base import Task


def sine_wave_forward(x: torch.Tensor) -> torch.Tensor:
    """``(n, 2) -> (n, 1)``: ``sin(3 pi x1) + cos(3 pi x2)``."""
    return (torch.sin(3 * math.pi * x[:, 0]) + torch.cos(3 * math.pi * x[:, 1])).unsqueeze(1)


def sine_wave_prior(n: int, g: torch.Generator) -> torch.Tensor:
    """Uniform on ``[-1, 1]^2``: drawn at random (the original's grid made validation equal test)."""
    return torch.rand(n, 2, generator=g, dtype=torch.float64) * 2 - 1


SINE_WAVE = Task(
    name="sine_wave", x_dim=2, y_dim=1, forward=sine_wave_forward, prior=sine_wave_prior,
    lower=(-1.0, -1.0), upper=(1.0, 1.0), x_names=("x1", "x2"), y_label="y",
    description="D2 sine wave: y = sin(3 pi x1) + cos(3 pi x2), x uniform in [-1, 1]^2",
)
