"""run_task end to end at smoke size, the result file, the figures and tables made from it."""
import json
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from inverse_lib import experiment, plots, tasks  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def sine_result(tmp_path_factory):
    import os
    old = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("run"))
    try:
        res = experiment.run_task("sine_wave", "smoke", model_names=["na", "tandem", "random"],
                                  extra_targets=[[-0.3]], extra_T=5)
        saved = experiment.load_results("smoke", ["sine_wave"])["sine_wave"]
    finally:
        os.chdir(old)
    return res, saved


def test_run_task_writes_a_complete_result(sine_result):
    res, saved = sine_result
    assert set(res.summary["model"]) == {"na", "tandem", "random"}
    assert len(res.summary) == 2 + 2 + 1  # two seeds each, one for the baseline
    assert (saved.rT["T"].max(), saved.rT["T"].min()) == (200, 1)
    # r_T never increases with T for any (model, seed)
    for _, g in saved.rT.groupby(["model", "seed"]):
        assert (np.diff(g.sort_values("T")["r"].to_numpy()) <= 1e-12).all()
    # Tandem is deterministic: flat in T
    tandem = saved.rT[saved.rT["model"] == "tandem"].groupby("T")["r"].mean()
    assert tandem.nunique() == 1
    assert len(saved.proposals) == 3 * 5 and {"x1", "x2"} <= set(saved.proposals.columns)
    assert saved.meta["hardware"] and saved.meta["matmul_ms"] > 0


def test_tables_and_figures_from_results(sine_result):
    _, saved = sine_result
    t3 = plots.table3({"sine_wave": saved})
    assert set(t3["model"]) == {"NA", "Tandem", "random search"}
    na = t3[t3["model"] == "NA"].iloc[0]
    assert na["paper"] == 1.33e-7 and na["ours / paper"] == pytest.approx(na["ours"] / 1.33e-7)
    t2 = plots.table2({"sine_wave": saved})
    assert (t2["ms / proposal"] > 0).all()
    fig = plots.fig3({"sine_wave": saved})
    assert len(fig.axes[0].lines) >= 3
    fig = plots.fig4(saved, target=-0.3)
    assert fig.axes[0].collections
    assert set(plots.best_by_budget(saved, [1e-6, 10.0])["best model"]) <= {"NA", "Tandem", "random search", "none fits"}


def test_trained_models_are_cached(monkeypatch):
    d = experiment._data.load_or_generate("sine_wave", n=400, seed=0, n_test=6)
    first, _ = experiment.trained_model("tandem", "sine_wave", d, "smoke", seed=0)
    calls = []
    monkeypatch.setattr(experiment.models.InverseModel, "fit", lambda *a, **k: calls.append(1) or experiment.models.History())
    model, info = experiment.trained_model("tandem", "sine_wave", d, "smoke", seed=0)
    assert calls == [] and info["epochs"] == 2
    assert torch.equal(model.propose(d.y_test, 2), first.propose(d.y_test, 2))
    # other settings are another model, not the cached one
    experiment.trained_model("tandem", "sine_wave", d, "smoke", seed=0, boundary=False)
    assert calls == [1]


def test_user_task_module(tmp_path):
    (tmp_path / "mytask.py").write_text(
        "import torch\nfrom inverse_lib.tasks import make_task\n"
        "TASK = make_task('cubic_test', lambda x: x ** 3, lambda n, g: torch.rand(n, 1, generator=g, dtype=torch.float64),"
        " x_dim=1, y_dim=1, lower=[0], upper=[1])\n")
    task = experiment.load_task_module(tmp_path / "mytask.py")
    assert tasks.get("cubic_test") is task
    (tmp_path / "bad.py").write_text("TASK = 3\n")
    with pytest.raises(ValueError, match="must define TASK"):
        experiment.load_task_module(tmp_path / "bad.py")
    with pytest.raises(FileNotFoundError):
        experiment.load_task_module(tmp_path / "missing.py")


def test_user_task_notebook_runs_at_smoke_size(tmp_path):
    """The user-simulator notebook on a task defined here, executed with papermill."""
    import papermill as pm
    (tmp_path / "ring.py").write_text(
        "import torch\nfrom inverse_lib.tasks import make_task\n"
        "TASK = make_task('ring_test', lambda x: (x ** 2).sum(1, keepdim=True),"
        " lambda n, g: torch.rand(n, 2, generator=g, dtype=torch.float64) * 2 - 1, x_dim=2, y_dim=1,"
        " lower=[-1, -1], upper=[1, 1])\n")
    out = tmp_path / "out.ipynb"
    pm.execute_notebook(str(ROOT / "notebooks" / "user_task.ipynb"), str(out), cwd=str(tmp_path),
                        parameters={"task_module": str(tmp_path / "ring.py"), "profile": "smoke"},
                        progress_bar=False, kernel_name="python3")
    saved = json.loads((tmp_path / "results" / "smoke" / "ring_test.json").read_text())
    assert {"na", "cinn", "random"} <= set(saved["meta"]["models"])
