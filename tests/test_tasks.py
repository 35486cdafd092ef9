import math

import numpy as np
import pytest
import torch

from inverse_lib import tasks
from inverse_lib.tasks.ballistics import DRAG, G, MASS, impact_time

ANALYTIC = ["ballistics", "sine_wave", "robotic_arm"]


def test_registry_lists_the_paper_tasks():
    assert tasks.names()[:3] == ANALYTIC
    assert "meta_material" in tasks.names()


def test_unknown_task_lists_known_ones():
    with pytest.raises(ValueError, match="known tasks: ballistics, sine_wave, robotic_arm"):
        tasks.get("sinewave")


@pytest.mark.parametrize("x, y", [
    ([0.0, 0.0], 0 + 1.0),
    ([1 / 6, 0.0], 1.0 + 1.0),             # sin(pi/2) + cos(0)
    ([0.0, 1 / 3], 0.0 - 1.0),             # cos(pi) = -1
    ([-1 / 6, 1 / 6], -1.0 + 0.0),
])
def test_sine_wave_by_hand(x, y):
    out = tasks.get("sine_wave").simulate(torch.tensor([x], dtype=torch.float64))
    assert out.item() == pytest.approx(y, abs=1e-12)


@pytest.mark.parametrize("x, y", [
    ([0.3, 0.0, 0.0, 0.0], [2.0, 0.3]),                        # straight out at height 0.3
    ([0.0, math.pi / 2, 0.0, 0.0], [0.0, 2.0]),                 # straight up
    ([0.1, 0.0, math.pi / 2, 0.0], [0.5, 0.1 + 1.5]),           # first segment flat, the rest vertical
    ([0.0, 0.0, 0.0, math.pi], [0.0, 0.0]),                     # last segment folds back
])
def test_robotic_arm_by_hand(x, y):
    out = tasks.get("robotic_arm").simulate(np.array([x]))
    np.testing.assert_allclose(out.numpy()[0], y, atol=1e-12)


def _grid_impact(x, steps=1500, t_max=6.0):
    """Kruse's original: the first grid time after the apex where the height is below zero."""
    t = torch.linspace(0, t_max, steps, dtype=torch.float64)
    x1, x2, a, v0 = x
    vx, vy = v0 * math.cos(a), v0 * math.sin(a)
    E = torch.expm1(-DRAG * t / MASS)
    X = x1 - vx * MASS / DRAG * E
    Y = x2 - MASS / DRAG ** 2 * ((G * MASS + vy * DRAG) * E + G * t * DRAG)
    below = (Y < 0).nonzero()
    return None if len(below) == 0 else X[below[0, 0]].item()


def test_ballistics_exact_matches_the_original_time_grid():
    task = tasks.get("ballistics")
    x = task.sample_prior(200, seed=3).double()
    exact = task.simulate(x)[:, 0]
    compared = 0
    for xi, yi in zip(x.tolist(), exact.tolist()):
        ref = _grid_impact(xi)
        if ref is not None:
            # the grid step is 6/1499 s and the horizontal speed at impact is below v0: that bounds the gap
            assert abs(ref - yi) <= xi[3] * 6 / 1499 + 1e-9
            compared += 1
    assert compared > 150


def test_ballistics_impact_is_a_root_and_past_the_apex():
    task = tasks.get("ballistics")
    x = task.sample_prior(1000, seed=1).double()
    t = impact_time(x)
    x2, vy = x[:, 1], x[:, 3] * torch.sin(x[:, 2])
    E = torch.expm1(-DRAG * t / MASS)
    height = x2 - MASS / DRAG ** 2 * ((G * MASS + vy * DRAG) * E + G * t * DRAG)
    assert height.abs().max() < 1e-10
    assert (t > 0).all()
    # a fine brute-force grid: the height is positive everywhere before t*
    s = torch.linspace(0, 1, 2001, dtype=torch.float64)[1:-1, None] * t
    E = torch.expm1(-DRAG * s / MASS)
    h = x2 - MASS / DRAG ** 2 * ((G * MASS + vy * DRAG) * E + G * s * DRAG)
    assert (h > -1e-12).all()


def test_ballistics_answers_long_flights():
    # 81 degrees at 100 m/s stays up about 11 s, past the original 6-s grid
    x = torch.tensor([[0.0, 1.0, 0.9 * math.pi / 2, 100.0]], dtype=torch.float64)
    assert impact_time(x).item() > 6
    assert torch.isfinite(tasks.get("ballistics").simulate(x)).all()


