"""Profiles: how big a run is, and the plan of notebooks it executes.

Three profiles, each a documented set of numbers:

* ``paper`` -- the authors' protocol (design.md): 10,000 samples, 500 epochs, batch 1024, 200 fresh test
  targets, NA with 2,048 starting points and 300 steps, D4's proxy from 40,000 designs. Meant for a GPU.
* ``quick`` -- the default on a CPU: the whole book in about an hour on 2 cores. The authors' data size,
  networks and learning rates, but 10-30 epochs with batch 256 (300-950 optimiser steps per model instead of
  the authors' 4,000) and the learning rate annealed by a cosine over them (the authors' plateau rule hardly
  ever fires in so few epochs), 50 test targets, NA with 1,024 starting points, 200 steps and staged pruning,
  3 seeds on D1-D3; D4 with 6,000 designs, one seed, and the default proxy run of
  :func:`inverse_lib.proxy.train_ensemble` (20,000 designs, 2 members, 120 epochs). Ablations on the sine wave
  and the robotic arm, on the first half of the test targets.
* ``smoke`` -- seconds per notebook, for CI: every code path, no meaningful numbers.

``plan(name)`` lists the notebook jobs of a profile for :mod:`inverse_lib.batch`.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ANALYTIC = ("ballistics", "sine_wave", "robotic_arm")
PAPER_MODELS = ("na", "tandem", "cvae", "inn", "cinn")
EXTRA_MODELS = ("mdn",)


@dataclass(frozen=True)
class Profile:
    """The numbers of one run of the book.

    Attributes:
        name, description: what it is for.
        n: samples per analytic task (80/20 train/validation). n_test: fresh test targets per task.
        T_max: proposals per target (r_T is reported for T = 1..T_max).
        seeds: training seeds of every model on D1-D3 (each seed a separately trained model).
        epochs: per model; ``batch_size``: None keeps each model's own (the authors' 1024).
        na_pool, na_steps, na_prune: the neural-adjoint's search (prune: (fraction of steps, kept) stages).
        d4_n, d4_seeds, d4_epochs: the meta-material's inverse-model data size, seeds and epochs.
        proxy_designs, proxy_members, proxy_epochs, proxy_batch, proxy_lr: D4's proxy ensemble (the paper:
            40,000 designs, 5 members, 500 epochs, batch 1024, lr 5e-4).
        ablation_tasks: tasks of the ablation study.
        schedule: every model's learning-rate schedule (``"plateau"``, the authors', or ``"cosine"``; see
            :class:`inverse_lib.models.Config`), and the proxy ensemble's.
    """

    name: str
    description: str
    n: int
    n_test: int
    T_max: int
    seeds: tuple[int, ...]
    epochs: dict[str, int]
    batch_size: int | None
    na_pool: int
    na_steps: int
    na_prune: tuple[tuple[float, float], ...]
    d4_na_steps: int
    d4_n: int
    d4_seeds: tuple[int, ...]
    d4_epochs: dict[str, int]
    proxy_designs: int
    proxy_members: int
    proxy_epochs: int
    proxy_batch: int
    proxy_lr: float = 5e-4
    ablation_tasks: tuple[str, ...] = ANALYTIC
    models: tuple[str, ...] = PAPER_MODELS + EXTRA_MODELS
    schedule: str = "plateau"

    def overrides(self, model: str, task: str) -> dict:
        """Settings passed to ``models.create`` for ``model`` on ``task`` under this profile."""
        out: dict = {"schedule": self.schedule}
        if self.batch_size:
            out["batch_size"] = self.batch_size
        if model in ("na", "adjoint"):
            out.update(pool=self.na_pool, steps=self.d4_na_steps if task == "meta_material" else self.na_steps,
                       prune=self.na_prune)
        epochs = (self.d4_epochs if task == "meta_material" else self.epochs).get(model)
        if epochs:
            out["epochs"] = epochs
        return out

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


PROFILES = {
    "paper": Profile(
        name="paper", description="the authors' protocol (design.md); meant for a GPU",
        n=10_000, n_test=200, T_max=200, seeds=(0, 1, 2),
        epochs={m: 500 for m in PAPER_MODELS + EXTRA_MODELS}, batch_size=None,
        na_pool=2048, na_steps=300, na_prune=(), d4_na_steps=300,
        d4_n=21_000, d4_seeds=(0,), d4_epochs={m: 500 for m in PAPER_MODELS + EXTRA_MODELS},
        proxy_designs=40_000, proxy_members=5, proxy_epochs=500, proxy_batch=1024, proxy_lr=5e-4,
    ),
    "quick": Profile(
        name="quick", description="the default on a CPU: about 1-2 hours on 2 cores",
        n=10_000, n_test=50, T_max=200, seeds=(0, 1, 2),
        epochs={"na": 30, "tandem": 20, "cvae": 10, "inn": 15, "cinn": 20, "mdn": 15}, batch_size=256,
        na_pool=1024, na_steps=200, na_prune=((0.1, 0.25), (0.3, 0.5)), d4_na_steps=100,
        d4_n=6_000, d4_seeds=(0,), d4_epochs={"na": 15, "tandem": 10, "cvae": 5, "cinn": 10, "mdn": 10},
        proxy_designs=20_000, proxy_members=2, proxy_epochs=120, proxy_batch=256, proxy_lr=1e-3,
        ablation_tasks=("sine_wave", "robotic_arm"), schedule="cosine",
    ),
    "smoke": Profile(
        name="smoke", description="seconds per notebook, for CI: every code path, no meaningful numbers",
        n=400, n_test=6, T_max=200, seeds=(0, 1),
        epochs={m: 2 for m in PAPER_MODELS + EXTRA_MODELS}, batch_size=128,
        na_pool=200, na_steps=4, na_prune=((0.5, 0.5),), d4_na_steps=3,
        d4_n=300, d4_seeds=(0,), d4_epochs={m: 1 for m in PAPER_MODELS + EXTRA_MODELS},
        proxy_designs=300, proxy_members=2, proxy_epochs=1, proxy_batch=128,
        ablation_tasks=("sine_wave",), schedule="cosine",
    ),
}


def get(name: str | Profile) -> Profile:
    """The profile called ``name``; unknown names raise a ``ValueError`` listing the known ones."""
    if isinstance(name, Profile):
        return name
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; known profiles: {', '.join(PROFILES)}")
    return PROFILES[name]


def project_root(start: Path | str | None = None) -> Path:
    """The book project holding the working directory: the nearest folder up from ``start`` (default: the
    working directory) with ``_toc.yml`` and ``notebooks/``; the working directory itself when there is none
    (a user's own study). Notebooks run from anywhere inside the project (papermill from the root, nbval from
    ``tests/smoke``) so find the same result files."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").exists() and (folder / "notebooks").is_dir():
            return folder
    return here


