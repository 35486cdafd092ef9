"""D1, ballistics (Kruse et al. 2019): a projectile with linear drag; where does it land?

``x = (x1, x2, angle, v0)``: launch position, launch height (m), angle (rad) and speed (m/s).
With ``E(t) = exp(-k t / m) - 1``, ``vx = v0 cos(angle)``, ``vy = v0 sin(angle)``::

    X(t) = x1 - (vx m / k) E(t)
    Y(t) = x2 - (m / k^2) ((g m + vy k) E(t) + g t k)

``y = X(t*)`` with ``t* > 0`` the time the projectile comes down to height 0.

Kruse's code finds ``t*`` on a 1,500-point grid over ``[0, 6]`` s (a resolution floor near 1e-3 in ``y``
and no answer for flights over 6 s). ``Y`` is concave in ``t`` with ``Y(0) = x2 >= 0``, so it has exactly one
root past the apex; here it is found to machine precision by Newton's method started to the right of the root,
where concavity makes the iteration decrease monotonically onto it. Every ``x`` therefore has an impact point.
"""
import torch

from .base import Task

G = 9.81      # gravity, m / s^2
DRAG = 0.25   # linear drag coefficient k, kg / s
MASS = 0.2    # projectile mass m, kg
V0_SCALE = 15.0  # the mean of v0's Poisson prior (the original divides v0 by it for training)


def _height(t, x2, vy):
    E = torch.expm1(-DRAG * t / MASS)
    return x2 - (MASS / DRAG ** 2) * ((G * MASS + vy * DRAG) * E + G * t * DRAG)


def _height_rate(t, vy):
    return ((G * MASS + vy * DRAG) * torch.exp(-DRAG * t / MASS) - G * MASS) / DRAG


def impact_time(x: torch.Tensor, iterations: int = 60) -> torch.Tensor:
    """Time ``t* > 0`` (s) at which the projectile reaches height 0, ``(n, 4) -> (n,)``.

    Differentiable: the root is found without gradients, then one Newton step taken with gradients gives
    the implicit-function derivative ``dt*/dx = -(dY/dx) / (dY/dt)`` exactly at the root.
    """
    x2 = x[:, 1].clamp_min(0.0)
    vy = x[:, 3] * torch.sin(x[:, 2])
    with torch.no_grad():
        x2d, vyd = x2.detach(), vy.detach()
        # The drag-free flight time bounds the real one from above; double it until the height is negative.
        t = (vyd.clamp_min(0) + torch.sqrt(vyd.clamp_min(0) ** 2 + 2 * G * x2d)) / G + 1e-3
        for _ in range(64):
            low = _height(t, x2d, vyd) > 0
            if not low.any():
                break
            t = torch.where(low, 2 * t, t)
        for _ in range(iterations):
            step = _height(t, x2d, vyd) / _height_rate(t, vyd)
            t = t - torch.nan_to_num(step)
            if step.abs().max() < 1e-15:
                break
    if x.requires_grad:
        t = t - _height(t, x2, vy) / _height_rate(t, vy)
    return t


def ballistics_forward(x: torch.Tensor) -> torch.Tensor:
    """``(n, 4) -> (n, 1)``: the horizontal impact position in metres."""
    t = impact_time(x)
    vx = x[:, 3] * torch.cos(x[:, 2])
    return (x[:, 0] - (vx * MASS / DRAG) * torch.expm1(-DRAG * t / MASS)).unsqueeze(1)


def ballistics_prior(n: int, g: torch.Generator) -> torch.Tensor:
    """x1 ~ N(0, 0.5^2); x2 = max(N(1.5, 0.5^2), 0); angle ~ U(9, 81) degrees; v0 ~ Poisson(15)."""
    d = torch.float64
    x1 = 0.5 * torch.randn(n, generator=g, dtype=d)
    x2 = (1.5 + 0.5 * torch.randn(n, generator=g, dtype=d)).clamp_min(0)
    angle = torch.pi / 2 * (0.1 + 0.8 * torch.rand(n, generator=g, dtype=d))
    v0 = torch.poisson(torch.full((n,), V0_SCALE, dtype=d), generator=g)
    return torch.stack([x1, x2, angle, v0], dim=1)


BALLISTICS = Task(
    name="ballistics", x_dim=4, y_dim=1, forward=ballistics_forward, prior=ballistics_prior,
    # The authors' NA box: x4 in [0.46, 1.56] in units of 15 m/s.
    lower=(-1.0, 0.5, 0.157, 0.46 * V0_SCALE), upper=(1.0, 2.5, 1.413, 1.56 * V0_SCALE),
    x_names=("x1 (m)", "x2 (m)", "angle (rad)", "v0 (m/s)"), y_label="impact point (m)",
    description="D1 ballistics (Kruse et al. 2019): launch position, height, angle, speed -> impact point",
)
