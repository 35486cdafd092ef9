"""The contract every inverse model follows, and the training loop they share.

An inverse model is built for one task with :func:`inverse_lib.models.create`. It

* MUST train with :meth:`InverseModel.fit` on a :class:`~inverse_lib.data.Dataset` (physical units in,
  normalised internally) and return a :class:`History`;
* MUST return from :meth:`InverseModel.propose` a tensor ``(T, B, x_dim)`` of candidate designs, in the
  task's physical units, float32 on the CPU, for targets ``(B, y_dim)``; the same ``seed`` gives the same
  proposals;
* MUST round-trip through :meth:`InverseModel.save` / :func:`load`.

Training follows the authors' protocol (design.md section 3): Adam with weight decay, batch 1024,
ReduceLROnPlateau on the training loss, and the best-validation checkpoint is kept.
"""
from __future__ import annotations

import copy
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, ClassVar

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .. import tasks as _tasks
from ..data import Dataset, atomic_save
from ..tasks import Task, as_tensor, check_count


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` is CUDA when present, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def show_progress(progress: bool | None) -> bool:
    """Progress bars are on in a terminal, off otherwise (notebooks, logs, CI), unless asked."""
    return sys.stderr.isatty() if progress is None else bool(progress)


SCHEDULES = ("plateau", "cosine")


def check_schedule(schedule: str) -> str:
    """``schedule`` if it names a learning-rate schedule, else a ``ValueError`` naming the valid ones."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be 'plateau' (the authors') or 'cosine'; got {schedule!r}")
    return schedule


def lr_schedule(opt: torch.optim.Optimizer, schedule: str, epochs: int, decay: float,
                patience: int) -> tuple[Any, Callable[[float], None]]:
    """The learning-rate scheduler of a training run and the function to call once per epoch with the epoch's
    training loss: ``"plateau"`` is the authors' ReduceLROnPlateau (``decay``, ``patience``, relative threshold
    1e-4), ``"cosine"`` anneals the rate to 0 over ``epochs``. Returns ``(scheduler, step)``."""
    if check_schedule(schedule) == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
        return sched, lambda train_loss: sched.step()
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=decay, patience=patience,
                                                       threshold=1e-4)
    return sched, sched.step


@dataclass(frozen=True)
class Config:
    """Base of the per-model settings. Subclasses list their fields; ``DEFAULTS`` holds the per-task values.

    Shared training fields: ``epochs``, ``batch_size``, ``lr``, ``reg`` (Adam weight decay), ``decay`` and
    ``patience`` (ReduceLROnPlateau on the training loss), ``grad_clip`` (None for none), ``schedule``:
    ``"plateau"`` (the authors' ReduceLROnPlateau) or ``"cosine"`` (the learning rate annealed from ``lr`` to 0
    by a cosine over the epochs, for short runs in which the plateau rule would hardly ever lower it).
    """

    epochs: int = 500
    batch_size: int = 1024
    lr: float = 1e-3
    reg: float = 5e-4
    decay: float = 0.5
    patience: int = 10
    grad_clip: float | None = None
    schedule: str = "plateau"

    DEFAULTS: ClassVar[dict[str, dict[str, Any]]] = {}

    @classmethod
    def for_task(cls, task: str, **overrides) -> "Config":
        """The authors' settings for ``task`` (a generic set for tasks outside the paper), with overrides.

        Raises:
            ValueError: for an unknown setting; the message lists the valid names.
        """
        valid = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - valid)
        if unknown:
            raise ValueError(f"unknown setting(s) {unknown} for {cls.__name__}; valid: {', '.join(sorted(valid))}")
        values = dict(cls.DEFAULTS.get(task, cls.DEFAULTS.get("generic", {})))
        values.update(overrides)
        return cls(**values)

    def __post_init__(self):
        check_count(self.epochs, "epochs")
        check_count(self.batch_size, "batch_size")
        check_schedule(self.schedule)


@dataclass
class History:
    """Per-epoch losses of one training run (the model's own loss on each split)."""

    train: list[float] = field(default_factory=list)
    val: list[float] = field(default_factory=list)
    best_epoch: int = -1
    seconds: float = 0.0

    @property
    def best_val(self) -> float:
        return self.val[self.best_epoch] if self.best_epoch >= 0 else float("nan")


def train_loop(module: nn.Module, loss_fn: Callable[..., Tensor], train: tuple[Tensor, ...],
               val: tuple[Tensor, ...], cfg: Config, epochs: int | None = None, progress: bool | None = None,
               desc: str = "training", generator: torch.Generator | None = None,
               params: list[nn.Parameter] | None = None) -> History:
    """Train ``module`` with the authors' protocol and load its best-validation weights back into it.

    Args:
        module: holds every parameter that is trained (and any frozen part, which stays in eval mode
            if its parameters have ``requires_grad=False`` and it is excluded through ``params``).
        loss_fn: ``loss_fn(*batch) -> scalar`` on tensors already on the module's device.
        train, val: tuples of tensors with the same first dimension.
        cfg: the model's config (``lr``, ``reg``, ``decay``, ``patience``, ``batch_size``, ``grad_clip``).
        epochs: overrides ``cfg.epochs``.
        progress: show a progress bar (default: only in a terminal).
        generator: seeds the batch order.
        params: the parameters to optimise (default: every parameter that requires a gradient).
    """
    epochs = check_count(epochs if epochs is not None else cfg.epochs, "epochs")
    params = params if params is not None else [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.reg)
    _, schedule_step = lr_schedule(opt, cfg.schedule, epochs, cfg.decay, cfg.patience)
    n = len(train[0])
    hist, best, t0 = History(), None, time.perf_counter()
    bar = tqdm(range(epochs), desc=desc, disable=not show_progress(progress), leave=False)
    for epoch in bar:
        module.train()
        perm = torch.randperm(n, generator=generator).to(train[0].device)
        total = 0.0
        for s in range(0, n, cfg.batch_size):
            idx = perm[s:s + cfg.batch_size]
            if len(idx) < 2:  # BatchNorm needs two samples
                continue
            loss = loss_fn(*(t[idx] for t in train))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            total += loss.item() * len(idx)
        hist.train.append(total / n)
        schedule_step(hist.train[-1])
        module.eval()
        with torch.no_grad():
            v = sum(loss_fn(*(t[s:s + 4096] for t in val)).item() * len(val[0][s:s + 4096])
                    for s in range(0, len(val[0]), 4096)) / len(val[0])
        hist.val.append(v)
        if best is None or v < hist.val[hist.best_epoch]:
            hist.best_epoch, best = epoch, copy.deepcopy(module.state_dict())
        bar.set_postfix(train=f"{hist.train[-1]:.3g}", val=f"{v:.3g}")
    if best is not None:
        module.load_state_dict(best)
    module.eval()
    hist.seconds = time.perf_counter() - t0
    return hist


class InverseModel(ABC):
    """Base class: holds the task, the settings, the networks (``self.net``) and the normalisation."""

    name: ClassVar[str]
    config_class: ClassVar[type[Config]]

    def __init__(self, task: Task | str, config: Config | None = None, device: str = "auto", seed: int = 0,
                 **overrides):
        self.task = _tasks.get(task)
        if config is None:
            config = self.config_class.for_task(self.task.name, **overrides)
        elif overrides:
            config = replace(config, **overrides)
        self.config = config
        self.device = resolve_device(device)
        self.seed = int(seed)
        torch.manual_seed(self.seed)
        self.net: nn.Module = self.build().to(self.device)
        self.stats: dict[str, Tensor] | None = None
        self.history: History | None = None

    # -- what each model provides --------------------------------------------------------------
    @abstractmethod
    def build(self) -> nn.Module:
        """Create the networks (a single ``nn.Module``, e.g. a ``ModuleDict``)."""

    def _fit(self, data: Dataset, epochs: int | None, progress: bool | None) -> History:
        """Train on normalised tensors (see :meth:`tensors`). The default trains every parameter of
        ``self.net`` on the model's ``loss(x, y)``, batches ordered by the model's seed; models trained in
        another way (NA's surrogate, the Tandem's two phases, the baselines) override it."""
        return train_loop(self.net, self.loss, self.tensors(data, "train"), self.tensors(data, "val"),
                          self.config, epochs, progress, desc=type(self).__name__,
                          generator=torch.Generator().manual_seed(self.seed))

    @abstractmethod
    def _propose(self, y: Tensor, T: int, g: torch.Generator) -> Tensor:
        """``(B, y_dim)`` normalised targets on the device -> ``(T, B, x_dim)`` normalised designs."""

    # -- the shared contract -------------------------------------------------------------------
    def fit(self, data: Dataset, epochs: int | None = None, progress: bool | None = None) -> History:
        """Train on ``data`` (its normalisation is kept with the model) and return the loss history.

        Args:
            data: a data set of this model's task.
            epochs: fewer (or more) epochs than the config's.
            progress: show progress bars (default: only in a terminal).
        """
        if data.task != self.task.name:
            raise ValueError(f"data set is for task {data.task!r} but the model is for {self.task.name!r}")
        self.stats = {k: getattr(data, k).float().to(self.device) for k in ("x_mean", "x_std", "y_mean", "y_std")}
        torch.manual_seed(self.seed)
        self.history = self._fit(data, epochs, progress)
        return self.history

    def tensors(self, data: Dataset, split: str) -> tuple[Tensor, Tensor]:
        """Normalised ``(x, y)`` of ``split`` (``"train"``, ``"val"``, ``"test"``) on the device."""
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        return self.norm_x(x.float().to(self.device)), self.norm_y(y.float().to(self.device))

    def norm_x(self, x: Tensor) -> Tensor:
        return (x - self.stats["x_mean"]) / self.stats["x_std"]

    def denorm_x(self, x: Tensor) -> Tensor:
        return x * self.stats["x_std"] + self.stats["x_mean"]

    def norm_y(self, y: Tensor) -> Tensor:
        return (y - self.stats["y_mean"]) / self.stats["y_std"]

    def norm_box(self) -> tuple[Tensor, Tensor]:
        """The task's box in normalised units, two ``(x_dim,)`` tensors on the device."""
        lo, hi = (b.float().to(self.device) for b in self.task.box())
        return self.norm_x(lo), self.norm_x(hi)

    def generator(self, seed: int | None) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(self.seed if seed is None else int(seed))

    @torch.no_grad()
    def propose(self, y, T: int, seed: int | None = None) -> Tensor:
        """Propose ``T`` designs for each target.

        Args:
            y: targets ``(B, y_dim)`` in the task's units (tensor or array).
            T: proposals per target.
            seed: seeds the latent draws (default: the model's seed); the same seed gives the same proposals.

        Returns:
            ``(T, B, x_dim)`` float32 on the CPU, in the task's units.
        """
        if self.stats is None:
            raise RuntimeError(f"{type(self).__name__} has not been trained: call fit() or load() first")
        T = check_count(T, "T")
        y = as_tensor(y, self.task.y_dim, "y").float().to(self.device)
        self.net.eval()
        x = self._propose(self.norm_y(y), T, self.generator(seed))
        return self.denorm_x(x).float().cpu()

    def save(self, path: str | Path) -> None:
        """Write the weights, settings and normalisation to ``path`` (atomically)."""
        atomic_save({"model": self.name, "task": self.task.name, "config": asdict(self.config),
                     "seed": self.seed, "state": self.net.state_dict(),
                     "stats": {k: v.cpu() for k, v in (self.stats or {}).items()}}, Path(path))

    def __repr__(self):
        return f"{type(self).__name__}(task={self.task.name!r}, device={self.device.type!r})"


def load(path: str | Path, device: str = "auto", task: Task | str | None = None) -> InverseModel:
    """Load a model written by :meth:`InverseModel.save` (pass ``task`` for an unregistered user task)."""
    from . import MODELS  # the registry lives in the package

    blob = torch.load(Path(path), map_location="cpu", weights_only=False)
    cls = MODELS[blob["model"]]
    model = cls(task or blob["task"], config=cls.config_class(**blob["config"]), device=device, seed=blob["seed"])
    model.net.load_state_dict(blob["state"])
    model.stats = {k: v.to(model.device) for k, v in blob["stats"].items()} or None
    model.net.eval()
    return model
