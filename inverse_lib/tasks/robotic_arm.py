"""D3, the robotic arm of Kruse et al. (2019): a start height and three joint angles -> the end point.

Segment lengths ``l = (0.5, 0.5, 1.0)``; cumulative angles ``a1 = x2, a2 = x2 + x3, a3 = x2 + x3 + x4``;
``y1 = sum_i l_i cos(a_i)`` (horizontal reach), ``y2 = x1 + sum_i l_i sin(a_i)`` (height).
The prior is ``N(0, diag(0.25^2, 0.5^2, 0.5^2, 0.5^2))``. The paper follows Kruse's convention, and so do we
(the authors' repository used a different angle convention).
"""
import torch

from .base import Task

SEGMENTS = (0.5, 0.5, 1.0)
PRIOR_STD = (0.25, 0.5, 0.5, 0.5)


def robotic_arm_forward(x: torch.Tensor) -> torch.Tensor:
    """``(n, 4) -> (n, 2)``: end point (horizontal, vertical) of the three-segment arm."""
    angles = torch.cumsum(x[:, 1:], dim=1)
    lengths = x.new_tensor(SEGMENTS)
    y1 = (lengths * torch.cos(angles)).sum(1)
    y2 = x[:, 0] + (lengths * torch.sin(angles)).sum(1)
    return torch.stack([y1, y2], dim=1)


def robotic_arm_prior(n: int, g: torch.Generator) -> torch.Tensor:
    return torch.randn(n, 4, generator=g, dtype=torch.float64) * torch.tensor(PRIOR_STD, dtype=torch.float64)


ROBOTIC_ARM = Task(
    name="robotic_arm", x_dim=4, y_dim=2, forward=robotic_arm_forward, prior=robotic_arm_prior,
    lower=(-0.6, -1.2, -1.2, -1.2), upper=(0.6, 1.2, 1.2, 1.2),
    x_names=("height", "angle 1", "angle 2", "angle 3"), y_label="end point",
    description="D3 robotic arm (Kruse et al. 2019): start height and 3 joint angles -> 2-d end point",
)
