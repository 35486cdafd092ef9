"""Figures and tables from saved results (:class:`inverse_lib.experiment.TaskResult`)."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from . import paper, tasks
from .experiment import TaskResult

GT = "ground truth"


def _label(m: str) -> str:
    return paper.MODEL_LABELS.get(m, m)


def rT_curves(ax, result: TaskResult, T_max: int = 50, simulator: str = GT, models: Sequence[str] | None = None,
              title: str | None = None):
    """Draw ``r_T`` against T on ``ax`` (log y): the mean over seeds as a line, the range over seeds shaded,
    and the 25th-75th percentiles of the per-target minima (the paper's error bars) every 5 T for seed 0."""
    d = result.rT[(result.rT["simulator"] == simulator) & (result.rT["T"] <= T_max)]
    for m in models or list(dict.fromkeys(d["model"])):
        dm = d[d["model"] == m]
        if dm.empty:
            continue
        g = dm.groupby("T")["r"]
        T = g.mean().index.values
        c = paper.COLOURS.get(m)
        ax.plot(T, g.mean().values, color=c, label=_label(m), lw=1.8)
        if dm["seed"].nunique() > 1:
            ax.fill_between(T, g.min().values, g.max().values, color=c, alpha=0.15, lw=0)
        s0 = dm[(dm["seed"] == dm["seed"].min()) & (dm["T"] % 5 == 0)]
        ax.vlines(s0["T"], s0["p25"], s0["p75"], color=c, alpha=0.6, lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("T (proposals per target)")
    ax.set_ylabel(r"$r_T$ (MSE)")
    ax.set_title(title or paper.LABELS.get(result.meta["task"], result.meta["task"]))
    ax.grid(True, which="major", alpha=0.3)


def _sim(simulator: str | dict, task: str) -> str:
    """A simulator name for ``task``: one name for all, or a ``{task: name}`` dict (ground truth elsewhere)."""
    return simulator.get(task, GT) if isinstance(simulator, dict) else simulator


def fig3(results: dict[str, TaskResult], T_max: int = 50, simulator: str | dict = GT,
         models: Sequence[str] | None = None) -> plt.Figure:
    """The paper's Fig. 3: one panel per task, ``r_T`` against T = 1..T_max on a log scale.
    ``simulator`` names the re-simulation, for all tasks or per task (``{"meta_material": "proxy"}``)."""
    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.8), squeeze=False)
    for ax, (name, res) in zip(axes[0], results.items()):
        rT_curves(ax, res, T_max, _sim(simulator, name), models)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def fig4(result: TaskResult, target: float = -0.3, extent=((-1, 0.5), (-0.75, 0.75)), per_model: int = 40,
         models: Sequence[str] = ("cinn", "inn", "na", "cvae")) -> plt.Figure:
    """The paper's Fig. 4: the sine wave's squared error map ``(f(x) - y)^2`` for ``y = target`` with the exact
    solution contour ``f(x) = target`` and each model's proposals for that target."""
    task = tasks.get("sine_wave")
    (a, b), (c, d) = extent
    g1, g2 = np.meshgrid(np.linspace(a, b, 400), np.linspace(c, d, 400))
    f = task.simulate(np.stack([g1.ravel(), g2.ravel()], 1)).numpy().reshape(g1.shape)
    fig, ax = plt.subplots(figsize=(6.4, 6))
    im = ax.imshow((f - target) ** 2, extent=(a, b, c, d), origin="lower", cmap="afmhot", aspect="auto")
    ax.contour(g1, g2, f, levels=[target], colors="white", linewidths=1.2, linestyles="--")
    style = {"cinn": ("x", "tab:green"), "inn": ("^", "tab:orange"), "na": ("s", "tab:blue"),
             "cvae": ("D", "tab:red"), "mdn": ("o", "tab:purple"), "tandem": ("*", "cyan")}
    p = result.proposals
    for m in models:
        pm = p[p["model"] == m].head(per_model)
        if pm.empty:
            continue
        mk, col = style.get(m, ("o", None))
        ax.scatter(pm["x1"], pm["x2"], marker=mk, color=col, s=28, label=_label(m),
                   edgecolors="k" if mk != "x" else None, linewidths=0.4)
    ax.set_xlim(a, b)
    ax.set_ylim(c, d)
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.set_title(f"sine wave, target y = {target}: proposals over the error map")
    fig.colorbar(im, ax=ax, label=f"(f(x) - ({target}))$^2$")
    ax.legend(loc="upper right", framealpha=0.9)
    fig.tight_layout()
    return fig