def results_dir(profile: str) -> Path:
    """Where a profile's result files live: ``results/<profile>`` in the project root."""
    return project_root() / "results" / profile


def notebook_dir(profile: str) -> Path:
    """Where a profile's executed notebooks go: the book for real runs, ``tests/smoke`` for the smoke run
    (whose stored outputs nbval checks in CI)."""
    return Path("tests") / "smoke" if profile == "smoke" else Path("book")


def plan(profile: str):
    """The notebook jobs of ``profile``, task notebooks before the figures and tables that read them."""
    from .batch import Job

    p = get(profile)
    out, res, nb = notebook_dir(p.name), Path("results") / p.name, Path("notebooks")

    def job(name, template, deps=(), inputs=(), **params):
        return Job(name=name, template=ROOT / nb / f"{template}.ipynb", output=ROOT / out / f"{name}.ipynb",
                   parameters={"profile": p.name, **params}, deps=tuple(deps),
                   inputs=tuple(ROOT / res / i for i in inputs), cwd=ROOT)

    tasks = list(ANALYTIC) + ["meta_material"]
    jobs = [job("tasks_overview", "tasks_overview")]
    jobs += [job(t, "task", task=t) for t in ANALYTIC]
    jobs.append(job("meta_material", "meta_material"))
    results = [f"{t}.json" for t in tasks]
    jobs += [
        job("fig3", "fig3", deps=tasks, inputs=results),
        job("fig4", "fig4", deps=["sine_wave"], inputs=["sine_wave.json"]),
        job("table2", "table2", deps=tasks, inputs=results),
        job("table3", "table3", deps=tasks, inputs=results),
        job("time", "time", deps=tasks, inputs=results),
        job("ablations", "ablations", deps=list(ANALYTIC)),
        job("results", "results", deps=tasks, inputs=results),
        job("user_task", "user_task", task_module="examples/oscillator.py"),
    ]
    # last: the provenance page reads the manifest of everything before it
    jobs.append(job("provenance", "provenance", deps=[j.name for j in jobs]))
    return jobs
