"""The INN and cINN: invertibility and log-determinants (float64, against autograd), the training and proposal
contract, permutations through save/load, the z-term gradient, and the INN's domain of definition."""
import numpy as np
import pytest
import torch

from inverse_lib import data, models, tasks
from inverse_lib.metrics import r_T, resimulation_errors
from inverse_lib.models.inn import INN, CINNConfig, INNConfig

TINY = dict(blocks=2, widths=(32, 32))
CASES = [("inn", "sine_wave"), ("inn", "robotic_arm"), ("cinn", "sine_wave"), ("cinn", "robotic_arm")]


def _wide_task(x_dim=2, y_dim=6):
    """A user task with more responses than designs (like the meta-material, 8 -> 300)."""
    return tasks.make_task("wide", lambda x: x.repeat(1, y_dim // x_dim + 1)[:, :y_dim],
                           lambda n, g: torch.rand(n, x_dim, generator=g, dtype=torch.float64),
                           x_dim=x_dim, y_dim=y_dim, lower=[0.0] * x_dim, upper=[1.0] * x_dim)


def _line_task():
    """A one-dimensional user task: y = x^3 on [-1, 1]."""
    return tasks.make_task("line", lambda x: x ** 3,
                           lambda n, g: torch.rand(n, 1, generator=g, dtype=torch.float64) * 2 - 1,
                           x_dim=1, y_dim=1, lower=[-1.0], upper=[1.0])


def _flow_io(m, n=6):
    """Float64 inputs of ``m``'s flow and a function ``v (n, dim), i -> flow(v)`` for sample rows ``i``."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, m.task.x_dim, generator=g, dtype=torch.float64)
    y = torch.randn(n, m.task.y_dim, generator=g, dtype=torch.float64)
    if isinstance(m, INN):
        return m.pad(x), (lambda v, i, rev=False: m.net(v, rev=rev))
    v = torch.cat([x, x.new_zeros(n, m.pad_in)], 1)
    return v, (lambda v, i, rev=False: m.net(v, y[i], rev=rev))


def _roughen(m):
    """Redraw the trainable weights larger so that the log-determinant is far from zero."""
    with torch.no_grad():
        for p in m.net.parameters():
            if p.requires_grad:
                p.normal_(0.0, 0.3)


@pytest.mark.parametrize("name,task", CASES)
def test_inverse_and_logdet_in_float64(name, task):
    m = models.create(name, task, **TINY)
    _roughen(m)
    m.net.double().eval()
    v, flow = _flow_io(m)
    rows = torch.arange(len(v))
    out, logdet = flow(v, rows)
    back, logdet_rev = flow(out, rows, rev=True)
    torch.testing.assert_close(back, v, atol=1e-10, rtol=0, msg="inverse(forward(v)) != v")
    torch.testing.assert_close(logdet_rev, -logdet, atol=1e-10, rtol=0)
    assert logdet.std() > 1e-2, "the log-determinant is trivially constant: the check would be vacuous"
    for i in range(len(v)):
        J = torch.autograd.functional.jacobian(lambda u: flow(u[None], rows[i:i + 1])[0][0], v[i])
        sign, ref = torch.linalg.slogdet(J)
        assert sign != 0
        assert abs(logdet[i].item() - ref.item()) < 1e-6, f"sample {i}: {logdet[i].item()} vs autograd {ref.item()}"


@pytest.fixture(scope="module")
def trained():
    """One briefly trained tiny model per case, with its data (trained once for the module)."""
    out = {}
    for name, task in CASES:
        torch.manual_seed(0)
        d = data.generate(task, n=300, n_test=5)
        m = models.create(name, task, epochs=6, batch_size=64, **TINY)
        out[name, task] = (m, d, m.fit(d))
    return out


@pytest.mark.parametrize("name,task", CASES)
def test_fit_propose_save_load(name, task, trained, tmp_path):
    m, d, h = trained[name, task]
    assert len(h.train) == len(h.val) == 6 and np.isfinite(h.train + h.val).all()
    assert h.train[-1] < h.train[0], f"training loss did not go down: {h.train}"
    assert 0 <= h.best_epoch < 6

    p = m.propose(d.y_test, T=7, seed=3)
    assert p.shape == (7, len(d.y_test), m.task.x_dim) and p.dtype == torch.float32
    assert torch.isfinite(p).all()
    assert torch.equal(p, m.propose(d.y_test, T=7, seed=3)), "same seed, different proposals"
    assert not torch.equal(p, m.propose(d.y_test, T=7, seed=4)), "the latent draws ignore the seed"
    assert p.std(0).mean() > 0, "the T proposals for a target are all the same"

    m.save(tmp_path / "m.pt")
    m2 = models.load(tmp_path / "m.pt")
    assert type(m2) is type(m) and m2.config == m.config
    assert torch.equal(m2.propose(d.y_test, T=7, seed=3), p)


def test_permutations_are_in_the_state_and_seeded():
    a, b, c = (models.create("inn", "ballistics", seed=s, **TINY) for s in (0, 0, 1))
    perms = [k for k in a.net.state_dict() if k.endswith(".perm")]
    assert not any(k.endswith("perm") for k, _ in a.net.named_parameters()), "permutations are buffers"
    assert len(perms) == 2
    for k in perms:
        assert torch.equal(a.net.state_dict()[k], b.net.state_dict()[k])
    assert any(not torch.equal(a.net.state_dict()[k], c.net.state_dict()[k]) for k in perms), "seed ignored"
    # building a model leaves numpy's global random stream alone
    np.random.seed(7)
    expected = np.random.rand()
    np.random.seed(7)
    models.create("cinn", "ballistics", **TINY)
    assert np.random.rand() == expected


@pytest.mark.parametrize("name,task,extra", [(n, t, {}) for n, t in CASES] + [("cinn", "robotic_arm", {"cond_dim": 5})])
def test_every_parameter_gets_a_gradient(name, task, extra):
    m = models.create(name, task, **TINY, **extra)
    m.net.train()
    x, y = torch.randn(32, m.task.x_dim), torch.randn(32, m.task.y_dim)
    m.loss(x, y).backward()
    params = [(k, p) for k, p in m.net.named_parameters() if p.requires_grad]
    assert params
    for k, p in params:
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {k}"


@pytest.mark.parametrize("name", ["inn", "cinn"])
def test_z_term_carries_gradient(name):
    """The original INN computed its z term from the sampled z (no gradient); here it is the network's output."""
    m = models.create(name, "robotic_arm", **TINY)
    m.net.train()
    x, y = torch.randn(32, 4), torch.randn(32, 2)
    terms = m.loss_terms(x, y)
    assert terms["z"].requires_grad
    params = [p for p in m.net.parameters() if p.requires_grad]
    grads = torch.autograd.grad(terms["z"], params, allow_unused=True)
    assert sum(g.abs().sum() for g in grads if g is not None) > 0


def test_inn_layout_and_loss_terms():
    m = models.create("inn", "sine_wave", **TINY)
    assert (m.dim_tot, m.z_dim, m.pad_in, m.pad_out) == (4, 1, 2, 2)
    m.net.eval()  # no noise: the loss is exactly the sum of its terms
    x, y = torch.randn(16, 2), torch.randn(16, 1)
    t = m.loss_terms(x, y)
    assert set(t) == {"y", "z", "pad", "logdet"}
    torch.testing.assert_close(m.loss(x, y), t["y"] + t["z"] + t["pad"] - t["logdet"])
    y_hat, z, pad, logdet = m.encode(m.pad(x))
    torch.testing.assert_close(t["y"], 0.5 * ((y_hat - y) ** 2).sum(1).mean() / 0.01)
    torch.testing.assert_close(t["pad"], 0.5 * (pad ** 2).sum(1).mean() / 0.01)
    assert (z.shape, pad.shape) == ((16, 1), (16, 2))
    for task, (blocks, tot, dz) in {"ballistics": (6, 4, 3), "robotic_arm": (7, 4, 2)}.items():
        c = INNConfig.for_task(task)
        assert (c.blocks, c.dim_tot, c.z_dim, c.grad_clip, c.patience) == (blocks, tot, dz, 15.0, 20)
    assert INNConfig.for_task("robotic_arm").y_noise == 0.01 and INNConfig.for_task("sine_wave").y_noise == 0.1
    assert [CINNConfig.for_task(t).blocks for t in ("ballistics", "sine_wave", "robotic_arm", "meta_material")] \
        == [13, 10, 6, 14]


def test_inn_refuses_more_responses_than_designs():
    wide = _wide_task()
    with pytest.raises(ValueError, match=r"y has 6 dimensions but x only 2.*cinn"):
        models.create("inn", wide)
    with pytest.raises(ValueError, match="dim_tot=2 is too small"):
        models.create("inn", "sine_wave", dim_tot=2, z_dim=2)  # y + z needs 3
    with pytest.raises(ValueError, match="unknown setting"):
        models.create("inn", "sine_wave", n_blocks=3)
    with pytest.raises(ValueError, match="widths must be a sequence"):
        models.create("cinn", "sine_wave", widths=16)


def test_cinn_on_user_tasks_wide_and_one_dimensional():
    for task in (_wide_task(), _line_task()):
        d = data.generate(task, n=100, n_test=3)
        m = models.create("cinn", task, epochs=1, **TINY)
        m.fit(d)
        p = m.propose(d.y_test, T=4)
        assert p.shape == (4, 3, task.x_dim) and torch.isfinite(p).all()
    assert m.dim == 2 and m.pad_in == 1  # the one-dimensional x is padded for the coupling
    inn = models.create("inn", _line_task(), epochs=1, **TINY)
    assert (inn.dim_tot, inn.z_dim, inn.pad_in, inn.pad_out) == (2, 1, 1, 0)


@pytest.mark.slow
def test_cinn_learns_the_sine_wave():
    """cINN, 30 epochs on 5,000 samples of D2: r_10 over 200 fresh targets.

    Measured (CPU, model seeds 0 and 1): r_10 = 0.017 and 0.021 (about 50-70 s of training on one core);
    ten proposals drawn from the prior give r_10 = 0.095. The threshold 0.05 leaves a margin of about 2.5x over
    the measurements and is still half the prior's. Batch 128 (instead of 1024) gives enough steps in 30 epochs.
    """
    d = data.generate("sine_wave", n=5000, n_test=200)
    m = models.create("cinn", "sine_wave", epochs=30, batch_size=128)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small batches: threads only add contention on a shared CPU (7 min vs 1 min seen)
    try:
        m.fit(d)
    finally:
        torch.set_num_threads(threads)
    e = resimulation_errors("sine_wave", m.propose(d.y_test, T=10, seed=0), d.y_test)
    r10 = r_T(e, [10]).at(10)
    print(f"cINN sine wave r_10 = {r10:.4g}")
    assert r10 < 0.05, f"cINN r_10 = {r10:.3g} on the sine wave after 30 epochs (expected < 0.05; prior gives 0.095)"
