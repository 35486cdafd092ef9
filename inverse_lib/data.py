"""Data sets: samples of ``(x, f(x))``, an 80/20 train/validation split, fresh test targets, a disk cache.

The authors took their 200 test targets from the validation split. Here test targets are drawn fresh from
the prior with a seed of their own, so no model has seen them (design.md section 2).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from torch import Tensor

from . import tasks as _tasks
from ._io import atomic_write
from .tasks import Task, check_count

VAL_FRACTION = 0.2
TEST_SEED_OFFSET = 1_000_003  # test targets use their own random stream, far from any training seed


def cache_dir() -> Path:
    """Where generated data and trained models are kept: ``$INVERSE_LIB_CACHE`` or ``~/.cache/inverse_lib``."""
    return Path(os.environ.get("INVERSE_LIB_CACHE", Path.home() / ".cache" / "inverse_lib"))


@dataclass
class Dataset:
    """Training, validation and test data of one task, in physical units.

    Attributes:
        task: the task's name.
        x_train, y_train: ``(0.8 n, x_dim)`` and ``(0.8 n, y_dim)`` float32.
        x_val, y_val: ``(0.2 n, x_dim)`` and ``(0.2 n, y_dim)`` float32.
        x_test, y_test: ``(n_test, x_dim)`` and ``(n_test, y_dim)`` float32: fresh targets, unseen in training.
        x_mean, x_std, y_mean, y_std: normalisation statistics of the training split, ``(x_dim,)`` / ``(y_dim,)``.
        seed, test_seed: the seeds the samples and the test targets were drawn with.
    """

    task: str
    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor
    x_mean: Tensor
    x_std: Tensor
    y_mean: Tensor
    y_std: Tensor
    seed: int
    test_seed: int

    @property
    def n(self) -> int:
        return len(self.x_train) + len(self.x_val)

    def norm_x(self, x: Tensor) -> Tensor:
        return (x - self.x_mean.to(x)) / self.x_std.to(x)

    def denorm_x(self, x: Tensor) -> Tensor:
        return x * self.x_std.to(x) + self.x_mean.to(x)

    def norm_y(self, y: Tensor) -> Tensor:
        return (y - self.y_mean.to(y)) / self.y_std.to(y)

    def state(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def subset(self, n_test: int) -> "Dataset":
        """The same data with only the first ``n_test`` test targets."""
        s = self.state()
        s["x_test"], s["y_test"] = self.x_test[:n_test], self.y_test[:n_test]
        return Dataset(**s)


def _checksum(state: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        v = state[k]
        h.update(k.encode())
        h.update(v.contiguous().numpy().tobytes() if isinstance(v, Tensor) else repr(v).encode())
    return h.hexdigest()


def atomic_save(obj, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename: a reader never sees a partial file."""
    atomic_write(path, lambda fh: torch.save(obj, fh))


def generate(task: Task | str, n: int = 10_000, seed: int = 0, n_test: int = 200,
             test_seed: int | None = None) -> Dataset:
    """Sample ``n`` designs from the prior, simulate them, split 80/20, and draw ``n_test`` fresh targets.

    Args:
        task: a task or its registry name.
        n: number of (x, y) pairs for training plus validation (at least 5 so both splits are non-empty).
        seed: seed of the samples and of the split.
        n_test: number of test targets, drawn from the prior with ``test_seed``.
        test_seed: defaults to ``seed + 1_000_003``: a stream disjoint from the training one.
    """
    task = _tasks.get(task)
    n, n_test = check_count(n, "n"), check_count(n_test, "n_test")
    if n < 5:
        raise ValueError(f"n must be at least 5 to give both a training and a validation split; got {n}")
    test_seed = seed + TEST_SEED_OFFSET if test_seed is None else test_seed
    x = task.sample_prior(n, seed=seed)
    y = task.simulate(x.double()).float()
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = max(1, int(round(VAL_FRACTION * n)))
    val, train = perm[:n_val], perm[n_val:]
    x_test = task.sample_prior(n_test, seed=test_seed)
    y_test = task.simulate(x_test.double()).float()
    xt, yt = x[train], y[train]
    return Dataset(task=task.name, x_train=xt, y_train=yt, x_val=x[val], y_val=y[val],
                   x_test=x_test, y_test=y_test,
                   x_mean=xt.mean(0), x_std=xt.std(0).clamp_min(1e-8),
                   y_mean=yt.mean(0), y_std=yt.std(0).clamp_min(1e-8),
                   seed=seed, test_seed=test_seed)


def load_or_generate(task: Task | str, n: int = 10_000, seed: int = 0, n_test: int = 200,
                     test_seed: int | None = None, cache: Path | str | None = None) -> Dataset:
    """Like :func:`generate`, but kept on disk, keyed by task, size and seeds.

    A second call loads the file. A file that is truncated, unreadable or whose checksum does not match is
    regenerated and rewritten (atomically, so an interrupted write never leaves a file that loads as valid).
    """
    task = _tasks.get(task)
    test_seed = seed + TEST_SEED_OFFSET if test_seed is None else test_seed
    root = Path(cache) if cache is not None else cache_dir()
    path = root / "data" / f"{task.name}_n{n}_seed{seed}_test{n_test}_tseed{test_seed}.pt"
    if path.exists():
        try:
            blob = torch.load(path, weights_only=True)
            if blob.get("checksum") == _checksum(blob["state"]):
                return Dataset(**blob["state"])
        except Exception:  # a torn or foreign file: fall through and rebuild it
            pass
    data = generate(task, n=n, seed=seed, n_test=n_test, test_seed=test_seed)
    state = data.state()
    atomic_save({"state": state, "checksum": _checksum(state)}, path)
    return data


__all__ = ["Dataset", "generate", "load_or_generate", "cache_dir", "atomic_save"]
