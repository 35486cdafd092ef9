"""One contract for every inverse model and baseline (see inverse_lib/models/base.py)."""
from dataclasses import fields

import numpy as np
import pytest
import torch

from inverse_lib import data, metrics, models, tasks

ALL = models.names(baselines=True)
TASKS = ["sine_wave", "robotic_arm"]
# small networks and a short search so every model trains in well under a second
TINY = dict(widths=(16, 16), forward_widths=(16,), inverse_widths=(16,), encoder_widths=(16,),
            decoder_widths=(16,), pool=16, steps=5, blocks=2, subnet_width=16, hidden=16, reg=0.0, batch_size=128)


def tiny(name, task, **extra):
    valid = {f.name for f in fields(models.get(name).config_class)}
    return models.create(name, task, device="cpu", seed=1, **{k: v for k, v in TINY.items() if k in valid}, **extra)


@pytest.fixture(scope="module", params=TASKS)
def dataset(request):
    return data.generate(request.param, n=400, seed=0, n_test=6)


@pytest.mark.parametrize("name", ALL)
def test_contract(name, dataset, tmp_path):
    task = tasks.get(dataset.task)
    model = tiny(name, task)
    before = {k: v.clone() for k, v in model.net.named_parameters()}
    hist = model.fit(dataset, epochs=2, progress=False)
    # a gradient reached every trainable parameter: with weight decay off, each one moved
    for k, v in model.net.named_parameters():
        assert not torch.equal(before[k], v), f"{name}: parameter {k} never changed"
    if before:
        assert len(hist.train) == 2 and len(hist.val) == 2 and np.isfinite(hist.val).all()
    x = model.propose(dataset.y_test, T=4, seed=7)
    assert x.shape == (4, 6, task.x_dim) and x.dtype == torch.float32 and torch.isfinite(x).all()
    assert torch.equal(x, model.propose(dataset.y_test, T=4, seed=7)), "same seed, same proposals"
    model.save(tmp_path / "m.pt")
    again = models.load(tmp_path / "m.pt", device="cpu")
    assert type(again) is type(model) and again.config == model.config
    assert torch.equal(again.propose(dataset.y_test.numpy(), T=4, seed=7), x)


@pytest.mark.parametrize("name", ALL)
def test_unknown_setting_lists_valid_names(name):
    with pytest.raises(ValueError, match="valid: .*epochs"):
        models.create(name, "sine_wave", epochz=3)


def test_cosine_schedule_anneals_the_learning_rate_to_zero(monkeypatch):
    with pytest.raises(ValueError, match="schedule must be"):
        models.create("na", "sine_wave", schedule="step")
    d = data.generate("sine_wave", n=200, seed=0, n_test=2)
    seen = []
    real_step = torch.optim.Adam.step

    def spy(self, *a, **k):
        seen.append(self.param_groups[0]["lr"])
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    model = models.create("na", "sine_wave", device="cpu", schedule="cosine", lr=1e-3, batch_size=160)
    model.fit(d, epochs=4, progress=False)
    # one batch per epoch: lr * (1 + cos(pi * e / 4)) / 2 for e = 0..3
    expected = [1e-3 * (1 + np.cos(np.pi * e / 4)) / 2 for e in range(4)]
    np.testing.assert_allclose(seen, expected, rtol=1e-9)


def test_unknown_model_lists_known_ones():
    with pytest.raises(ValueError, match="known models: na, tandem, cvae, inn, cinn"):
        models.create("nn", "sine_wave")