def table3(results: dict[str, TaskResult], T: int = 200, simulator: str | dict = GT,
           models: Sequence[str] | None = None) -> pd.DataFrame:
    """Table 3: ``r_T`` (default r_200) per task and model, mean over seeds with the min-max range, beside the
    paper's value and the ratio ours / paper."""
    rows = []
    for name, res in results.items():
        agg = res.r_at(T, _sim(simulator, name))
        for m in models or agg.index:
            if m not in agg.index:
                continue
            ref = paper.R200.get(name, {}).get(m) if T == 200 else None
            a = agg.loc[m]
            rows.append({"task": paper.LABELS.get(name, name), "model": _label(m), "ours": a["mean"],
                         "seed min": a["min"], "seed max": a["max"], "seeds": int(a["count"]),
                         "paper": ref, "ours / paper": a["mean"] / ref if ref else np.nan})
    return pd.DataFrame(rows)


def table2(results: dict[str, TaskResult], models: Sequence[str] | None = None) -> pd.DataFrame:
    """Table 2: inference time per proposal (ms), mean over seeds, beside the paper's (GPU) times, and our time
    divided by a 1024 x 1024 float32 matmul measured in the same run (comparable across machines)."""
    rows = []
    for name, res in results.items():
        s = res.summary.groupby("model", sort=False)[["seconds_per_proposal", "seconds_per_target"]].mean()
        for m in models or s.index:
            if m not in s.index:
                continue
            ms = 1e3 * s.loc[m, "seconds_per_proposal"]
            rows.append({"task": paper.LABELS.get(name, name), "model": _label(m), "ms / proposal": ms,
                         "ms / target (all T)": 1e3 * s.loc[m, "seconds_per_target"],
                         "in matmuls": ms / res.meta["matmul_ms"],
                         "paper ms (GPU)": paper.INFERENCE_MS.get(name, {}).get(m)})
    return pd.DataFrame(rows)


def timed_curves(result: TaskResult, simulator: str = GT) -> pd.DataFrame:
    """Mean ``r_T`` over seeds per (model, T) with the seconds per target it costs: ``T x`` the cost per proposal
    for models that draw proposals one by one; the whole search at every T for NA and the classical adjoint,
    whose T proposals are the best T of one search of fixed cost."""
    s = result.summary.groupby("model", sort=False).agg(per=("seconds_per_proposal", "mean"),
                                                        target=("seconds_per_target", "mean"),
                                                        search=("search", "first"))
    d = result.rT[result.rT["simulator"] == simulator].groupby(["model", "T"], sort=False)["r"].mean().reset_index()
    fixed = d["model"].map(s["search"]).astype(bool)
    d["seconds"] = np.where(fixed, d["model"].map(s["target"]), d["T"] * d["model"].map(s["per"]))
    return d


def r_vs_time(ax, result: TaskResult, simulator: str = GT, models: Sequence[str] | None = None):
    """``r`` against the seconds spent per target (see :func:`timed_curves`): a curve for sampling models, a
    vertical segment (r_1 .. r_Tmax at the search's cost) for the searches."""
    d = timed_curves(result, simulator)
    for m in models or list(dict.fromkeys(d["model"])):
        dm = d[d["model"] == m]
        if dm.empty:
            continue
        ax.plot(dm["seconds"], dm["r"], color=paper.COLOURS.get(m), label=_label(m), lw=1.8,
                marker="o" if dm["seconds"].nunique() == 1 else None, ms=4)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("seconds per target")
    ax.set_ylabel(r"$r$ (best-so-far MSE)")
    ax.set_title(paper.LABELS.get(result.meta["task"], result.meta["task"]))
    ax.grid(True, which="major", alpha=0.3)


