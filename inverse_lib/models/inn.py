"""Invertible networks: the INN (x <-> [y, z]) and the conditional INN (x <-> z given y), trained by maximum likelihood.

Both stack GLOW affine coupling blocks (soft clamp 2.0) with fixed random permutations between them, built
from FrEIA's ``SequenceINN``, ``GLOWCouplingBlock`` and ``PermuteRandom``.

* :class:`INN` maps a design ``x`` (normalised, zero-padded to ``dim_tot``) bijectively to ``[y, z, pad]``
  and is trained with the likelihood of Kruse et al.: the ``y`` part is a Gaussian around the true
  response with variance ``lambda_mse``, ``z`` is standard normal. At inference the network runs backwards
  on ``[y, z ~ N(0, I), 0]``. It is only defined when ``y`` has no more dimensions than ``x``.
* :class:`CINN` maps ``x`` bijectively to ``z`` of the same size, every coupling subnet seeing the
  (normalised) target ``y`` as a condition; trained with ``0.5 ||z||^2 - log|det J|``, inverted on
  ``z ~ N(0, I)``.

Layout decisions (design.md section 3):

* INN output layout ``[y, z, pad_out]`` with ``dim_tot = y_dim + z_dim + pad_out``. The ``pad_out`` part gets
  the same Gaussian term as ``y`` with target zero, ``0.5 ||pad_out||^2 / lambda_mse``: at inference it is
  set to zero, so it must carry no information about ``x`` (a unit-variance pad would be a second latent
  that inference silently ignores). This matches the original INN, which pulled its output padding towards
  zero. The input padding gets N(0, pad_noise^2) noise during training so that the map stays well
  conditioned in the padded directions.
* The z term uses the network's output ``z`` (the original used the sampled z, which carried no gradient).
* cINN: a GLOW coupling needs at least two dimensions, so a one-dimensional ``x`` is padded with one
  extra dimension (zeros plus N(0, pad_noise^2) noise in training; a standard-normal draw at inference that is
  then dropped). Odd sizes of three or more need no padding: the coupling splits them unevenly.
* cINN condition: the normalised ``y`` itself is concatenated to every subnet's input, for D4 too (the
  300-point spectrum). Setting ``cond_dim`` inserts a small learned feature extractor
  ``y_dim -> 256 -> cond_dim`` (ReLU), trained jointly, shared by all blocks.
* Permutations are drawn from numpy seeded with the model's seed (the global numpy state is restored
  afterwards) and are kept as buffers in the state dict, so :func:`~inverse_lib.models.load` reproduces them.
* Each subnet's last layer starts at a tenth of PyTorch's default scale, so the untrained flow is close to
  the identity yet every parameter gets a gradient from the first step.

References:
    Ardizzone et al., "Analyzing inverse problems with invertible neural networks", ICLR 2019, arXiv:1808.04730.
    Kruse et al., "Benchmarking invertible architectures on inverse problems", 2019, arXiv:2101.10763.
    Dinh et al., "Density estimation using Real NVP", ICLR 2017, arXiv:1605.08803.
    Kingma & Dhariwal, "Glow: generative flow with invertible 1x1 convolutions", NeurIPS 2018, arXiv:1807.03039.
    Ardizzone et al., "Guided image generation with conditional invertible neural networks", 2019,
    arXiv:1907.02392 (the cINN).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Sequence

import numpy as np
import torch
from FrEIA.framework import SequenceINN
from FrEIA.modules import GLOWCouplingBlock, PermuteRandom
from torch import Tensor, nn

from .base import Config, InverseModel
from .nets import hidden, mlp

_CHUNK = 65_536  # rows inverted at a time in propose()


def glow_subnet(c_in: int, c_out: int, widths: Sequence[int]) -> nn.Sequential:
    """A coupling subnet ``c_in -> widths... -> c_out`` with ReLU and no normalisation layers.

    The last layer is scaled down to a tenth of its default initialisation so that each block starts close
    to the identity (stable early training) while every weight still receives a gradient.
    """
    net = mlp((c_in, *widths, c_out), batchnorm=False)
    with torch.no_grad():
        net[-1].weight.mul_(0.1)
        net[-1].bias.zero_()
    return net


def glow_flow(dim: int, blocks: int, widths: Sequence[int], clamp: float, seed: int,
              cond_dim: int | None = None) -> SequenceINN:
    """``blocks`` x (GLOW coupling, fixed random permutation) on vectors of ``dim``.

    Args:
        dim: the flow's width (at least 2: a coupling splits its input in two).
        blocks: number of coupling blocks, each followed by a random permutation.
        widths: hidden widths of every subnet.
        clamp: soft clamp of the log-scales (each block scales a coordinate by at most ``exp(+-clamp)``).
        seed: seeds the permutations (numpy's global state is restored afterwards).
        cond_dim: width of the condition fed to every subnet (``None``: unconditional).

    Returns:
        A FrEIA ``SequenceINN``: ``flow(v, c=[cond], rev=False) -> (out (n, dim), log|det J| (n,))``; with
        ``rev=True`` it runs the inverse and returns the inverse's log-determinant.
    """
    if dim < 2:
        raise ValueError(f"a GLOW coupling flow needs at least 2 dimensions; got {dim}")
    flow = SequenceINN(dim)
    state = np.random.get_state()
    try:
        np.random.seed(seed % 2 ** 32)
        for _ in range(blocks):
            cond = {} if cond_dim is None else {"cond": 0, "cond_shape": (cond_dim,)}
            flow.append(GLOWCouplingBlock, subnet_constructor=lambda a, b: glow_subnet(a, b, widths),
                        clamp=clamp, **cond)
            flow.append(PermuteRandom)
    finally:
        np.random.set_state(state)
    # FrEIA keeps the permutation indices as frozen Parameters; as buffers they stay in the state dict (so
    # load() restores them) without posing as parameters to optimisers or parameter checks.
    for mod in flow.modules():
        if isinstance(mod, PermuteRandom):
            for k in ("perm", "perm_inv"):
                idx = getattr(mod, k).detach().clone()
                delattr(mod, k)
                mod.register_buffer(k, idx)
    return flow


def _check_flow_settings(cfg) -> None:
    if isinstance(cfg.widths, (int, float)) or not all(int(w) == w for w in cfg.widths):
        raise ValueError(f"widths must be a sequence of layer widths, e.g. (512, 512); got {cfg.widths!r}")
    object.__setattr__(cfg, "widths", tuple(int(w) for w in cfg.widths))
    if cfg.blocks < 1:
        raise ValueError(f"blocks must be at least 1; got {cfg.blocks}")
    if not cfg.clamp > 0:
        raise ValueError(f"clamp must be positive; got {cfg.clamp}")
    if cfg.pad_noise < 0:
        raise ValueError(f"pad_noise must be non-negative; got {cfg.pad_noise}")
    if not cfg.widths or min(cfg.widths) < 1:
        raise ValueError(f"widths must list at least one positive width; got {cfg.widths}")


# ---------------------------------------------------------------------------------------------------------
# INN
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class INNConfig(Config):
    """Settings of the :class:`INN` (design.md section 3; Kruse et al. 2019).

    Attributes:
        blocks: GLOW coupling blocks (each followed by a random permutation).
        dim_tot: the flow's width; ``x`` is zero-padded up to it. ``None``: ``max(x_dim, y_dim + z_dim, 2)``.
        z_dim: size of the latent ``z``. ``None``: ``max(x_dim - y_dim, 1)``.
        widths: hidden widths of each coupling subnet (ReLU).
        clamp: soft clamp of the coupling log-scales.
        lambda_mse: variance of the Gaussian around the true ``y`` (and around zero for the output padding).
        pad_noise: standard deviation of the noise added to the input padding in training.
        y_noise: standard deviation of the noise added to the normalised ``y`` targets in training.
    """

    blocks: int = 4
    dim_tot: int | None = None
    z_dim: int | None = None
    widths: tuple[int, ...] = hidden(512, 2)
    clamp: float = 2.0
    lambda_mse: float = 0.01
    pad_noise: float = 0.05
    y_noise: float = 0.1
    lr: float = 1e-3
    reg: float = 5e-3
    decay: float = 0.9
    patience: int = 20
    grad_clip: float | None = 15.0

    DEFAULTS: ClassVar[dict] = {
        "ballistics": dict(blocks=6, dim_tot=4, z_dim=3),
        "sine_wave": dict(blocks=4, dim_tot=4, z_dim=1),
        "robotic_arm": dict(blocks=7, dim_tot=4, z_dim=2, y_noise=0.01),
        "generic": dict(blocks=4),  # dim_tot and z_dim follow from the task's sizes
    }

    def __post_init__(self):
        super().__post_init__()
        _check_flow_settings(self)
        if not self.lambda_mse > 0:
            raise ValueError(f"lambda_mse must be positive; got {self.lambda_mse}")
        if self.y_noise < 0:
            raise ValueError(f"y_noise must be non-negative; got {self.y_noise}")


class INN(InverseModel):
    """Invertible neural network ``x <-> [y, z, pad]`` trained by maximum likelihood (Kruse et al. 2019).

    Forward direction (training): ``v = [x, pad_in]`` of width ``dim_tot`` maps to ``[y_hat, z, pad_out]``;
    the loss per sample is::

        0.5 * (||y_hat - y||^2 + ||pad_out||^2) / lambda_mse + 0.5 * ||z||^2 - log|det J(v)|

    averaged over the batch, with noise on ``y`` (``y_noise``) and on ``pad_in`` (``pad_noise``).
    Inverse direction (inference): ``[y, z ~ N(0, I), 0] -> v``, of which the first ``x_dim`` entries are
    the proposal.

    Raises:
        ValueError: when the task's ``y`` has more dimensions than its ``x`` (e.g. the meta-material task,
            8 -> 300): the bijection ``x <-> [y, z]`` does not exist there; use ``"cinn"``. Also when
            ``dim_tot`` is smaller than ``x_dim`` or than ``y_dim + z_dim``.

    Example:
        >>> from inverse_lib import models
        >>> m = models.create("inn", "sine_wave", epochs=1)
        >>> (m.dim_tot, m.z_dim, m.pad_in, m.pad_out)
        (4, 1, 2, 2)

    References:
        Kruse et al. 2019, arXiv:2101.10763; Ardizzone et al. 2019, arXiv:1808.04730;
        Dinh et al. 2017, arXiv:1605.08803; Kingma & Dhariwal 2018, arXiv:1807.03039.
    """

    name = "inn"
    config_class = INNConfig

    def build(self) -> nn.Module:
        t, c = self.task, self.config
        if t.y_dim > t.x_dim:
            raise ValueError(
                f"the INN is not defined for task {t.name!r}: y has {t.y_dim} dimensions but x only {t.x_dim}, "
                f"and the INN maps x bijectively to [y, z], which needs y_dim <= x_dim (as in the paper); "
                f"use the conditional INN ('cinn') instead")
        self.z_dim = c.z_dim if c.z_dim is not None else max(t.x_dim - t.y_dim, 1)
        if self.z_dim < 1:
            raise ValueError(f"z_dim must be at least 1; got {self.z_dim}")
        self.dim_tot = c.dim_tot if c.dim_tot is not None else max(t.x_dim, t.y_dim + self.z_dim, 2)
        if self.dim_tot < max(t.x_dim, t.y_dim + self.z_dim, 2):
            raise ValueError(
                f"dim_tot={self.dim_tot} is too small for task {t.name!r}: it must hold x ({t.x_dim}), "
                f"y + z ({t.y_dim} + {self.z_dim}) and be at least 2")
        self.pad_in = self.dim_tot - t.x_dim
        self.pad_out = self.dim_tot - t.y_dim - self.z_dim
        return glow_flow(self.dim_tot, c.blocks, c.widths, c.clamp, self.seed)

    # -- the maps ------------------------------------------------------------------------------
    def pad(self, x: Tensor, noise: float = 0.0) -> Tensor:
        """``(n, x_dim) -> (n, dim_tot)``: append ``pad_in`` zeros (plus N(0, noise^2) noise)."""
        p = x.new_zeros(len(x), self.pad_in)
        if noise:
            p = p + noise * torch.randn_like(p)
        return torch.cat([x, p], 1)

    def encode(self, v: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Run forward on padded designs ``v (n, dim_tot)``.

        Returns:
            ``y_hat (n, y_dim)``, ``z (n, z_dim)``, ``pad_out (n, pad_out)`` and ``log|det J| (n,)``.
        """
        out, logdet = self.net(v)
        y_dim = self.task.y_dim
        return out[:, :y_dim], out[:, y_dim:y_dim + self.z_dim], out[:, y_dim + self.z_dim:], logdet

    def decode(self, y: Tensor, z: Tensor) -> Tensor:
        """Run backwards on ``[y (n, y_dim), z (n, z_dim), zeros]``: ``(n, x_dim)`` normalised designs."""
        u = torch.cat([y, z, y.new_zeros(len(y), self.pad_out)], 1)
        v, _ = self.net(u, rev=True)
        return v[:, :self.task.x_dim]

    def loss_terms(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """Batch means of the loss's terms on normalised ``x (n, x_dim)``, ``y (n, y_dim)``.

        Noise is added (to ``y`` and the input padding) only while the network is in training mode.

        Returns:
            ``{"y": 0.5 ||y_hat - y||^2 / lambda_mse, "z": 0.5 ||z||^2, "pad": 0.5 ||pad_out||^2 / lambda_mse,
            "logdet": log|det J|}``, each a scalar.
        """
        c = self.config
        noisy = self.net.training
        if noisy and c.y_noise:
            y = y + c.y_noise * torch.randn_like(y)
        y_hat, z, p, logdet = self.encode(self.pad(x, c.pad_noise if noisy else 0.0))
        return {"y": 0.5 * ((y_hat - y) ** 2).sum(1).mean() / c.lambda_mse,
                "z": 0.5 * (z ** 2).sum(1).mean(),
                "pad": 0.5 * (p ** 2).sum(1).mean() / c.lambda_mse,
                "logdet": logdet.mean()}

    def loss(self, x: Tensor, y: Tensor) -> Tensor:
        """The negative log-likelihood (up to a constant), a scalar; see :meth:`loss_terms`."""
        t = self.loss_terms(x, y)
        return t["y"] + t["z"] + t["pad"] - t["logdet"]

    # -- the contract --------------------------------------------------------------------------
    def _propose(self, y: Tensor, T: int, g: torch.Generator) -> Tensor:
        B = len(y)
        yy = y.repeat(T, 1)
        z = torch.randn(T * B, self.z_dim, generator=g, device=y.device, dtype=y.dtype)
        x = torch.cat([self.decode(yy[s:s + _CHUNK], z[s:s + _CHUNK]) for s in range(0, T * B, _CHUNK)])
        return x.reshape(T, B, self.task.x_dim)


# ---------------------------------------------------------------------------------------------------------
# cINN
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CINNConfig(Config):
    """Settings of the :class:`CINN` (design.md section 3).

    Attributes:
        blocks: conditional GLOW coupling blocks (each followed by a random permutation).
        widths: hidden widths of each coupling subnet (ReLU); the subnets also see the condition.
        clamp: soft clamp of the coupling log-scales.
        pad_noise: standard deviation of the noise on the padding of a one-dimensional ``x``.
        cond_dim: ``None`` feeds the normalised ``y`` to the subnets directly; an int inserts a learned
            extractor ``y_dim -> 256 -> cond_dim`` (ReLU) whose features are the condition.
    """

    blocks: int = 10
    widths: tuple[int, ...] = hidden(160, 3)
    clamp: float = 2.0
    pad_noise: float = 0.05
    cond_dim: int | None = None
    lr: float = 1e-3
    reg: float = 2e-5
    decay: float = 0.5
    patience: int = 20

    DEFAULTS: ClassVar[dict] = {
        "ballistics": dict(blocks=13, reg=2e-5, decay=0.5),  # the paper-time setting was 30 blocks
        "sine_wave": dict(blocks=10, reg=2e-5, decay=0.5),
        "robotic_arm": dict(blocks=6, reg=5e-3, decay=0.9),
        "meta_material": dict(blocks=14, reg=2e-5, decay=0.5),
        "generic": dict(blocks=10, reg=2e-5, decay=0.5),
    }

    def __post_init__(self):
        super().__post_init__()
        _check_flow_settings(self)
        if self.cond_dim is not None and self.cond_dim < 1:
            raise ValueError(f"cond_dim must be a positive integer or None; got {self.cond_dim}")


class ConditionalFlow(nn.Module):
    """A conditional GLOW flow plus its (optional) condition extractor.

    ``forward(v (n, dim), y (n, y_dim), rev=False) -> (out (n, dim), log|det J| (n,))``.
    """

    def __init__(self, dim: int, y_dim: int, cfg: CINNConfig, seed: int):
        super().__init__()
        self.cond = nn.Identity() if cfg.cond_dim is None else mlp((y_dim, 256, cfg.cond_dim), batchnorm=False)
        c_dim = y_dim if cfg.cond_dim is None else cfg.cond_dim
        self.flow = glow_flow(dim, cfg.blocks, cfg.widths, cfg.clamp, seed, cond_dim=c_dim)

    def forward(self, v: Tensor, y: Tensor, rev: bool = False) -> tuple[Tensor, Tensor]:
        return self.flow(v, c=[self.cond(y)], rev=rev)


class CINN(InverseModel):
    """Conditional invertible network ``x <-> z`` given ``y``, trained by maximum likelihood.

    Forward (training): ``v = [x, pad]`` (``pad`` only for a one-dimensional ``x``) maps to ``z`` of the
    same width under the condition ``y``; loss = batch mean of ``0.5 ||z||^2 - log|det J(v)|``.
    Inverse (inference): ``z ~ N(0, I) -> v`` under ``y``; the first ``x_dim`` entries are the proposal.

    Example:
        >>> from inverse_lib import models
        >>> m = models.create("cinn", "robotic_arm", epochs=1)
        >>> (m.dim, m.config.blocks)
        (4, 6)

    References:
        Ardizzone et al. 2019, arXiv:1907.02392 and arXiv:1808.04730; Kruse et al. 2019, arXiv:2101.10763;
        Dinh et al. 2017, arXiv:1605.08803; Kingma & Dhariwal 2018, arXiv:1807.03039.
    """

    name = "cinn"
    config_class = CINNConfig

    def build(self) -> nn.Module:
        self.dim = max(self.task.x_dim, 2)
        self.pad_in = self.dim - self.task.x_dim
        return ConditionalFlow(self.dim, self.task.y_dim, self.config, self.seed)

    def encode(self, v: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Forward on padded designs ``v (n, dim)`` given ``y (n, y_dim)``: ``z (n, dim)`` and ``log|det J| (n,)``."""
        return self.net(v, y)

    def decode(self, z: Tensor, y: Tensor) -> Tensor:
        """Backwards from ``z (n, dim)`` given ``y (n, y_dim)``: ``(n, x_dim)`` normalised designs."""
        v, _ = self.net(z, y, rev=True)
        return v[:, :self.task.x_dim]

    def loss_terms(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """Batch means ``{"z": 0.5 ||z||^2, "logdet": log|det J|}`` on normalised ``x``, ``y``."""
        v = x
        if self.pad_in:
            p = x.new_zeros(len(x), self.pad_in)
            if self.net.training and self.config.pad_noise:
                p = p + self.config.pad_noise * torch.randn_like(p)
            v = torch.cat([x, p], 1)
        z, logdet = self.encode(v, y)
        return {"z": 0.5 * (z ** 2).sum(1).mean(), "logdet": logdet.mean()}

    def loss(self, x: Tensor, y: Tensor) -> Tensor:
        """``mean(0.5 ||z||^2 - log|det J|)``, a scalar."""
        t = self.loss_terms(x, y)
        return t["z"] - t["logdet"]

    def _propose(self, y: Tensor, T: int, g: torch.Generator) -> Tensor:
        B = len(y)
        yy = y.repeat(T, 1)
        z = torch.randn(T * B, self.dim, generator=g, device=y.device, dtype=y.dtype)
        x = torch.cat([self.decode(z[s:s + _CHUNK], yy[s:s + _CHUNK]) for s in range(0, T * B, _CHUNK)])
        return x.reshape(T, B, self.task.x_dim)


__all__ = ["INN", "INNConfig", "CINN", "CINNConfig", "ConditionalFlow", "glow_flow", "glow_subnet"]
