import numpy as np
import pytest
import torch

from inverse_lib import tasks
from inverse_lib.metrics import best_of_T, r_T, resimulation_errors

# 4 proposals (rows) for 3 targets (columns)
E = np.array([[4.0, 1.0, 9.0],
              [2.0, 3.0, 8.0],
              [5.0, 0.5, 1.0],
              [1.0, 2.0, 7.0]])


def test_r_T_by_hand():
    res = r_T(E, [1, 2, 3, 4])
    np.testing.assert_allclose(res.r, [(4 + 1 + 9) / 3, (2 + 1 + 8) / 3, (2 + 0.5 + 1) / 3, (1 + 0.5 + 1) / 3])
    assert res.at(2) == pytest.approx(11 / 3)
    np.testing.assert_allclose(best_of_T(E, [3])[0], [2, 0.5, 1])
    np.testing.assert_allclose(res.p25[0], np.percentile([4, 1, 9], 25))
    assert (res.ci_low <= res.r).all() and (res.r <= res.ci_high).all()


def test_r_T_never_increases_with_T():
    e = np.random.default_rng(0).exponential(size=(200, 50))
    r = r_T(e, range(1, 201)).r
    assert (np.diff(r) <= 0).all()


def test_failures_are_reported_not_dropped():
    e = E.copy()
    e[:, 1] = np.inf
    res = r_T(e, [1, 4])
    assert res.failures.tolist() == [1, 1]
    assert np.isinf(res.r).all()
    e[3, 1] = 0.0
    assert r_T(e, [1, 4]).failures.tolist() == [1, 0]


@pytest.mark.parametrize("Ts", [[0], [5], []])
def test_bad_T_raises(Ts):
    with pytest.raises(ValueError, match="every T"):
        r_T(E, Ts)


def test_resimulation_errors_through_the_ground_truth():
    task = tasks.get("sine_wave")
    x = task.sample_prior(3, seed=0)
    y = task.simulate(x)
    x_hat = torch.stack([x, x + 0.01, torch.full_like(x, float("nan"))])
    e = resimulation_errors(task, x_hat, y)
    assert e.shape == (3, 3)
    assert e[0].max() < 1e-12
    expected = ((task.simulate((x + 0.01).double()) - y.double()) ** 2).mean(1)
    np.testing.assert_allclose(e[1].numpy(), expected.numpy(), rtol=1e-6)
    assert torch.isinf(e[2]).all()


def test_resimulation_errors_check_shapes():
    task = tasks.get("robotic_arm")
    with pytest.raises(ValueError, match=r"\(T, B, 4\)"):
        resimulation_errors(task, torch.zeros(5, 4), torch.zeros(5, 2))
    with pytest.raises(ValueError, match=r"\(5, 2\)"):
        resimulation_errors(task, torch.zeros(1, 5, 4), torch.zeros(4, 2))