def best_by_budget(result: TaskResult, budgets: Sequence[float], simulator: str = GT) -> pd.DataFrame:
    """For each time budget (seconds per target), the model with the lowest error reachable within it."""
    d = timed_curves(result, simulator)
    rows = []
    for b in budgets:
        ok = d[d["seconds"] <= b]
        if ok.empty:
            rows.append({"budget (s)": b, "best model": "none fits", "r": np.nan, "T": 0})
            continue
        best = ok.loc[ok.groupby("model")["r"].idxmin()].sort_values("r").iloc[0]
        rows.append({"budget (s)": b, "best model": _label(best["model"]), "r": best["r"], "T": int(best["T"])})
    return pd.DataFrame(rows)


def task_picture(task_name: str, ax=None, seed: int = 0):
    """A picture of a task: its response over x-space or a few samples of it."""
    task = tasks.get(task_name)
    ax = ax or plt.gca()
    if task.name == "sine_wave":
        g1, g2 = np.meshgrid(np.linspace(-1, 1, 200), np.linspace(-1, 1, 200))
        f = task.simulate(np.stack([g1.ravel(), g2.ravel()], 1)).numpy().reshape(g1.shape)
        im = ax.imshow(f, extent=(-1, 1, -1, 1), origin="lower", cmap="RdBu_r")
        plt.colorbar(im, ax=ax, label="y")
        ax.set_xlabel("x1")
        ax.set_ylabel("x2")
    elif task.name == "robotic_arm":
        x = task.sample_prior(12, seed=seed).double()
        ang = torch.cumsum(x[:, 1:], 1)
        L = torch.tensor([0.5, 0.5, 1.0], dtype=torch.float64)
        px = torch.cat([torch.zeros(12, 1, dtype=torch.float64), torch.cumsum(L * torch.cos(ang), 1)], 1)
        py = torch.cat([x[:, :1], x[:, :1] + torch.cumsum(L * torch.sin(ang), 1)], 1)
        for i in range(12):
            ax.plot(px[i], py[i], "-o", ms=3, alpha=0.7)
        ax.set_xlabel("horizontal")
        ax.set_ylabel("height")
        ax.set_aspect("equal")
    elif task.name == "ballistics":
        from .tasks.ballistics import DRAG, MASS, G, impact_time
        x = task.sample_prior(12, seed=seed).double()
        t1 = impact_time(x)
        for i in range(12):
            t = torch.linspace(0, float(t1[i]), 100, dtype=torch.float64)
            x1, x2, a, v = x[i]
            E = torch.expm1(-DRAG * t / MASS)
            X = x1 - v * torch.cos(a) * MASS / DRAG * E
            Y = x2 - MASS / DRAG ** 2 * ((G * MASS + v * torch.sin(a) * DRAG) * E + G * t * DRAG)
            ax.plot(X, Y, alpha=0.8)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xlabel("distance (m)")
        ax.set_ylabel("height (m)")
    else:
        x = task.sample_prior(4, seed=seed)
        y = task.simulate(x.double()).numpy()
        axis, label = np.arange(y.shape[1]), "output index"
        if task.name == "meta_material":
            from .tasks.meta_material import FREQUENCIES_THZ
            axis, label = FREQUENCIES_THZ.numpy(), "frequency (THz)"
        for row in y:
            ax.plot(axis, row, lw=1)
        ax.set_xlabel(label)
        ax.set_ylabel(task.y_label)
    ax.set_title(task.description.split(":")[0] if task.description else task.name)
    return ax


def winners(results: dict[str, TaskResult], Ts: Sequence[int] = (1, 10, 50, 200), simulator: str | dict = GT,
            models: Sequence[str] = ("na", "tandem", "cvae", "inn", "cinn")) -> pd.DataFrame:
    """The best of ``models`` (mean ``r_T`` over seeds) for each task (rows) at each T (columns)."""
    out = {}
    for name, res in results.items():
        d = res.rT[(res.rT["simulator"] == _sim(simulator, name)) & res.rT["model"].isin(models)]
        means = d.groupby(["T", "model"])["r"].mean()
        out[paper.LABELS.get(name, name)] = {f"T={T}": _label(means.loc[T].idxmin()) for T in Ts if T in means.index}
    return pd.DataFrame(out).T


