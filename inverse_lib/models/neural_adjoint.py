"""The neural-adjoint (NA) method (Ren, Padilla & Malof 2020, section 3).

Train a forward surrogate ``f_hat`` on ``(x, y)``; then, with its weights frozen, start from a pool of designs
drawn from ``Gamma`` (by default the task's prior) and descend ``L(f_hat(x), y) + L_bnd(x)`` with Adam on ``x``.
After the last step the pool is ranked by the surrogate's loss and the best ``T`` are the proposals.

Inference here batches every target and every starting point through the network together (chunked to a
memory budget), computes gradients with respect to the inputs only, and keeps one Adam state and one
plateau-scheduled learning rate per target, exactly as if each target were optimised alone.
Optionally (``prune``) it drops, in stages, candidates that rank too low to reach the final top ``T``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from ..data import Dataset
from .base import Config, History, InverseModel, train_loop
from .nets import hidden, mlp


@dataclass(frozen=True)
class NAConfig(Config):
    """Neural-adjoint settings (design.md section 3; the authors' values per task in ``DEFAULTS``).

    Training: ``widths`` are the surrogate's hidden layers. Inference: ``pool`` starting points per target,
    ``steps`` Adam steps at ``infer_lr`` with a per-target ReduceLROnPlateau (``infer_decay``, ``infer_patience``);
    boundary loss ``relu(|x - centre| - width / 2)`` with ``boundary_weight``, summed (``"sum"``) or averaged
    (``"mean"``) over dimensions, or off (``boundary=False``); ``init`` picks Gamma: the task prior, a uniform
    draw in the box, or a Gaussian centred in the box (sd = width / 4). ``prune`` lists ``(fraction of steps,
    fraction kept)`` stages, never keeping fewer than ``prune_floor * T`` per target. ``memory_mb`` bounds one chunk.
    """

    widths: tuple[int, ...] = hidden(500, 4)
    lr: float = 5e-4
    decay: float = 0.5
    reg: float = 5e-4
    pool: int = 2048
    steps: int = 300
    infer_lr: float = 0.5
    infer_decay: float = 0.5
    infer_patience: int = 10
    boundary: bool = True
    boundary_weight: float = 0.1
    boundary_reduction: Literal["sum", "mean"] = "sum"
    init: Literal["prior", "uniform", "gaussian"] = "prior"
    prune: tuple[tuple[float, float], ...] = ()
    prune_floor: float = 2.0
    memory_mb: int = 1024

    DEFAULTS = {
        "ballistics": dict(widths=hidden(500, 3), lr=1e-2, decay=0.8, reg=5e-3),
        "sine_wave": dict(widths=hidden(500, 4), lr=5e-4, decay=0.5, reg=5e-4),
        "robotic_arm": dict(widths=hidden(500, 4), lr=1e-3, decay=0.5, reg=2e-2),
        "meta_material": dict(widths=(), lr=5e-4, decay=0.5, reg=2e-5, boundary_weight=10.0,
                              boundary_reduction="mean"),
        "generic": dict(widths=hidden(500, 4), lr=1e-3, decay=0.5, reg=5e-4),
    }

    def __post_init__(self):
        super().__post_init__()
        if self.init not in ("prior", "uniform", "gaussian"):
            raise ValueError(f"init must be 'prior', 'uniform' or 'gaussian'; got {self.init!r}")
        if self.boundary_reduction not in ("sum", "mean"):
            raise ValueError(f"boundary_reduction must be 'sum' or 'mean'; got {self.boundary_reduction!r}")


def forward_surrogate(task, widths) -> nn.Module:
    """The forward network ``x -> y``: an mlp, or the authors' proxy architecture for the meta-material."""
    if task.name == "meta_material" or not widths:
        from ..proxy import ProxyNet
        return ProxyNet(x_dim=task.x_dim, y_dim=task.y_dim)
    return mlp((task.x_dim, *widths, task.y_dim))


class NeuralAdjoint(InverseModel):
    """Neural-adjoint: a forward surrogate searched by gradient descent on its input."""

    name = "na"
    config_class = NAConfig

    def build(self) -> nn.Module:
        return forward_surrogate(self.task, self.config.widths)

    def _fit(self, data: Dataset, epochs, progress) -> History:
        f = self.net
        mse = nn.MSELoss()
        return train_loop(f, lambda x, y: mse(f(x), y), self.tensors(data, "train"), self.tensors(data, "val"),
                          self.config, epochs, progress, desc="NA surrogate",
                          generator=torch.Generator().manual_seed(self.seed))

    # -- inference -----------------------------------------------------------------------------
    def boundary_loss(self, x: Tensor) -> Tensor:
        """Per-candidate boundary loss ``(..., x_dim) -> (...)`` in normalised units (paper eq. 5)."""
        lo, hi = self.norm_box()
        excess = torch.relu((x - (lo + hi) / 2).abs() - (hi - lo) / 2)
        return excess.sum(-1) if self.config.boundary_reduction == "sum" else excess.mean(-1)

    def candidate_loss(self, x: Tensor, y: Tensor) -> Tensor:
        """Surrogate loss of each candidate: ``x (B, P, x_dim)``, ``y (B, y_dim)`` -> ``(B, P)``."""
        B, P, _ = x.shape
        pred = self.net(x.reshape(B * P, -1)).reshape(B, P, -1)
        loss = ((pred - y[:, None, :]) ** 2).mean(-1)
        if self.config.boundary:
            loss = loss + self.config.boundary_weight * self.boundary_loss(x)
        return loss

    def starting_points(self, n: int, seed: int) -> Tensor:
        """``n`` draws from Gamma, normalised, on the device."""
        c = self.config
        if c.init == "prior":
            x = self.task.sample_prior(n, seed=seed)
        elif c.init == "uniform":
            x = self.task.sample_box(n, seed=seed)
        else:
            lo, hi = self.task.box()
            g = torch.Generator().manual_seed(seed)
            x = ((lo + hi) / 2 + (hi - lo) / 4 * torch.randn(n, self.task.x_dim, generator=g, dtype=torch.float64))
        return self.norm_x(x.float().to(self.device))

    def chunk_targets(self) -> int:
        """How many targets' pools fit in ``memory_mb`` (activations kept for the input gradient)."""
        width = sum(m.out_features for m in self.net.modules() if isinstance(m, nn.Linear))
        width = max(width, 4 * self.task.y_dim + 1000)
        per_target = self.config.pool * width * 4 * 4  # float32, activations plus BN/ReLU copies
        return max(1, int(self.config.memory_mb * 2 ** 20 // per_target))

    def search(self, y: Tensor, T: int, x0: Tensor):
        """Run the gradient search for normalised targets ``y (B, y_dim)`` from ``x0 (B, pool, x_dim)``.

        Returns the best ``T`` candidates ``(T, B, x_dim)`` (normalised), their surrogate losses ``(T, B)``,
        and the number of candidate-steps taken (the work done; pruning lowers it).
        """
        c = self.config
        for p in self.net.parameters():
            p.requires_grad_(False)
        B, P = y.shape[0], c.pool
        if T > P:
            raise ValueError(f"T={T} exceeds the pool of {P} starting points; raise pool")
        x = x0.clone()
        m, v = torch.zeros_like(x), torch.zeros_like(x)
        lr = torch.full((B,), c.infer_lr, device=self.device)
        best = torch.full((B,), float("inf"), device=self.device)
        bad = torch.zeros(B, dtype=torch.long, device=self.device)
        b1, b2, eps = 0.9, 0.999, 1e-8
        stages = sorted((int(round(f * c.steps)), k) for f, k in c.prune)
        work = 0
        for step in range(1, c.steps + 1):
            x.requires_grad_(True)
            with torch.enable_grad():
                loss = self.candidate_loss(x, y)                   # (B, P)
                (g,) = torch.autograd.grad(loss.sum() / P, x)       # each target's mean, as the authors'
            x = x.detach()
            work += x.shape[0] * x.shape[1]
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            step_size = lr / (1 - b1 ** step)
            x = x - step_size[:, None, None] * m / ((v / (1 - b2 ** step)).sqrt() + eps)
            # ReduceLROnPlateau (relative threshold 1e-4) per target, on the mean pool loss
            mean = loss.detach().mean(1)
            improved = mean < best * (1 - 1e-4)
            best = torch.where(improved, mean, best)
            bad = torch.where(improved, torch.zeros_like(bad), bad + 1)
            cut = bad > c.infer_patience
            lr = torch.where(cut, lr * c.infer_decay, lr)
            bad = torch.where(cut, torch.zeros_like(bad), bad)
            while stages and step == stages[0][0]:
                _, keep = stages.pop(0)
                k = min(x.shape[1], max(int(round(c.prune_floor * T)), int(round(keep * x.shape[1]))))
                order = loss.detach().argsort(1)[:, :k]
                take = lambda t: torch.gather(t, 1, order[..., None].expand(-1, -1, t.shape[2]))
                x, m, v = take(x), take(m), take(v)
        with torch.no_grad():
            final = self.candidate_loss(x, y)
        order = final.argsort(1)[:, :T]                                 # (B, T)
        xs = torch.gather(x, 1, order[..., None].expand(-1, -1, x.shape[2]))
        return xs.transpose(0, 1), torch.gather(final, 1, order).T, work

    def _propose(self, y: Tensor, T: int, g: torch.Generator) -> Tensor:
        B, P = y.shape[0], self.config.pool
        x0 = self.starting_points(B * P, g.initial_seed()).reshape(B, P, -1)
        n = self.chunk_targets()
        return torch.cat([self.search(y[s:s + n], T, x0[s:s + n])[0] for s in range(0, B, n)], dim=1)