def test_propose_before_fit_and_bad_targets():
    model = tiny("tandem", "robotic_arm")
    with pytest.raises(RuntimeError, match="fit"):
        model.propose(torch.zeros(2, 2), 3)
    model.fit(data.generate("robotic_arm", n=100, n_test=2), epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        model.propose(torch.zeros(2, 3), 3)
    with pytest.raises(ValueError, match="positive integer"):
        model.propose(torch.zeros(2, 2), 0)
    with pytest.raises(ValueError, match="for task 'sine_wave'"):
        model.fit(data.generate("sine_wave", n=100, n_test=2), epochs=1)


def test_authors_defaults_per_task():
    assert models.create("na", "ballistics", device="cpu").config.widths == (500, 500, 500)
    assert models.create("na", "ballistics", device="cpu").config.lr == 1e-2
    assert models.create("cvae", "robotic_arm", device="cpu").config.kl == 1.0
    assert models.create("tandem", "robotic_arm", device="cpu").config.forward_widths == (300, 300)


# -- the neural-adjoint's search, independent of training -------------------------------------------

def exact_na(task_name, **kw):
    """The search with the exact simulator as its surrogate (the classical adjoint)."""
    d = data.generate(task_name, n=2000, seed=0, n_test=5)
    model = models.create("adjoint", task_name, device="cpu", seed=0, **kw)
    model.fit(d)
    return model, d


def test_search_with_the_exact_sine_simulator_reaches_1e_8():
    model, d = exact_na("sine_wave", pool=64, steps=300)
    e = metrics.resimulation_errors("sine_wave", model.propose(d.y_test, T=1), d.y_test)
    assert e.max() < 1e-8, e


def test_boundary_loss_pulls_candidates_back_inside():
    d = data.generate("sine_wave", n=2000, seed=0, n_test=5)
    lo, hi = (b.float() for b in tasks.get("sine_wave").box())
    y = d.norm_y(d.y_test[:2])
    excess = {}
    for label, kw in (("strong", dict(boundary_weight=10.0)), ("default", {}), ("off", dict(boundary=False))):
        model = models.create("adjoint", "sine_wave", device="cpu", pool=32, steps=200, **kw)
        model.fit(d)
        x0 = model.norm_x(torch.tensor([1.6, -1.7]) + 0.05 * torch.randn(2, 32, 2))  # all outside the box
        xs = model.denorm_x(model.search(y, T=32, x0=x0)[0])
        excess[label] = (torch.relu(xs - hi) + torch.relu(lo - xs)).sum(-1)
    # ranked best first: a strong boundary loss brings the best half inside and most of the rest near it
    assert (excess["strong"][:16] < 1e-3).all(), "a strong boundary loss brings the best candidates inside"
    assert (excess["strong"] < 1e-2).float().mean() > 0.8
    assert excess["default"].mean() < excess["off"].mean(), {k: v.mean() for k, v in excess.items()}
    assert excess["off"].mean() > 0.3, "without it the sine's periodic solutions keep them outside"


def test_pruning_does_less_work_and_keeps_the_best():
    model, d = exact_na("robotic_arm", pool=256, steps=300)
    y = d.norm_y(d.y_test)
    x0 = model.starting_points(5 * 256, seed=3).reshape(5, 256, -1)
    full, loss_full, work_full = model.search(y, T=10, x0=x0)
    pruned = models.create("adjoint", "robotic_arm", device="cpu", pool=256, steps=300,
                           prune=((0.2, 0.25), (0.5, 0.25)))
    pruned.fit(d)
    _, loss_pruned, work_pruned = pruned.search(y, T=10, x0=x0)
    assert work_pruned < 0.45 * work_full
    # every one of the top 10 converged either way
    assert loss_pruned.max() < 1e-10 and loss_full.max() < 1e-10


@pytest.mark.parametrize("task_name", ["robotic_arm", "ballistics", "meta_material"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_hand_written_search_gradient_equals_autograd(task_name, reduction):
    from inverse_lib.models.neural_adjoint import inference_layers, loss_and_input_grad

    torch.manual_seed(0)
    model = models.create("na", task_name, device="cpu", boundary_reduction=reduction)
    for mod in model.net.modules():  # BatchNorm statistics far from the identity, so that folding matters
        if isinstance(mod, torch.nn.BatchNorm1d):
            mod.running_mean.uniform_(-1, 1), mod.running_var.uniform_(0.5, 2), mod.weight.data.uniform_(0.5, 2)
    model.net.double().eval()
    t = tasks.get(task_name)
    d = data.generate(task_name, n=50, seed=0, n_test=2)
    model.stats = {k: getattr(d, k).double() for k in ("x_mean", "x_std", "y_mean", "y_std")}
    x = 1.5 * torch.randn(2, 5, t.x_dim, dtype=torch.float64)  # some candidates outside the box
    y = torch.randn(2, t.y_dim, dtype=torch.float64)
    layers = inference_layers(model.net)
    assert layers is not None
    (la, ga), (lb, gb) = model.loss_and_grad(x, y, layers), model.loss_and_grad(x, y)
    torch.testing.assert_close(la, lb, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(ga, gb, rtol=1e-9, atol=1e-12)
    assert ga.abs().max() > 0
    # blocks of rows that cut across targets give the same answer
    lc, gc = loss_and_input_grad(layers, x, y, block=3)
    ld, gd = loss_and_input_grad(layers, x, y)
    torch.testing.assert_close((lc, gc), (ld, gd), rtol=1e-12, atol=1e-14)


def test_inference_layers_refuses_other_networks():
    from inverse_lib.models.neural_adjoint import inference_layers

    assert inference_layers(torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1))) is None
    assert inference_layers(torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU())) is None
    assert inference_layers(torch.nn.Conv1d(1, 1, 3)) is None


def test_chunking_does_not_change_proposals():
    model, d = exact_na("sine_wave", pool=16, steps=20)
    a = model.propose(d.y_test, T=3, seed=2)
    small = models.create("adjoint", "sine_wave", device="cpu", pool=16, steps=20, memory_mb=0)
    small.fit(d)
    assert small.chunk_targets() == 1
    torch.testing.assert_close(small.propose(d.y_test, T=3, seed=2), a)


@pytest.mark.slow
def test_na_beats_tandem_on_the_sine_after_short_training():
    d = data.generate("sine_wave", n=5000, seed=0, n_test=40)
    r = {}
    for name, kw in (("na", dict(pool=256, steps=150)), ("tandem", {})):
        m = models.create(name, "sine_wave", device="cpu", seed=0, **kw)
        m.fit(d, epochs=40, progress=False)
        r[name] = metrics.r_T(metrics.resimulation_errors("sine_wave", m.propose(d.y_test, 50), d.y_test), [50]).r[0]
    assert r["na"] < 1e-3, r
    assert r["na"] < r["tandem"], r
