"""Run a task x models study and keep its results: what the notebooks call.

:func:`run_task` trains (or loads) every model for every seed, times its proposals honestly, re-simulates
them through the ground truth (and any other simulator, e.g. D4's proxy ensemble), and returns a
:class:`TaskResult` that is written to ``results/<profile>/<task>.json`` atomically. Trained models are cached
under ``$INVERSE_LIB_CACHE/models`` so an interrupted run resumes with what was already trained.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd
import torch
from tqdm.auto import tqdm

from . import data as _data
from . import metrics, models, profiles, tasks
from ._io import atomic_write
from .models.base import show_progress

# T values kept in the result files: every T up to 50 (Fig. 3), then every 10 up to 200 (Table 3)
def kept_T(T_max: int) -> list[int]:
    return sorted({*range(1, min(50, T_max) + 1), *range(60, T_max + 1, 10), T_max})


def hardware(device: torch.device | str = "cpu") -> str:
    """A one-line description of where a run happened: the GPU's name, or the CPU's and its threads."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    cpu = "CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {torch.get_num_threads()} threads"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_ms(device: torch.device | str = "cpu", n: int = 1024, repeats: int = 10) -> float:
    """Milliseconds for one ``n x n`` float32 matmul on ``device``: the yardstick timings are divided by."""
    device = torch.device(device)
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return (time.perf_counter() - t0) / repeats * 1e3


def time_proposals(model: models.InverseModel, y: torch.Tensor, T: int, seed: int = 0) -> tuple[torch.Tensor, dict]:
    """Propose ``T`` designs for targets ``y`` and time it: synchronised on a GPU, no file I/O inside.

    Returns the proposals ``(T, B, x_dim)`` and ``seconds_per_target`` (all T proposals of one target) and
    ``seconds_per_proposal`` (for NA: the search's cost per starting point, ``seconds_per_target / pool``, since
    its T proposals are the best T of one search; for the others ``seconds_per_target / T``), and ``search``:
    whether the proposals come from one search whose cost does not depend on T (NA, the classical adjoint).
    """
    model.propose(y[:2], min(T, 2), seed=seed)  # warm-up: allocations, lazy initialisation
    sync(model.device)
    t0 = time.perf_counter()
    x = model.propose(y, T, seed=seed)
    sync(model.device)
    per_target = (time.perf_counter() - t0) / len(y)
    search = hasattr(model.config, "pool")
    per = per_target / (model.config.pool if search else T)
    return x, {"seconds_per_target": per_target, "seconds_per_proposal": per, "search": search}


def model_path(profile: str, task: str, name: str, seed: int, config) -> Path:
    """Cache file of a trained model: one per profile, task, model, seed and settings."""
    digest = hashlib.sha1(repr(config).encode()).hexdigest()[:10]
    return _data.cache_dir() / "models" / profile / task / f"{name}_seed{seed}_{digest}.pt"


def trained_model(name: str, task, data: _data.Dataset, profile: str, seed: int = 0, progress: bool | None = None,
                  **overrides) -> tuple[models.InverseModel, dict]:
    """Model ``name`` trained on ``data`` under ``profile`` with ``seed``: loaded from the cache when it is there
    with the same settings, otherwise trained and saved (so an interrupted study resumes)."""
    task = tasks.get(task)
    p = profiles.get(profile)
    settings = {**p.overrides(name, task.name), **overrides}
    model = models.create(name, task, seed=seed, **settings)
    path = model_path(p.name, task.name, name, seed, model.config)
    key = {"config": repr(model.config), "n": data.n, "data_seed": data.seed}
    if path.exists():
        try:
            cached = models.load(path, device=str(model.device), task=task)
            info = json.loads(path.with_suffix(".json").read_text())
            if cached.config == model.config and info.get("key") == json.loads(json.dumps(key)):
                return cached, info
        except Exception:  # a stale or torn file: retrain
            pass
    hist = model.fit(data, progress=progress)
    model.save(path)
    info = {"key": key, "train_seconds": hist.seconds, "epochs": len(hist.train), "best_epoch": hist.best_epoch,
            "best_val": hist.best_val, "train_loss": hist.train, "val_loss": hist.val}
    path.with_suffix(".json").write_text(json.dumps(info))
    return model, info


