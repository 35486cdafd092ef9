import pytest
import torch

from inverse_lib import data, tasks


def test_split_sizes_stats_and_fresh_targets():
    d = data.generate("robotic_arm", n=1000, seed=0, n_test=50)
    assert len(d.x_train) == 800 and len(d.x_val) == 200 and d.x_test.shape == (50, 4)
    torch.testing.assert_close(d.y_train, tasks.get("robotic_arm").simulate(d.x_train.double()).float())
    torch.testing.assert_close(d.x_mean, d.x_train.mean(0))
    # test targets come from their own stream: none of them is a training or validation sample
    pool = torch.cat([d.x_train, d.x_val])
    assert torch.cdist(d.x_test, pool).min() > 0
    # the normalisation round-trips
    torch.testing.assert_close(d.denorm_x(d.norm_x(d.x_val)), d.x_val)


def test_cache_loads_the_second_time(monkeypatch):
    first = data.load_or_generate("sine_wave", n=100, seed=1, n_test=10)
    calls = []
    monkeypatch.setattr(data, "generate", lambda *a, **k: calls.append(1))
    second = data.load_or_generate("sine_wave", n=100, seed=1, n_test=10)
    assert calls == []
    assert torch.equal(first.x_train, second.x_train) and torch.equal(first.y_test, second.y_test)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "tamper"])
def test_corrupted_cache_is_rebuilt(damage):
    d = data.load_or_generate("sine_wave", n=100, seed=2, n_test=10)
    (path,) = (data.cache_dir() / "data").glob("sine_wave_n100_seed2_*.pt")
    raw = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a tensor file")
    else:
        blob = torch.load(path, weights_only=True)
        blob["state"]["x_train"][0, 0] += 1.0
        torch.save(blob, path)
    again = data.load_or_generate("sine_wave", n=100, seed=2, n_test=10)
    assert torch.equal(again.x_train, d.x_train)
    assert torch.load(path, weights_only=True)["state"]["x_train"][0, 0] == d.x_train[0, 0]


def test_interrupted_write_leaves_no_file(monkeypatch, tmp_path):
    def boom(obj, fh):
        fh.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", boom)
    target = tmp_path / "x.pt"
    with pytest.raises(KeyboardInterrupt):
        data.atomic_save({"a": 1}, target)
    assert not target.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs, match", [
    (dict(n=0), "positive integer"), (dict(n=-5), "positive integer"), (dict(n=3), "at least 5"),
    (dict(n_test=0), "positive integer"),
])
def test_bad_sizes_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.generate("sine_wave", **kwargs)


def test_unknown_task_raises():
    with pytest.raises(ValueError, match="known tasks"):
        data.generate("no_such_task")


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    import os
    old = os.umask(0o022)
    try:
        data.atomic_save({"a": 1}, tmp_path / "x.pt")
    finally:
        os.umask(old)
    assert (tmp_path / "x.pt").stat().st_mode & 0o777 == 0o644
