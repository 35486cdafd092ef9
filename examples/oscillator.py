"""A task of our own, not in the paper: identify a damped oscillator from three snapshots.

x = (stiffness k in N/m, damping ratio zeta, initial velocity v0 in m/s) of a unit mass released from
x(0) = 0.1 m; y = the displacement at t = 0.5, 1.0 and 1.5 s. Different (k, zeta, v0) give nearly the same
three snapshots, so the inverse problem has many near-solutions, like the paper's.

Use it with the user-task notebook: ``task_module = "examples/oscillator.py"``.
"""
import torch

from inverse_lib.tasks import make_task

TIMES = (0.5, 1.0, 1.5)
X0 = 0.1


def forward(x: torch.Tensor) -> torch.Tensor:
    """(n, 3) -> (n, 3): under-damped response x(t) = e^{-zeta w t} (X0 cos(wd t) + (v0 + zeta w X0) / wd sin(wd t))."""
    k, zeta, v0 = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    w = torch.sqrt(k)
    wd = w * torch.sqrt(1 - zeta ** 2)
    t = x.new_tensor(TIMES)
    return torch.exp(-zeta * w * t) * (X0 * torch.cos(wd * t) + (v0 + zeta * w * X0) / wd * torch.sin(wd * t))


def prior(n: int, g: torch.Generator) -> torch.Tensor:
    """k ~ U(2, 20) N/m, zeta ~ U(0.05, 0.6), v0 ~ N(0, 0.3^2) m/s."""
    u = torch.rand(n, 2, generator=g, dtype=torch.float64)
    v0 = 0.3 * torch.randn(n, 1, generator=g, dtype=torch.float64)
    return torch.cat([2 + 18 * u[:, :1], 0.05 + 0.55 * u[:, 1:], v0], dim=1)


TASK = make_task("oscillator", forward, prior, x_dim=3, y_dim=3, lower=[2, 0.05, -0.6], upper=[20, 0.6, 0.6],
                 x_names=("k (N/m)", "zeta", "v0 (m/s)"), y_label="displacement (m)",
                 description="Damped oscillator: stiffness, damping and initial velocity -> three snapshots")