@dataclass
class TaskResult:
    """Everything one task notebook produces.

    Attributes:
        meta: task, profile, hardware, sizes, seeds, the matmul yardstick, wall time.
        summary: one row per (model, seed): training time and epochs, best validation loss, timing.
        rT: one row per (model, seed, simulator, T): r, p25, p75, ci_low, ci_high, failures.
        proposals: designs proposed for the extra targets (Fig. 4): model, target, x1..xd.
    """

    meta: dict
    summary: pd.DataFrame
    rT: pd.DataFrame
    proposals: pd.DataFrame = field(default_factory=pd.DataFrame)

    def save(self, path: Path | str) -> Path:
        """Write the result as JSON, atomically."""
        blob = {"meta": self.meta, "summary": self.summary.to_dict("records"), "rT": self.rT.to_dict("records"),
                "proposals": self.proposals.to_dict("records")}
        return atomic_write(path, lambda fh: json.dump(blob, fh, default=float), binary=False)

    @classmethod
    def load(cls, path: Path | str) -> "TaskResult":
        blob = json.loads(Path(path).read_text())
        return cls(meta=blob["meta"], summary=pd.DataFrame(blob["summary"]), rT=pd.DataFrame(blob["rT"]),
                   proposals=pd.DataFrame(blob["proposals"]))

    def r_at(self, T: int, simulator: str = "ground truth") -> pd.DataFrame:
        """``r_T`` at one T: one row per model with the mean, min and max over seeds."""
        d = self.rT[(self.rT["T"] == T) & (self.rT["simulator"] == simulator)]
        return d.groupby("model", sort=False)["r"].agg(["mean", "min", "max", "count"])


def load_results(profile: str, names: Sequence[str] | None = None, root: Path | str | None = None) -> dict[str, TaskResult]:
    """The saved results of ``profile`` for the tasks in ``names`` (default: every file there)."""
    folder = profiles.results_dir(profile) if root is None else Path(root) / "results" / profile
    names = names or sorted(p.stem for p in folder.glob("*.json"))
    missing = [n for n in names if not (folder / f"{n}.json").exists()]
    if missing:
        raise FileNotFoundError(f"no results for {missing} in {folder}: run their task notebooks first "
                                f"(python -m inverse_lib.batch --profile {profile})")
    return {n: TaskResult.load(folder / f"{n}.json") for n in names}


