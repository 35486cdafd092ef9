"""Baselines that need no deep model: the classical adjoint and random search.

* :class:`ClassicalAdjoint` runs the neural-adjoint's search with the exact simulator's gradient in place of
  the surrogate's (every task here is written in torch, so autograd gives ``df/dx``). It frames what the
  learned surrogate costs in accuracy.
* :class:`RandomSearch` draws ``T`` designs from the prior: re-simulating them and keeping the best is the
  cheapest search there is.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..data import Dataset
from .base import Config, History, InverseModel
from .neural_adjoint import NAConfig, NeuralAdjoint


class ExactForward(nn.Module):
    """The task's ground truth in the models' normalised units: ``norm_y(f(denorm_x(x)))``."""

    def __init__(self, task):
        super().__init__()
        self.task = task
        for k, d in (("x_mean", task.x_dim), ("x_std", task.x_dim), ("y_mean", task.y_dim), ("y_std", task.y_dim)):
            self.register_buffer(k, torch.zeros(d) if "mean" in k else torch.ones(d))

    def forward(self, x: Tensor) -> Tensor:
        y = self.task.forward((x * self.x_std + self.x_mean).double()).to(x.dtype)
        return (y - self.y_mean) / self.y_std


@dataclass(frozen=True)
class AdjointConfig(NAConfig):
    """The neural-adjoint's inference settings; nothing is trained."""

    DEFAULTS = {k: {kk: vv for kk, vv in v.items() if kk not in ("widths", "lr", "decay", "reg")}
                for k, v in NAConfig.DEFAULTS.items()}


class ClassicalAdjoint(NeuralAdjoint):
    """The neural-adjoint search on the exact simulator: no surrogate, no training."""

    name = "adjoint"
    config_class = AdjointConfig

    def build(self) -> nn.Module:
        return ExactForward(self.task)

    def _fit(self, data: Dataset, epochs, progress) -> History:
        for k, v in self.stats.items():
            getattr(self.net, k).copy_(v)
        return History()


@dataclass(frozen=True)
class RandomSearchConfig(Config):
    """Random search has nothing to set beyond where it draws from: the task prior."""

    DEFAULTS = {"generic": {}}


class RandomSearch(InverseModel):
    """T independent draws from the task's prior, whatever the target."""

    name = "random"
    config_class = RandomSearchConfig

    def build(self) -> nn.Module:
        return nn.Module()

    def _fit(self, data: Dataset, epochs, progress) -> History:
        return History()

    def _propose(self, y: Tensor, T: int, g: torch.Generator) -> Tensor:
        x = self.task.sample_prior(T * y.shape[0], seed=g.initial_seed()).to(self.device)
        return self.norm_x(x).reshape(T, y.shape[0], -1)
