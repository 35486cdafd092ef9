"""The mixture density network: its likelihood and its multi-modal proposals (the contract is in test_models.py)."""
import pytest
import torch
from torch import distributions as dist

from inverse_lib import data, models, tasks
from inverse_lib.models.mdn import MDNConfig, mixture_nll


@pytest.fixture
def one_thread():
    """Tiny networks train ~10x faster on one thread than on threads that compete for a shared CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_nll_matches_torch_distributions_in_float64():
    g = torch.Generator().manual_seed(3)
    B, K, D = 7, 4, 3
    x = torch.randn(B, D, generator=g, dtype=torch.float64)
    logits = 3 * torch.randn(B, K, generator=g, dtype=torch.float64)
    mean = torch.randn(B, K, D, generator=g, dtype=torch.float64)
    std = torch.rand(B, K, D, generator=g, dtype=torch.float64) + 0.05
    ref = dist.MixtureSameFamily(dist.Categorical(logits=logits), dist.Independent(dist.Normal(mean, std), 1))
    torch.testing.assert_close(mixture_nll(x, logits, mean, std), -ref.log_prob(x), rtol=0, atol=1e-6)
    # far in a tail the logsumexp keeps it finite where a sum of densities would underflow to log(0)
    assert torch.isfinite(mixture_nll(x + 1e3, logits, mean, std)).all()


def test_authors_settings_and_bad_settings():
    assert MDNConfig.for_task("sine_wave").components == 13
    assert MDNConfig.for_task("robotic_arm").widths == (500,) * 7
    assert MDNConfig.for_task("my_task").components == MDNConfig.DEFAULTS["generic"]["components"]
    with pytest.raises(ValueError, match="components"):
        MDNConfig.for_task("sine_wave", components=0)
    with pytest.raises(ValueError, match="min_std"):
        MDNConfig.for_task("sine_wave", min_std=0.0)


def test_proposals_find_both_roots_of_a_square(one_thread):
    # y = x^2 with x ~ U(-1, 1): the target y = 0.25 has two equally likely answers, x = -0.5 and x = +0.5
    square = tasks.register(tasks.make_task(
        "mdn_square", lambda x: x ** 2,
        lambda n, g: torch.rand(n, 1, generator=g, dtype=torch.float64) * 2 - 1,
        x_dim=1, y_dim=1, lower=[-1], upper=[1]), overwrite=True)
    d = data.generate(square, n=2000, seed=0, n_test=2)
    model = models.create("mdn", square, device="cpu", seed=0, widths=(32, 32), components=4, lr=1e-2, reg=0.0,
                          batch_size=128)
    model.fit(d, epochs=30, progress=False)
    x = model.propose([[0.25]], T=2000, seed=1)[:, 0, 0]
    near_minus, near_plus = ((x + 0.5).abs() < 0.1).float().mean(), ((x - 0.5).abs() < 0.1).float().mean()
    # each root within +-0.1 holds at least 30% of the 2,000 draws (a single-mode fit would give one of them ~0%)
    assert near_minus > 0.3 and near_plus > 0.3, f"mass near -0.5: {near_minus:.2f}, near +0.5: {near_plus:.2f}"
    assert (x.abs() < 0.25).float().mean() < 0.1, "little mass between the roots, where no answer lies"