def run_task(task, profile: str = "quick", model_names: Sequence[str] | None = None,
             seeds: Sequence[int] | None = None, simulators: dict[str, Callable] | None = None,
             extra_targets: Sequence[Sequence[float]] | None = None, extra_T: int = 40,
             data: _data.Dataset | None = None, progress: bool | None = None,
             save: bool = True) -> TaskResult:
    """Train, propose, time and re-simulate every model on ``task``.

    Args:
        task: a task or its name.
        profile: ``"paper"``, ``"quick"`` or ``"smoke"`` (see :mod:`inverse_lib.profiles`).
        model_names: default: the profile's models plus the random-search and classical-adjoint baselines;
            a model not defined for the task (the INN when y has more dimensions than x) is left out and
            listed in ``meta["not_applicable"]``.
        seeds: default: the profile's seeds (D4: its ``d4_seeds``).
        simulators: re-simulate through these as well as the ground truth, ``{"proxy": f}``.
        extra_targets: targets ``(k, y_dim)`` whose proposals are kept (Fig. 4's ``y = -0.3``).
        extra_T: proposals kept per extra target and model.
        data: the data set (default: generated or loaded from the cache with the profile's sizes).
        progress: progress bars (default: only in a terminal).
        save: write ``results/<profile>/<task>.json``.
    """
    task = tasks.get(task)
    p = profiles.get(profile)
    t_start = time.perf_counter()
    d4 = task.name == "meta_material"
    if data is None:
        data = _data.load_or_generate(task, n=p.d4_n if d4 else p.n, seed=0, n_test=p.n_test)
    seeds = list(seeds if seeds is not None else (p.d4_seeds if d4 else p.seeds))
    names = list(model_names or [*p.models, "random", "adjoint"])
    sims = {"ground truth": task.forward, **(simulators or {})}
    y_test = data.y_test
    Ts = kept_T(p.T_max)
    device = models.resolve_device("auto")
    yard = matmul_ms(device)
    rows, summary, props, skipped = [], [], [], {}
    jobs = [(n, s) for n in names for s in (seeds if n not in ("random", "adjoint") else seeds[:1])]
    bar = tqdm(jobs, desc=task.name, disable=not show_progress(progress))
    for name, seed in bar:
        bar.set_postfix(model=name, seed=seed)
        try:
            model, info = trained_model(name, task, data, p.name, seed=seed, progress=False)
        except ValueError as err:  # not defined for this task (the INN on D4)
            skipped[name] = str(err)
            continue
        x, timing = time_proposals(model, y_test, p.T_max, seed=seed)
        summary.append(dict(model=name, seed=seed, train_seconds=info.get("train_seconds", 0.0),
                            epochs=info.get("epochs", 0), best_val=info.get("best_val", float("nan")),
                            device=str(model.device), **timing))
        for sim_name, sim in sims.items():
            e = metrics.resimulation_errors(task, x, y_test, simulator=sim)
            for row in metrics.r_T(e, Ts).to_rows():
                rows.append(dict(model=name, seed=seed, simulator=sim_name, **row))
        if extra_targets is not None and seed == seeds[0]:
            xe = model.propose(torch.tensor(extra_targets, dtype=torch.float32), extra_T, seed=seed)
            for t in range(xe.shape[0]):
                for b in range(xe.shape[1]):
                    props.append(dict(model=name, target=b, **{f"x{j + 1}": float(v) for j, v in enumerate(xe[t, b])}))
    meta = dict(task=task.name, profile=p.name, hardware=hardware(device), device=device.type,
                n=data.n, n_test=len(y_test), T_max=p.T_max, seeds=seeds, models=[n for n in names if n not in skipped],
                not_applicable=skipped, matmul_ms=yard, wall_seconds=time.perf_counter() - t_start,
                extra_targets=[list(map(float, t)) for t in (extra_targets or [])],
                profile_settings={k: v for k, v in p.to_dict().items()})
    result = TaskResult(meta=meta, summary=pd.DataFrame(summary), rT=pd.DataFrame(rows), proposals=pd.DataFrame(props))
    if save:
        result.save(profiles.results_dir(p.name) / f"{task.name}.json")
    return result


def best_table(result: TaskResult, Ts: Sequence[int] = (1, 10, 50, 200), simulator: str = "ground truth") -> pd.DataFrame:
    """Mean ``r_T`` over seeds per model (rows) at a few T (columns), as printed in the task notebooks."""
    d = result.rT[(result.rT["simulator"] == simulator) & (result.rT["T"].isin(Ts))]
    return d.pivot_table(index="model", columns="T", values="r", aggfunc="mean", sort=False)