def test_ballistics_gradient_matches_finite_differences():
    task = tasks.get("ballistics")
    x = task.sample_prior(4, seed=5).double().requires_grad_(True)
    (g,) = torch.autograd.grad(task.simulate(x).sum(), x)
    eps = 1e-6
    for j in range(4):
        d = torch.zeros_like(x)
        d[:, j] = eps
        fd = (task.simulate(x.detach() + d) - task.simulate(x.detach() - d))[:, 0] / (2 * eps)
        np.testing.assert_allclose(g[:, j].numpy(), fd.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ANALYTIC)
def test_shapes_dtypes_and_inputs(name):
    task = tasks.get(name)
    x = task.sample_prior(7, seed=0)
    assert x.shape == (7, task.x_dim) and x.dtype == torch.float32
    assert task.simulate(x).shape == (7, task.y_dim) and task.simulate(x).dtype == torch.float32
    y64 = task.simulate(x.double())
    assert y64.dtype == torch.float64
    np.testing.assert_allclose(task.simulate(x.double().numpy()).numpy(), y64.numpy())
    # deterministic, and batch independent
    assert torch.equal(task.simulate(x.double()), y64)
    np.testing.assert_allclose(task.simulate(x.double()[2:3]).numpy(), y64[2:3].numpy(), rtol=1e-12)
    assert torch.equal(task.sample_prior(7, seed=0), x)


PRIOR_MOMENTS = {  # mean, std per dimension; tolerances are 5 standard errors at n = 100,000
    "sine_wave": ([0, 0], [2 / math.sqrt(12)] * 2),
    "robotic_arm": ([0, 0, 0, 0], [0.25, 0.5, 0.5, 0.5]),
    "ballistics": ([0, None, math.pi / 4, 15.0], [0.5, None, 0.8 * math.pi / 2 / math.sqrt(12), math.sqrt(15)]),
}


@pytest.mark.parametrize("name", ANALYTIC)
def test_prior_moments(name):
    x = tasks.get(name).sample_prior(100_000, seed=11).double()
    means, stds = PRIOR_MOMENTS[name]
    for j, (m, s) in enumerate(zip(means, stds)):
        if m is None:
            continue
        assert abs(x[:, j].mean().item() - m) < 5 * s / math.sqrt(len(x)), f"mean of x{j + 1}"
        assert abs(x[:, j].std().item() - s) < 0.02 * s, f"std of x{j + 1}"


def test_ballistics_prior_support():
    x = tasks.get("ballistics").sample_prior(50_000, seed=2)
    assert (x[:, 1] >= 0).all()
    assert x[:, 2].min() >= 0.1 * math.pi / 2 and x[:, 2].max() <= 0.9 * math.pi / 2
    assert torch.equal(x[:, 3], x[:, 3].round())


@pytest.mark.parametrize("bad, match", [
    (np.zeros((3, 3)), r"shape \(n, 2\)"),
    (np.zeros(2), r"shape \(n, 2\)"),
    (np.zeros((0, 2)), "empty"),
    (np.array([[0.0, np.nan]]), "NaN or infinite"),
    (np.array([[np.inf, 0.0]]), "NaN or infinite"),
])
def test_bad_inputs_raise(bad, match):
    with pytest.raises(ValueError, match=match):
        tasks.get("sine_wave").simulate(bad)


@pytest.mark.parametrize("n", [0, -3, 2.5])
def test_bad_counts_raise(n):
    with pytest.raises(ValueError, match="positive integer"):
        tasks.get("sine_wave").sample_prior(n)


def test_user_task_in_a_few_lines():
    task = tasks.make_task("parabola_test", forward=lambda x: (x ** 2).sum(1, keepdim=True),
                           prior=lambda n, g: torch.randn(n, 3, generator=g, dtype=torch.float64),
                           x_dim=3, y_dim=1)
    tasks.register(task, overwrite=True)
    assert tasks.get("parabola_test") is task
    assert task.simulate([[1.0, 2.0, 2.0]]).item() == pytest.approx(9.0)
    np.testing.assert_allclose(task.lower, [-2] * 3, atol=0.05)
    assert task.has_gradient
    with pytest.raises(ValueError, match="already registered"):
        tasks.register(task)
