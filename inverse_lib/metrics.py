"""Re-simulation error and ``r_T``, the expected best-of-T error (paper eq. 3).

``e[t, n]`` is the error of proposal ``t`` for target ``n`` after re-simulating it through the ground truth;
``r_T = mean_n min_{t < T} e[t, n]``. The spread across targets is given by the 25th/75th percentiles of the
per-target minima (the paper's error bars) and by a bootstrap confidence interval of the mean.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from . import tasks as _tasks
from .tasks import Task


def resimulation_errors(task: Task | str, x_hat: Tensor, y: Tensor,
                        simulator: Callable[[Tensor], Tensor] | None = None,
                        chunk: int = 65_536) -> Tensor:
    """Mean squared re-simulation error of every proposal.

    Args:
        task: the task (or its name) whose ground truth re-simulates the proposals.
        x_hat: proposals ``(T, B, x_dim)`` in the task's units.
        y: targets ``(B, y_dim)``.
        simulator: another forward model ``(n, x_dim) -> (n, y_dim)`` to re-simulate with instead of
            ``task.simulate`` (e.g. D4's proxy ensemble, as in the paper).
        chunk: proposals simulated at a time.

    Returns:
        ``(T, B)`` float64: mean over ``y``'s dimensions of ``(f(x_hat) - y)^2``. A proposal that is not finite
        or whose re-simulation is not finite gets ``inf``: it counts as a failure, it is never dropped.
    """
    task = _tasks.get(task)
    x_hat, y = torch.as_tensor(x_hat), torch.as_tensor(y)
    if x_hat.ndim != 3 or x_hat.shape[2] != task.x_dim:
        raise ValueError(f"x_hat must have shape (T, B, {task.x_dim}); got {tuple(x_hat.shape)}")
    if y.ndim != 2 or y.shape != (x_hat.shape[1], task.y_dim):
        raise ValueError(f"y must have shape ({x_hat.shape[1]}, {task.y_dim}) to match x_hat; got {tuple(y.shape)}")
    sim = simulator or task.forward
    T, B, _ = x_hat.shape
    flat = x_hat.detach().reshape(T * B, -1).double().cpu()
    ok = torch.isfinite(flat).all(1)
    yhat = torch.full((T * B, task.y_dim), float("nan"), dtype=torch.float64)
    idx = ok.nonzero().squeeze(1)
    with torch.no_grad():
        for s in range(0, len(idx), chunk):
            i = idx[s:s + chunk]
            yhat[i] = sim(flat[i]).double().cpu()
    err = ((yhat.reshape(T, B, -1) - y.double().cpu()) ** 2).mean(2)
    return torch.where(torch.isfinite(err), err, torch.full_like(err, float("inf")))


@dataclass
class RT:
    """``r_T`` and its spread for a set of T values.

    Attributes:
        T: the T values, ``(k,)``.
        r: mean over targets of the best error among the first T proposals, ``(k,)``.
        p25, p75: 25th and 75th percentiles of the per-target minima (the paper's error bars), ``(k,)``.
        ci_low, ci_high: bootstrap 95 % confidence interval of ``r`` over targets, ``(k,)``.
        failures: number of targets whose best proposal is still a failure (``inf``), ``(k,)``.
    """

    T: np.ndarray
    r: np.ndarray
    p25: np.ndarray
    p75: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    failures: np.ndarray

    def at(self, T: int) -> float:
        """``r_T`` at one T."""
        hit = np.nonzero(self.T == T)[0]
        if not len(hit):
            raise ValueError(f"T={T} was not evaluated; available: {self.T.tolist()}")
        return float(self.r[hit[0]])

    def to_rows(self) -> list[dict]:
        return [dict(T=int(t), r=float(r), p25=float(a), p75=float(b), ci_low=float(c), ci_high=float(d),
                     failures=int(f))
                for t, r, a, b, c, d, f in zip(self.T, self.r, self.p25, self.p75, self.ci_low, self.ci_high,
                                               self.failures)]


def best_of_T(errors: Tensor | np.ndarray, Ts: Sequence[int]) -> np.ndarray:
    """Per-target minima over the first T proposals: ``(T_max, B) -> (len(Ts), B)``."""
    e = np.asarray(errors, dtype=np.float64)
    if e.ndim != 2:
        raise ValueError(f"errors must have shape (T, B); got {e.shape}")
    Ts = np.asarray(list(Ts), dtype=int)
    if len(Ts) == 0 or Ts.min() < 1 or Ts.max() > e.shape[0]:
        raise ValueError(f"every T must lie in 1..{e.shape[0]} (the number of proposals); got {Ts.tolist()}")
    running = np.minimum.accumulate(np.where(np.isnan(e), np.inf, e), axis=0)
    return running[Ts - 1]


def r_T(errors: Tensor | np.ndarray, Ts: Sequence[int], n_boot: int = 1000, seed: int = 0) -> RT:
    """``r_T`` for every T in ``Ts`` from an error matrix ``(T_max, B)`` (see :func:`resimulation_errors`).

    The bootstrap resamples targets with replacement ``n_boot`` times (seeded); its interval is the 2.5th and
    97.5th percentiles of the resampled means.
    """
    m = best_of_T(errors, Ts)                         # (k, B)
    B = m.shape[1]
    idx = np.random.default_rng(seed).integers(0, B, size=(n_boot, B))
    with np.errstate(invalid="ignore", over="ignore"):
        boot = m[:, idx].mean(2)                      # (k, n_boot)
        return RT(T=np.asarray(list(Ts), dtype=int), r=m.mean(1),
                  p25=np.percentile(m, 25, axis=1), p75=np.percentile(m, 75, axis=1),
                  ci_low=np.percentile(boot, 2.5, axis=1), ci_high=np.percentile(boot, 97.5, axis=1),
                  failures=np.isinf(m).sum(1))


__all__ = ["resimulation_errors", "r_T", "best_of_T", "RT"]