def ablations(task, profile: str = "quick", seed: int = 0, progress: bool | None = None) -> pd.DataFrame:
    """The paper's supplementary ablations on one task, as ``r_T`` rows (variant, T, r, p25, p75).

    NA: the trained surrogate searched with the boundary loss off, with Gamma a uniform draw in the box or
    a Gaussian centred in it instead of the task prior, without the profile's pruning (if any) and with a small
    pool (256 starting points, 150 steps, when the profile's pool is larger); and, for a profile that anneals
    the learning rate by a cosine, NA's surrogate retrained with the authors' ReduceLROnPlateau instead.
    Tandem: retrained without the boundary loss. On the first half of the profile's test targets (the trained
    models are the task notebooks' own, seed 0).
    """
    task = tasks.get(task)
    p = profiles.get(profile)
    data = _data.load_or_generate(task, n=p.n, seed=0, n_test=p.n_test)
    data = data.subset(max(1, p.n_test // 2))  # the searches dominate the cost: half the targets
    Ts = kept_T(p.T_max)
    na, _ = trained_model("na", task, data, p.name, seed=seed, progress=progress)
    variants = {"NA": {}, "NA, no boundary loss": dict(boundary=False),
                "NA, uniform start": dict(init="uniform"), "NA, Gaussian start": dict(init="gaussian")}
    if na.config.prune:
        variants["NA, no pruning"] = dict(prune=())
    if na.config.pool > 256:  # a small pool: its best T = 200 are most of it
        variants["NA, pool 256, 150 steps, no pruning"] = dict(pool=256, steps=150, prune=())
    rows = []
    for label, change in variants.items():
        model = type(na)(task, config=replace(na.config, **change), device=str(na.device), seed=seed)
        model.net.load_state_dict(na.net.state_dict())
        model.stats = na.stats
        rows += _rows(task, model, data, Ts, label, p.T_max, seed)
    if p.schedule != "plateau":  # the authors' learning-rate rule at this profile's epochs: a retrained surrogate
        model, _ = trained_model("na", task, data, p.name, seed=seed, progress=progress, schedule="plateau")
        rows += _rows(task, model, data, Ts, "NA, authors' plateau schedule", p.T_max, seed)
    for label, change in {"Tandem": {}, "Tandem, no boundary loss": dict(boundary=False)}.items():
        model, _ = trained_model("tandem", task, data, p.name, seed=seed, progress=progress, **change)
        rows += _rows(task, model, data, Ts, label, p.T_max, seed)
    return pd.DataFrame(rows)


def _rows(task, model, data, Ts, label, T_max, seed):
    x = model.propose(data.y_test, T_max, seed=seed)
    e = metrics.resimulation_errors(task, x, data.y_test)
    return [dict(task=task.name, variant=label, **r) for r in metrics.r_T(e, Ts).to_rows()]


def load_task_module(path: str | Path):
    """Import a user's task from a Python file (or an importable module name) that defines ``TASK``, a
    :class:`inverse_lib.tasks.Task`, and register it. Returns the task."""
    import importlib
    import importlib.util

    path_ = Path(path)
    if path_.suffix == ".py" and not path_.is_absolute() and not path_.exists():
        path_ = profiles.project_root() / path_   # relative to the project, wherever the notebook runs
    if path_.suffix == ".py":
        if not path_.exists():
            raise FileNotFoundError(f"no task module at {path_.resolve()}")
        spec = importlib.util.spec_from_file_location(f"user_task_{path_.stem}", path_)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(str(path))
    task = getattr(module, "TASK", None)
    if not isinstance(task, tasks.Task):
        raise ValueError(f"{path} must define TASK = inverse_lib.tasks.make_task(...); found {type(task).__name__}")
    return tasks.register(task, overwrite=True)


def run_log(profile: str, root: Path | str | None = None) -> pd.DataFrame:
    """The batch runner's manifest for ``profile`` as a table: one row per notebook (status, seconds, hardware,
    peak memory, when it finished)."""
    path = Path(root or profiles.project_root()) / profiles.notebook_dir(profile) / "_runs.json"
    if not path.exists():
        raise FileNotFoundError(f"no run manifest at {path}: run python -m inverse_lib.batch --profile {profile}")
    jobs = json.loads(path.read_text())["jobs"]
    rows = [{"notebook": k, **{c: v.get(c) for c in ("status", "seconds", "hardware", "peak_memory_mb", "finished",
                                                      "profile")}} for k, v in jobs.items() if v.get("profile") == profile]
    return pd.DataFrame(rows).set_index("notebook")
