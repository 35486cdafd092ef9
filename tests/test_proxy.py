"""The D4 proxy: the authors' architecture and file format, the ensemble as a simulator, resumable training."""
import pytest
import torch

from inverse_lib import tasks
from inverse_lib.data import load_or_generate
from inverse_lib.metrics import resimulation_errors
from inverse_lib.proxy import (AUTHOR_FILES, ProxyEnsemble, ProxyNet, denormalise_geometry, normalise_geometry,
                               train_ensemble)

TINY = dict(n_designs=200, n_test=40, progress=False)


def _expected_keys():
    keys = set()
    for i in range(5):
        keys |= {f"linears.{i}.weight", f"linears.{i}.bias"}
        keys |= {f"bn_linears.{i}.{p}" for p in ("weight", "bias", "running_mean", "running_var",
                                                   "num_batches_tracked")}
    for i in range(4):
        keys |= {f"convs.{i}.weight", f"convs.{i}.bias"}
    return keys


def test_proxy_net_has_the_authors_size_and_names():
    net = ProxyNet()
    n = sum(p.numel() for p in net.parameters())
    assert abs(n - 3.17e6) < 0.01e6, n
    assert n == 3_170_659
    sd = net.state_dict()
    assert set(sd) == _expected_keys()
    shapes = {"linears.0.weight": (1000, 8), "linears.4.weight": (150, 1000), "bn_linears.4.weight": (150,),
              "convs.0.weight": (1, 4, 8), "convs.1.weight": (4, 4, 5), "convs.2.weight": (4, 4, 5),
              "convs.3.weight": (1, 4, 1)}
    for k, s in shapes.items():
        assert tuple(sd[k].shape) == s, k
    assert isinstance(net.convs[0], torch.nn.ConvTranspose1d) and isinstance(net.convs[3], torch.nn.Conv1d)


def test_proxy_net_shapes_and_other_sizes():
    net = ProxyNet().eval()
    assert net(torch.randn(5, 8)).shape == (5, 300)
    small = ProxyNet(x_dim=3, y_dim=40, hidden=(16, 16)).eval()
    assert small(torch.randn(2, 3)).shape == (2, 40)
    mlp = ProxyNet(x_dim=4, y_dim=2, hidden=(8,), conv_channels=(), conv_kernels=(), conv_strides=())
    assert mlp(torch.randn(3, 4)).shape == (3, 2) and len(mlp.convs) == 0
    with pytest.raises(ValueError, match="divide"):
        ProxyNet(y_dim=301)


def test_conv_map_equals_the_convolutions_one_after_another():
    torch.manual_seed(0)
    net = ProxyNet().double()
    h = torch.randn(7, 150, dtype=torch.float64)
    matrix, offset = net.conv_map()
    torch.testing.assert_close(h @ matrix + offset, net.conv_forward(h), rtol=1e-12, atol=1e-12)
    # the same gradients reach the convolution weights through either path
    grads = []
    for path in (lambda: net.conv_forward(h), lambda: h @ net.conv_map()[0] + net.conv_map()[1]):
        net.zero_grad()
        (path() ** 2).sum().backward()
        grads.append([c.weight.grad.clone() for c in net.convs])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_the_last_batchnorm_is_unused():
    net = ProxyNet().eval()
    x = torch.randn(4, 8)
    before = net(x)
    with torch.no_grad():
        net.bn_linears[4].weight.mul_(3.0)
        net.bn_linears[4].running_mean.add_(1.0)
    torch.testing.assert_close(net(x), before)


def test_geometry_normalisation_round_trip():
    x = tasks.get("meta_material").sample_prior(10, seed=0).double()
    torch.testing.assert_close(denormalise_geometry(normalise_geometry(x)), x)
    corners = torch.tensor([[30.0] * 4 + [42.0] * 4, [52.0] * 4 + [52.0] * 4], dtype=torch.float64)
    torch.testing.assert_close(normalise_geometry(corners), torch.tensor([[-1.0] * 8, [1.0] * 8],
                                                                         dtype=torch.float64))


def _members(k):
    nets = []
    for i in range(k):
        torch.manual_seed(100 + i)
        net = ProxyNet()
        with torch.no_grad():   # non-trivial BatchNorm statistics, as a trained file would hold
            for bn in net.bn_linears:
                bn.running_mean.normal_(0, 0.1)
                bn.running_var.uniform_(0.5, 2.0)
        nets.append(net.eval())
    return nets


def test_authors_weights_load_and_give_identical_outputs(tmp_path):
    nets = _members(5)
    for net, name in zip(nets, AUTHOR_FILES):
        torch.save(net.state_dict(), tmp_path / name)
    ens = ProxyEnsemble.load_authors_weights(tmp_path)
    x = tasks.get("meta_material").sample_prior(16, seed=1)
    expected = torch.stack([n(normalise_geometry(x)) for n in nets]).mean(0)
    torch.testing.assert_close(ens(x), expected, rtol=0, atol=0)
    # a "module."-prefixed file (saved from DataParallel) loads too
    torch.save({f"module.{k}": v for k, v in nets[0].state_dict().items()}, tmp_path / "mm1.pth")
    torch.testing.assert_close(ProxyEnsemble.load_authors_weights(tmp_path)(x), expected, rtol=0, atol=0)
    (tmp_path / "mm3.pth").unlink()
    with pytest.raises(FileNotFoundError, match="mm3.pth"):
        ProxyEnsemble.load_authors_weights(tmp_path)


