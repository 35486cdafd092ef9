"""The baselines that need no deep model, checked against answers computed another way."""
import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from inverse_lib import data, metrics, models, tasks


def expected_best_of_T_by_integration(y: float, T: int, grid: int = 1500) -> float:
    """E[min of T iid errors] for x uniform on [-1, 1]^2: the integral of (1 - F(e))^T de, with F, the error's
    distribution function, from a fine grid over x-space (no sampling at all)."""
    g = (np.arange(grid) + 0.5) / grid * 2 - 1
    x1, x2 = np.meshgrid(g, g)
    e = np.sort(((np.sin(3 * math.pi * x1) + np.cos(3 * math.pi * x2) - y) ** 2).ravel())
    survival = 1 - np.arange(1, len(e) + 1) / len(e)          # P(error > e_k)
    return float(np.sum(np.diff(np.concatenate([[0.0], e])) * np.concatenate([[1.0], survival[:-1]]) ** T))


def test_random_search_matches_the_integral_on_the_sine():
    d = data.generate("sine_wave", n=100, seed=0, n_test=3)
    model = models.create("random", "sine_wave", device="cpu")
    model.fit(d)
    T, repeats = 10, 300
    y = d.y_test
    # many independent best-of-T draws per target: their mean estimates E[min] for that target
    mins = np.stack([metrics.best_of_T(metrics.resimulation_errors("sine_wave", model.propose(y, T, seed=s), y), [T])[0]
                     for s in range(repeats)])                     # (repeats, B)
    for b in range(len(y)):
        exact = expected_best_of_T_by_integration(float(y[b, 0]), T)
        se = mins[:, b].std() / math.sqrt(repeats)
        assert abs(mins[:, b].mean() - exact) < 4 * se + 1e-6, (b, mins[:, b].mean(), exact, se)


def test_random_search_draws_from_the_prior():
    d = data.generate("ballistics", n=100, seed=0, n_test=4)
    model = models.create("random", "ballistics", device="cpu")
    model.fit(d)
    x = model.propose(d.y_test, 500, seed=3).reshape(-1, 4).double()
    assert abs(x[:, 3].mean().item() - 15.0) < 0.3          # v0 ~ Poisson(15)
    assert torch.allclose(x[:, 3], x[:, 3].round(), atol=1e-3)


def test_classical_adjoint_matches_scipy_from_the_same_starts():
    task = tasks.get("sine_wave")
    d = data.generate("sine_wave", n=500, seed=0, n_test=3)
    model = models.create("adjoint", "sine_wave", device="cpu", pool=8, steps=300)
    model.fit(d)
    x0 = model.starting_points(3 * 8, seed=5).reshape(3, 8, 2)
    xs, loss, _ = model.search(d.norm_y(d.y_test), T=8, x0=x0)
    ours = metrics.resimulation_errors(task, model.denorm_x(xs), d.y_test).min(0).values
    for b in range(3):
        y = float(d.y_test[b, 0])
        best = min(minimize(lambda x: (math.sin(3 * math.pi * x[0]) + math.cos(3 * math.pi * x[1]) - y) ** 2,
                            model.denorm_x(x0[b, k]).double().numpy(), method="L-BFGS-B",
                            bounds=[(-1, 1), (-1, 1)]).fun for k in range(8))
        assert best < 1e-10 and ours[b] < 1e-8, (best, ours[b])


@pytest.mark.parametrize("name", ["ballistics", "robotic_arm"])
def test_classical_adjoint_solves_the_analytic_tasks(name):
    d = data.generate(name, n=500, seed=0, n_test=4)
    model = models.create("adjoint", name, device="cpu", pool=32, steps=300)
    model.fit(d)
    e = metrics.resimulation_errors(name, model.propose(d.y_test, 1), d.y_test)
    assert e.max() < 1e-6, e
