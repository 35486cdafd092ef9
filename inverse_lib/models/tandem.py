"""The Tandem model (Liu et al. 2018; Ma et al. 2018), with the paper's boundary loss (eq. 6).

A forward network ``f_hat: x -> y`` is trained first and frozen; an inverse network ``g: y -> x`` is then
trained through it with ``||f_hat(g(y)) - y||^2 + L_bnd(g(y))``. Deterministic: every proposal is the same,
so ``r_T`` is flat in T.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..data import Dataset
from .base import Config, History, InverseModel, train_loop
from .nets import SpectrumEncoder, hidden, mlp
from .neural_adjoint import forward_surrogate


@dataclass(frozen=True)
class TandemConfig(Config):
    """Tandem settings: ``forward_widths`` / ``inverse_widths`` hidden layers (empty forward widths mean the
    proxy architecture), ``boundary`` and ``boundary_weight`` (mean over dimensions), and the training fields.
    ``forward_epochs`` defaults to ``epochs``."""

    forward_widths: tuple[int, ...] = hidden(500, 4)
    inverse_widths: tuple[int, ...] = hidden(500, 4)
    lr: float = 1e-3
    reg: float = 5e-4
    decay: float = 0.5
    boundary: bool = True
    boundary_weight: float = 1.0
    forward_epochs: int | None = None

    DEFAULTS = {
        "ballistics": dict(forward_widths=hidden(500, 3), inverse_widths=hidden(500, 5), lr=1e-2, reg=1e-3),
        "sine_wave": dict(forward_widths=hidden(500, 4), inverse_widths=hidden(500, 4), lr=1e-3, reg=5e-4),
        "robotic_arm": dict(forward_widths=hidden(300, 2), inverse_widths=hidden(500, 3), lr=1e-3, reg=1e-4),
        "meta_material": dict(forward_widths=(), inverse_widths=hidden(250, 4), lr=1e-3, reg=5e-4),
        "generic": dict(forward_widths=hidden(500, 4), inverse_widths=hidden(500, 4), lr=1e-3, reg=5e-4),
    }


class Tandem(InverseModel):
    """Tandem: an inverse network trained through a frozen forward network."""

    name = "tandem"
    config_class = TandemConfig

    def build(self) -> nn.Module:
        t, c = self.task, self.config
        if t.y_dim > 2 * t.x_dim and t.y_dim % 2 == 0:   # spectra: the authors' Conv1d encoder
            inverse = SpectrumEncoder(t.y_dim, t.x_dim, c.inverse_widths)
        else:
            inverse = mlp((t.y_dim, *c.inverse_widths, t.x_dim))
        return nn.ModuleDict({"fwd": forward_surrogate(t, c.forward_widths), "inverse": inverse})

    def _fit(self, data: Dataset, epochs, progress) -> History:
        f, g, c = self.net["fwd"], self.net["inverse"], self.config
        mse = nn.MSELoss()
        train, val = self.tensors(data, "train"), self.tensors(data, "val")
        gen = torch.Generator().manual_seed(self.seed)
        self.forward_history = train_loop(f, lambda x, y: mse(f(x), y), train, val, c,
                                          c.forward_epochs or epochs, progress, desc="Tandem forward",
                                          generator=gen)
        for p in f.parameters():
            p.requires_grad_(False)
        lo, hi = self.norm_box()

        def loss(x, y):
            f.eval()  # frozen, BatchNorm statistics included
            xh = g(y)
            bnd = torch.relu((xh - (lo + hi) / 2).abs() - (hi - lo) / 2).mean() if c.boundary else 0.0
            return mse(f(xh), y) + c.boundary_weight * bnd

        return train_loop(g, loss, train, val, c, epochs, progress, desc="Tandem inverse", generator=gen,
                          params=list(g.parameters()))

    def _propose(self, y: Tensor, T: int, g: torch.Generator) -> Tensor:
        return self.net["inverse"](y).unsqueeze(0).expand(T, -1, -1)
