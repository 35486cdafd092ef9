"""The conditional variational auto-encoder (Sohn et al. 2015; Ma et al. 2019 for inverse design).

Encoder ``q(z | x, y) -> (mu, log var)``; decoder ``(z, y) -> x``. Loss per sample: the summed squared
reconstruction error plus ``kl`` times the KL divergence of ``q`` from ``N(0, I)``, averaged over the batch
(paper eq. 7). At inference ``z ~ N(0, I)`` and the decoder proposes ``x``. For spectra (D4) ``y`` first passes
the authors' Conv1d spectrum encoder (150-500x4-20).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .base import Config, InverseModel
from .nets import hidden, mlp, y_features


@dataclass(frozen=True)
class CVAEConfig(Config):
    """cVAE settings: ``z_dim``, hidden ``encoder_widths`` / ``decoder_widths``, KL weight ``kl``;
    ``y_features`` > 0 passes ``y`` through a spectrum encoder to that many features first."""

    z_dim: int = 3
    encoder_widths: tuple[int, ...] = hidden(500, 6)
    decoder_widths: tuple[int, ...] = hidden(500, 6)
    kl: float = 0.02
    lr: float = 1e-3
    reg: float = 5e-3
    decay: float = 0.5
    y_features: int = 0

    DEFAULTS = {
        "ballistics": dict(z_dim=5, encoder_widths=hidden(500, 7), decoder_widths=hidden(500, 7), kl=0.01, decay=0.9),
        "sine_wave": dict(z_dim=3, encoder_widths=hidden(500, 6), decoder_widths=hidden(500, 6), kl=0.02),
        "robotic_arm": dict(z_dim=3, encoder_widths=hidden(500, 7), decoder_widths=hidden(500, 7), kl=1.0),
        "meta_material": dict(z_dim=30, encoder_widths=hidden(1000, 10), decoder_widths=hidden(1000, 10),
                              kl=0.005, y_features=20),
        "generic": dict(z_dim=3, encoder_widths=hidden(500, 6), decoder_widths=hidden(500, 6), kl=0.02),
    }


class CVAE(InverseModel):
    """Conditional VAE: decode ``(z, y)`` to ``x`` with ``z`` drawn from the prior."""

    name = "cvae"
    config_class = CVAEConfig

    def build(self) -> nn.Module:
        t, c = self.task, self.config
        y_net, y_dim = y_features(t.y_dim, c.y_features)
        return nn.ModuleDict({
            "y": y_net,
            "encoder": mlp((t.x_dim + y_dim, *c.encoder_widths, 2 * c.z_dim)),
            "decoder": mlp((c.z_dim + y_dim, *c.decoder_widths, t.x_dim)),
        })

    def loss(self, x: Tensor, y: Tensor, eps: Tensor | None = None) -> Tensor:
        """The ELBO loss of a batch (``eps`` fixes the reparameterisation noise, for tests)."""
        h = self.net["y"](y)
        mu, logvar = self.net["encoder"](torch.cat([x, h], 1)).chunk(2, dim=1)
        eps = torch.randn_like(mu) if eps is None else eps
        z = mu + eps * torch.exp(0.5 * logvar)
        x_hat = self.net["decoder"](torch.cat([z, h], 1))
        rec = ((x_hat - x) ** 2).sum(1)
        kld = -0.5 * (1 + logvar - mu ** 2 - logvar.exp()).sum(1)
        return (rec + self.config.kl * kld).mean()

    def _propose(self, y: Tensor, T: int, g: torch.Generator) -> Tensor:
        B = y.shape[0]
        h = self.net["y"](y).repeat(T, 1)
        z = torch.randn(T * B, self.config.z_dim, generator=g, device=self.device)
        return self.net["decoder"](torch.cat([z, h], 1)).reshape(T, B, -1)
