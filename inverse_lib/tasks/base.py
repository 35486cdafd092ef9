"""The task contract: a ground-truth forward model ``y = f(x)`` and a prior over ``x``.

A :class:`Task` bundles what every part of the benchmark needs to know about a problem:

* ``simulate(x)`` -- the exact forward model, batched, ``(n, x_dim) -> (n, y_dim)``;
* ``sample_prior(n, seed)`` -- draws of ``x`` from the distribution the data set is sampled from;
* ``lower`` / ``upper`` -- the box of plausible designs that the neural-adjoint uses for its
  boundary loss and that uniform starting points are drawn from.

Users build their own task with :func:`make_task` and add it to the registry with
:func:`inverse_lib.tasks.register`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

ArrayLike = Tensor | np.ndarray | Sequence


def as_tensor(x: ArrayLike, dim: int, what: str = "x", allow_grad: bool = True) -> Tensor:
    """Convert ``x`` to a 2-d floating tensor ``(n, dim)`` and check it.

    Raises:
        ValueError: if ``x`` is not 2-d with ``dim`` columns, is empty, or holds NaN/inf.
    """
    if not isinstance(x, Tensor):
        x = torch.tensor(np.asarray(x))
    if not x.is_floating_point():
        x = x.to(torch.float64)
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"{what} must have shape (n, {dim}); got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{what} is empty: expected at least one row of shape (n, {dim})")
    if not torch.isfinite(x.detach()).all():
        raise ValueError(f"{what} holds NaN or infinite values")
    return x


def check_count(n: int, what: str = "n") -> int:
    """Return ``n`` as an int, raising ``ValueError`` unless it is a positive whole number."""
    if isinstance(n, bool) or int(n) != n or n <= 0:
        raise ValueError(f"{what} must be a positive integer; got {n!r}")
    return int(n)


@dataclass(frozen=True, eq=False)
class Task:
    """A benchmark inverse problem with an exact forward model.

    Attributes:
        name: registry name, e.g. ``"sine_wave"``.
        x_dim: number of design parameters.
        y_dim: number of response values.
        forward: batched ground truth, ``Tensor (n, x_dim) float64 -> Tensor (n, y_dim)``.
            Torch-differentiable where the physics allows (used by the classical adjoint baseline).
        prior: ``(n, torch.Generator) -> Tensor (n, x_dim) float64``, the data distribution of ``x``.
        lower, upper: the box of plausible designs, in the units of ``x``.
        x_names, y_label: labels for plots and tables.
        description: one line for the book.
    """

    name: str
    x_dim: int
    y_dim: int
    forward: Callable[[Tensor], Tensor] = field(repr=False)
    prior: Callable[[int, torch.Generator], Tensor] = field(repr=False)
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    x_names: tuple[str, ...] = ()
    y_label: str = "y"
    description: str = ""

    def __post_init__(self):
        check_count(self.x_dim, "x_dim")
        check_count(self.y_dim, "y_dim")
        if len(self.lower) != self.x_dim or len(self.upper) != self.x_dim:
            raise ValueError(f"lower and upper must each have x_dim={self.x_dim} entries")
        if any(lo >= hi for lo, hi in zip(self.lower, self.upper)):
            raise ValueError(f"every lower bound must be below its upper bound: {self.lower} vs {self.upper}")
        if not self.x_names:
            object.__setattr__(self, "x_names", tuple(f"x{i + 1}" for i in range(self.x_dim)))

    # -- the public contract -------------------------------------------------------------------
    def simulate(self, x: ArrayLike) -> Tensor:
        """Run the exact forward model.

        Args:
            x: designs ``(n, x_dim)``, a torch tensor or numpy array, in the task's units.

        Returns:
            Responses ``(n, y_dim)`` with the dtype of ``x`` (float64 for integer input).
            Computed in float64; differentiable with respect to a torch ``x`` where the model is.
        """
        x = as_tensor(x, self.x_dim)
        y = self.forward(x.to(torch.float64))
        if y.shape != (x.shape[0], self.y_dim):
            raise RuntimeError(f"task {self.name!r}: forward returned {tuple(y.shape)}, "
                               f"expected {(x.shape[0], self.y_dim)}")
        return y.to(x.dtype)

    def sample_prior(self, n: int, seed: int | None = None) -> Tensor:
        """Draw ``n`` designs from the prior: ``(n, x_dim)`` float32, reproducible for a given seed."""
        n = check_count(n)
        g = torch.Generator().manual_seed(int(seed) if seed is not None else torch.seed())
        x = self.prior(n, g)
        if x.shape != (n, self.x_dim):
            raise RuntimeError(f"task {self.name!r}: prior returned {tuple(x.shape)}, expected {(n, self.x_dim)}")
        return x.to(torch.float32)

    def sample_box(self, n: int, seed: int | None = None) -> Tensor:
        """Draw ``n`` designs uniformly from the box ``[lower, upper]``: ``(n, x_dim)`` float32."""
        n = check_count(n)
        g = torch.Generator().manual_seed(int(seed) if seed is not None else torch.seed())
        lo, hi = self.box()
        return (lo + (hi - lo) * torch.rand(n, self.x_dim, generator=g, dtype=torch.float64)).float()

    def box(self) -> tuple[Tensor, Tensor]:
        """The box as two float64 tensors ``(x_dim,)``: lower and upper bounds."""
        return torch.tensor(self.lower, dtype=torch.float64), torch.tensor(self.upper, dtype=torch.float64)

    @property
    def has_gradient(self) -> bool:
        """Whether ``simulate`` is differentiable with respect to ``x`` (checked on two prior draws)."""
        x = self.sample_prior(2, seed=0).double().requires_grad_(True)
        try:
            y = self.simulate(x)
            (g,) = torch.autograd.grad(y.sum(), x)
        except RuntimeError:
            return False
        return bool(torch.isfinite(g).all())


def make_task(name: str, forward: Callable, prior: Callable, x_dim: int, y_dim: int,
              lower: Sequence[float] | None = None, upper: Sequence[float] | None = None,
              **labels) -> Task:
    """Build a :class:`Task` from a plain forward function and a prior sampler.

    Args:
        name: the name to register it under.
        forward: ``(n, x_dim) float64 tensor -> (n, y_dim) tensor``; write it with torch operations to
            get the classical-adjoint baseline for free.
        prior: ``(n, torch.Generator) -> (n, x_dim)`` tensor of draws from the data distribution.
        x_dim, y_dim: dimensions of the design and of the response.
        lower, upper: the box of plausible designs. When omitted it is estimated from 100,000 prior draws
            as mean -/+ 2 standard deviations (the paper's boundary, eq. 5).
        labels: ``x_names``, ``y_label``, ``description``.

    Example:
        >>> import torch
        >>> square = make_task("square", lambda x: x ** 2, lambda n, g: torch.rand(n, 1, generator=g, dtype=torch.float64) * 2 - 1,
        ...                    x_dim=1, y_dim=1, lower=[-1], upper=[1])
        >>> square.simulate(torch.tensor([[0.5]])).item()
        0.25
    """
    if lower is None or upper is None:
        x = prior(100_000, torch.Generator().manual_seed(0)).double()
        mu, sd = x.mean(0), x.std(0)
        lower = (mu - 2 * sd).tolist() if lower is None else lower
        upper = (mu + 2 * sd).tolist() if upper is None else upper
    return Task(name=name, x_dim=x_dim, y_dim=y_dim, forward=forward, prior=prior,
                lower=tuple(float(v) for v in lower), upper=tuple(float(v) for v in upper), **labels)


__all__ = ["Task", "make_task", "as_tensor", "check_count"]