def proposal_errors(result: TaskResult, target: float) -> pd.DataFrame:
    """Mean and best squared re-simulation error of the kept proposals for one scalar target, per model."""
    task = tasks.get(result.meta["task"])
    p = result.proposals
    cols = [f"x{j + 1}" for j in range(task.x_dim)]
    e = ((task.simulate(p[cols].to_numpy()).numpy()[:, 0] - target) ** 2)
    d = pd.DataFrame({"model": p["model"].map(_label), "error": e})
    return d.groupby("model", sort=False)["error"].agg(["mean", "min", "count"])


def ablation_figure(abl: pd.DataFrame, T_max: int = 200) -> plt.Figure:
    """``r_T`` of each ablation variant, one panel per task."""
    names = list(dict.fromkeys(abl["task"]))
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4), squeeze=False)
    styles = {"NA": ("tab:green", "-"), "NA, no boundary loss": ("tab:green", ":"),
              "NA, uniform start": ("tab:olive", "--"), "NA, Gaussian start": ("tab:cyan", "-."),
              "NA, authors' plateau schedule": ("tab:red", "--"), "NA, no pruning": ("tab:gray", ":"),
              "NA, pool 256, 150 steps, no pruning": ("tab:purple", "--"),
              "Tandem": ("tab:blue", "-"), "Tandem, no boundary loss": ("tab:blue", ":")}
    for ax, name in zip(axes[0], names):
        d = abl[(abl["task"] == name) & (abl["T"] <= T_max)]
        for v in dict.fromkeys(d["variant"]):
            dv = d[d["variant"] == v]
            c, ls = styles.get(v, (None, "-"))
            ax.plot(dv["T"], dv["r"], color=c, ls=ls, label=v, lw=1.8)
        ax.set_yscale("log")
        ax.set_xscale("log")
        ax.set_xlabel("T")
        ax.set_ylabel(r"$r_T$")
        ax.set_title(paper.LABELS.get(name, name))
        ax.grid(True, alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def claims(results: dict[str, TaskResult], simulator: str | dict = GT,
           models: Sequence[str] = ("na", "tandem", "cvae", "inn", "cinn")) -> pd.DataFrame:
    """The paper's claims checked on our results, per task: the best model at T = 1, over T = 10..50 (lowest
    mean r_T across those T) and at T = 200; whether the winner changes with T (the central claim); and whether
    NA reaches the lowest r_200 of the paper's models (its claim about NA), with NA's rank."""
    rows = []
    for name, res in results.items():
        d = res.rT[(res.rT["simulator"] == _sim(simulator, name)) & res.rT["model"].isin(models)]
        m = d.groupby(["T", "model"])["r"].mean()
        at = lambda T: m.loc[T].sort_values()
        mid = d[d["T"].between(10, 50)].groupby("model")["r"].mean().sort_values()
        w1, wmid, w200 = at(1).index[0], mid.index[0], at(200).index[0]
        r200 = at(200)
        rows.append({"task": paper.LABELS.get(name, name), "best at T=1": _label(w1),
                     "best over T=10..50": _label(wmid), "best at T=200": _label(w200),
                     "winner changes with T": len({w1, wmid, w200}) > 1,
                     "NA lowest r_200": w200 == "na",
                     "NA rank at T=200": int(list(r200.index).index("na")) + 1 if "na" in r200.index else None,
                     "NA r_200 / best other": (r200["na"] / r200.drop("na").min()) if "na" in r200.index else np.nan})
    return pd.DataFrame(rows)


def ranks(results: dict[str, TaskResult], Ts: Sequence[int] = (1, 5, 10, 50, 200), simulator: str | dict = GT,
          models: Sequence[str] = ("na", "tandem", "cvae", "inn", "cinn")) -> pd.DataFrame:
    """Rank (1 = best mean r_T over seeds) of each model per task and T."""
    out = {}
    for name, res in results.items():
        d = res.rT[(res.rT["simulator"] == _sim(simulator, name)) & res.rT["model"].isin(models)]
        m = d.groupby(["T", "model"])["r"].mean()
        for T in Ts:
            if T in m.index:
                out[(paper.LABELS.get(name, name), f"T={T}")] = m.loc[T].rank().astype(int).rename(_label)
    return pd.DataFrame(out).T