def test_ensemble_is_a_simulator(tmp_path):
    ens = ProxyEnsemble(_members(2))
    ens.train()
    assert not ens.training and not any(m.training for m in ens.members)
    task = tasks.get("meta_material")
    x = task.sample_prior(6, seed=2).double()
    y = ens.simulate(x)
    assert y.shape == (6, 300) and y.dtype == torch.float64
    torch.testing.assert_close(ens.simulate(x[:1]), y[:1])                    # batch independent (eval-mode BN)
    x_hat = task.sample_prior(3 * 4, seed=3).double().reshape(3, 4, 8)
    targets = task.simulate(task.sample_prior(4, seed=4).double())
    e = resimulation_errors(task, x_hat, targets, simulator=ens)
    assert e.shape == (3, 4) and torch.isfinite(e).all()
    direct = ((ens.simulate(x_hat.reshape(-1, 8)).reshape(3, 4, 300) - targets) ** 2).mean(2)
    torch.testing.assert_close(e, direct, rtol=1e-6, atol=1e-9)
    # differentiable in x (NA on the proxy), and usable as a Task
    xg = x.float().requires_grad_(True)
    (g,) = torch.autograd.grad(ens(xg).sum(), xg)
    assert torch.isfinite(g).all() and (g != 0).any()
    proxy_task = ens.as_task()
    torch.testing.assert_close(proxy_task.simulate(x), y)
    assert proxy_task.lower == task.lower
    paths = ens.save(tmp_path)
    again = ProxyEnsemble.load_authors_weights(tmp_path, files=[p.name for p in paths])
    torch.testing.assert_close(again.simulate(x), y, rtol=0, atol=0)


def test_train_ensemble_tiny_end_to_end(tmp_path):
    ens, rep = train_ensemble(members=2, epochs=2, directory=tmp_path, **TINY)
    assert len(ens.members) == 2 and rep.epochs_trained == [2, 2]
    assert len(rep.member_mse) == 2 and rep.ensemble_mse > 0 and all(m > 0 for m in rep.member_mse)
    assert rep.n_test == 40 and rep.total_seconds > 0 and all(len(h["val"]) == 2 for h in rep.history)
    assert "MSE vs ground truth" in str(rep)
    loaded = ProxyEnsemble.load_authors_weights(tmp_path, files=["mm1.pth", "mm2.pth"])
    x = tasks.get("meta_material").sample_prior(5, seed=5)
    torch.testing.assert_close(loaded(x), ens(x), rtol=0, atol=0)
    # the report's MSEs are the errors against the ground truth on the held-out (test) designs of the data set
    data = load_or_generate("meta_material", n=200, seed=0, n_test=40)
    y_hat = ens.simulate(data.x_test.double())
    assert ((y_hat - data.y_test.double()) ** 2).mean().item() == pytest.approx(rep.ensemble_mse, rel=1e-5)
    assert ((ens.members[1](normalise_geometry(data.x_test)) - data.y_test) ** 2).mean().item() == pytest.approx(
        rep.member_mse[1], rel=1e-5)


def test_train_ensemble_resumes_instead_of_retraining(tmp_path):
    TINY = {**globals()["TINY"], "schedule": "plateau"}  # the authors' schedule: a run can be extended
    _, rep2 = train_ensemble(members=1, epochs=2, directory=tmp_path / "a", **TINY)
    ens3, rep3 = train_ensemble(members=1, epochs=3, directory=tmp_path / "a", **TINY)
    assert rep3.epochs_trained == [1], "only the missing epoch should be trained"
    assert len(rep3.history[0]["train"]) == 3 and rep3.history[0]["train"][:2] == rep2.history[0]["train"]
    _, again = train_ensemble(members=1, epochs=3, directory=tmp_path / "a", **TINY)
    assert again.epochs_trained == [0] and again.member_mse == rep3.member_mse
    # resuming reproduces an uninterrupted run (optimiser, scheduler and batch order restored)
    straight, _ = train_ensemble(members=1, epochs=3, directory=tmp_path / "b", **TINY)
    x = tasks.get("meta_material").sample_prior(5, seed=6)
    torch.testing.assert_close(ens3(x), straight(x), rtol=1e-5, atol=1e-6)
    # a finished member is loaded even when fewer epochs are asked for; a new member trains alone
    _, rep_m = train_ensemble(members=2, epochs=1, directory=tmp_path / "a", **TINY)
    assert rep_m.epochs_trained == [0, 1]


def test_a_cosine_run_is_reloaded_but_not_extended(tmp_path):
    _, first = train_ensemble(members=1, epochs=2, directory=tmp_path, schedule="cosine", **TINY)
    _, again = train_ensemble(members=1, epochs=2, directory=tmp_path, schedule="cosine", **TINY)
    assert again.epochs_trained == [0] and again.member_mse == first.member_mse
    with pytest.raises(ValueError, match="cannot be extended"):
        train_ensemble(members=1, epochs=3, directory=tmp_path, schedule="cosine", **TINY)
    with pytest.raises(ValueError, match="cannot be extended"):
        train_ensemble(members=1, epochs=2, directory=tmp_path, schedule="plateau", **TINY)
    with pytest.raises(ValueError, match="schedule must be"):
        train_ensemble(members=1, epochs=2, directory=tmp_path, schedule="step", **TINY)


def test_train_ensemble_survives_a_torn_checkpoint(tmp_path):
    train_ensemble(members=1, epochs=1, directory=tmp_path, **TINY)
    (tmp_path / "member1.ckpt").write_bytes(b"not a checkpoint")
    ens, rep = train_ensemble(members=1, epochs=1, directory=tmp_path, **TINY)
    assert rep.epochs_trained == [1] and torch.isfinite(torch.tensor(rep.member_mse)).all()


def test_default_directory_is_keyed_under_the_cache(tmp_path, monkeypatch):
    _, rep = train_ensemble(members=1, epochs=1, **TINY)
    assert "proxy" in rep.directory and "n200_seed0" in rep.directory
    assert str(tmp_path) in rep.directory
