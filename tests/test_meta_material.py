"""D4's TCMT ground truth: the contract, coupled-mode theory against its analytic limits, physics trends."""
import math

import numpy as np
import pytest
import torch

from inverse_lib import tasks
from inverse_lib.tasks import meta_material as mm


@pytest.fixture(scope="module")
def task():
    return tasks.get("meta_material")


def _box_and_beyond(task, n, margin, seed):
    lo, hi = task.box()
    span = hi - lo
    g = torch.Generator().manual_seed(seed)
    return lo - margin * span + (1 + 2 * margin) * span * torch.rand(n, 8, generator=g, dtype=torch.float64)


def test_registered_with_the_papers_box(task):
    assert task.x_dim == 8 and task.y_dim == 300 == len(mm.FREQUENCIES_THZ)
    assert task.lower == (30.0,) * 4 + (42.0,) * 4 and task.upper == (55.0,) * 4 + (52.0,) * 4
    assert task.x_names == ("h1", "h2", "h3", "h4", "r1", "r2", "r3", "r4")
    x = task.sample_prior(1000, seed=0)
    lo, hi = task.box()
    assert (x.double() >= lo).all() and (x.double() <= hi).all()


def test_frequency_window():
    f = mm.FREQUENCIES_THZ
    assert f.dtype == torch.float64 and f[0] == pytest.approx(0.6) and f[-1] == pytest.approx(1.3)
    assert torch.all(torch.diff(f) > 0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_shapes_and_dtype(task, dtype):
    x = task.sample_prior(7, seed=1).to(dtype)
    y = task.simulate(x)
    assert y.shape == (7, 300) and y.dtype == dtype
    y_np = task.simulate(x.double().numpy())
    assert y_np.dtype == torch.float64


def test_batch_independence(task):
    x = task.sample_prior(64, seed=2).double()
    together = task.simulate(x)
    alone = torch.cat([task.simulate(x[i:i + 1]) for i in range(len(x))])
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-12)
    torch.testing.assert_close(mm.meta_material_forward(x, chunk=5), together, rtol=0, atol=1e-12)


def test_values_in_unit_interval_and_finite_over_the_box_and_beyond(task):
    lo, hi = task.box()
    corners = torch.tensor(list(np.ndindex(*(2,) * 8)), dtype=torch.float64)
    x = torch.cat([lo + corners * (hi - lo), _box_and_beyond(task, 2000, 0.2, seed=3)])
    y = task.simulate(x)
    assert torch.isfinite(y).all()
    assert y.min() >= 0 and y.max() <= 1 + 1e-12


def test_spectra_have_distinct_geometry_dependent_dips(task):
    y = task.simulate(task.sample_prior(200, seed=4).double())
    assert (y.min(1).values < 0.5).all(), "every design should absorb somewhere in the window"
    assert (y[:, 0] > 0.9).all() and (y[:, -1] > 0.9).all(), "the window should reach the off-resonant baseline"
    dips = ((y[:, 1:-1] < y[:, :-2]) & (y[:, 1:-1] < y[:, 2:])).sum(1)
    assert dips.float().mean() >= 3, f"expected several dips per spectrum, got {dips.float().mean():.1f}"
    assert y.std(0).mean() > 0.05, "spectra barely depend on the geometry"
    assert len(set(y.argmin(1).tolist())) > 30, "the deepest dip should move with the geometry"


def test_identical_cylinders_show_only_bright_modes(task):
    # with four identical cylinders the dark (out-of-phase) modes cannot radiate: fewer dips than a broken cell
    base = torch.tensor([[42.5] * 4 + [47.0] * 4], dtype=torch.float64)
    broken = base.clone()
    broken[0, 4] = 50.0
    y0, y1 = task.simulate(base)[0], task.simulate(broken)[0]
    count = lambda y: int(((y[1:-1] < y[:-2]) & (y[1:-1] < y[2:])).sum())
    assert count(y0) < count(y1)


# -- coupled-mode theory -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("w0, gr, ga", [(6.0, 0.3, 0.06), (6.0, 0.06, 0.06), (5.0, 0.01, 0.2)])
def test_single_resonance_is_the_analytic_lorentzian(w0, gr, ga):
    w = torch.linspace(w0 - 2, w0 + 2, 40_001, dtype=torch.float64)
    Om = torch.tensor([[[w0]]], dtype=torch.float64)
    g_rad = torch.tensor([[gr]], dtype=torch.float64)
    R = mm.tcmt_reflectance(w, Om, g_rad, ga)[0]
    lorentz = 1 - 4 * gr * ga / ((w - w0) ** 2 + (gr + ga) ** 2)
    torch.testing.assert_close(R, lorentz, rtol=0, atol=1e-12)
    r = mm.tcmt_reflection(w, Om, g_rad, ga)[0]
    expected = -(1j * (w - w0) + ga - gr) / (1j * (w - w0) + ga + gr)
    torch.testing.assert_close(r, expected, rtol=0, atol=1e-12)
    # depth 4 gr ga / (gr + ga)^2 at w0 (1 at critical coupling), full width at half depth 2 (gr + ga)
    depth = 1 - R.min()
    assert depth.item() == pytest.approx(4 * gr * ga / (gr + ga) ** 2, rel=1e-6)
    assert w[R.argmin()].item() == pytest.approx(w0, abs=1e-4)
    half = R < 1 - depth / 2
    width = (w[half].max() - w[half].min()).item()
    assert width == pytest.approx(2 * (gr + ga), abs=3e-4)  # grid step 1e-4


def test_lossless_modes_reflect_everything():
    x = mm.META_MATERIAL.sample_prior(5, seed=5).double()
    omega, g_rad, vol = mm.modes(x)
    w = 2 * math.pi * mm.FREQUENCIES_THZ
    R = mm.tcmt_reflectance(w, mm.mode_matrix(omega, vol), g_rad, 1e-13)
    torch.testing.assert_close(R, torch.ones_like(R), rtol=0, atol=1e-9)


def test_fast_evaluation_matches_a_direct_solve():
    x = torch.cat([mm.META_MATERIAL.sample_prior(6, seed=6).double(),
                   torch.tensor([[42.5] * 4 + [47.0] * 4], dtype=torch.float64)])   # degenerate modes too
    omega, g_rad, vol = mm.modes(x)
    Om = mm.mode_matrix(omega, vol)
    w = 2 * math.pi * mm.FREQUENCIES_THZ
    ga = w * mm.TAN_DELTA / 2
    fast = mm.tcmt_reflection(w, Om, g_rad, ga)
    direct = mm.tcmt_reflection_direct(w, Om, g_rad, ga)
    torch.testing.assert_close(fast, direct, rtol=0, atol=1e-11)
    assert (fast.abs() <= 1 + 1e-12).all()
    # the direct solve with the same rate given per mode agrees too
    per_mode = mm.tcmt_reflection_direct(w[:1], Om, g_rad, ga[:1].expand(len(x), 8))
    torch.testing.assert_close(per_mode, fast[:, :1], rtol=0, atol=1e-11)


def test_mode_matrix_is_symmetric_with_nearest_neighbour_coupling():
    x = mm.META_MATERIAL.sample_prior(3, seed=7).double()
    omega, _, vol = mm.modes(x)
    Om = mm.mode_matrix(omega, vol)
    torch.testing.assert_close(Om, Om.transpose(1, 2), rtol=0, atol=0)
    torch.testing.assert_close(torch.diagonal(Om, dim1=1, dim2=2), omega, rtol=0, atol=0)
    assert (Om[:, :4, 4:] == 0).all(), "unlike modes must not couple"
    assert (Om[:, 0, 3] == 0).all() and (Om[:, 1, 2] == 0).all(), "diagonal neighbours must not couple"
    assert (Om[:, 0, 1] > 0).all() and (Om[:, 4, 5] < 0).all() and (Om[:, 4, 6] > 0).all()
    kappa = (Om[:, 0, 1] / torch.sqrt(omega[:, 0] * omega[:, 1])).abs()
    assert ((kappa > 0.005) & (kappa < 0.1)).all(), "the coupling should be a few percent"


# -- the design formulas --------------------------------------------------------------------------------------------
def test_design_formulas_at_a_hand_computed_point():
    a, H = torch.tensor(4.7), torch.tensor(4.1)              # millimetres give GHz, micrometres give THz
    assert mm.te01d_frequency_thz(a, H).item() == pytest.approx(34 / (4.7 * 11.7 ** 0.5) * (4.7 / 4.1 + 3.45))
    assert mm.te01d_frequency_thz(a * 10, H * 10).item() == pytest.approx(mm.te01d_frequency_thz(a, H).item() / 10)
    k0a = 6.324 / 13.7 ** 0.5 * (0.27 + 0.36 * 4.7 / 8.2 + 0.02 * (4.7 / 8.2) ** 2)
    assert mm.hem11d_frequency_thz(torch.tensor(47.0), torch.tensor(41.0)).item() == pytest.approx(
        299.792458 * k0a / (2 * math.pi * 47.0))
    # resonances inside the window, radiative Q of order ten (low-permittivity resonators radiate strongly)
    x = mm.META_MATERIAL.sample_prior(500, seed=8).double()
    omega, g_rad, _ = mm.modes(x)
    f = omega / (2 * math.pi)
    assert f.min() > mm.F_MIN_THZ + 0.05 and f.max() < mm.F_MAX_THZ - 0.1
    Q = omega / (2 * g_rad * mm.N_CYLINDERS)
    assert ((Q > 7) & (Q < 12)).all()


def test_resonances_fall_with_radius_and_height():
    a = torch.linspace(42, 52, 21, dtype=torch.float64)
    H = torch.linspace(30, 55, 26, dtype=torch.float64)
    A, HH = torch.meshgrid(a, H, indexing="ij")
    for fn in (mm.te01d_frequency_thz, mm.hem11d_frequency_thz):
        f = fn(A, HH)
        assert (torch.diff(f, dim=0) < 0).all(), f"{fn.__name__} should fall as the radius grows"
        assert (torch.diff(f, dim=1) < 0).all(), f"{fn.__name__} should fall as the height grows"
    # and the absorption of whole spectra moves down in frequency when every cylinder grows
    task = mm.META_MATERIAL
    x = task.sample_prior(50, seed=9).double().clamp(max=torch.tensor([53.0] * 4 + [50.0] * 4, dtype=torch.float64))
    f = mm.FREQUENCIES_THZ
    centroid = lambda y: ((1 - y) * f).sum(1) / (1 - y).sum(1)
    for j in (slice(0, 4), slice(4, 8)):
        bigger = x.clone()
        bigger[:, j] += 2.0
        assert (centroid(task.simulate(bigger)) < centroid(task.simulate(x))).all()


# -- gradients ------------------------------------------------------------------------------------------------------
def test_gradients_match_finite_differences():
    x = torch.cat([mm.META_MATERIAL.sample_prior(2, seed=10).double(),
                   torch.tensor([[42.5] * 4 + [47.0] * 4], dtype=torch.float64)])   # identical cylinders too
    f = mm.FREQUENCIES_THZ[::10]
    fn = lambda x: mm.meta_material_forward(x, frequencies_thz=f)
    assert torch.autograd.gradcheck(fn, (x.requires_grad_(True),), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_task_reports_a_gradient(task):
    assert task.has_gradient
    x = task.sample_prior(4, seed=11).double().requires_grad_(True)
    (g,) = torch.autograd.grad(task.simulate(x).sum(), x)
    assert torch.isfinite(g).all() and (g.abs() > 0).any()


def test_gallery_builds_a_figure(tmp_path):
    fig = mm.gallery(n_examples=3, steps=3)
    assert len(fig.axes) == 3
    assert all(len(ax.lines) == n for ax, n in zip(fig.axes, (3, 3, 3)))
    fig.savefig(tmp_path / "gallery.png")
    assert (tmp_path / "gallery.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="radius must be one of"):
        mm.gallery(radius="h1")


def test_unsimulable_designs_give_nan_rows_not_exceptions():
    from inverse_lib import metrics, tasks
    task = tasks.get("meta_material")
    x = task.sample_prior(4, seed=0).double()
    wild = x.clone()
    wild[1, 5] = -3.0          # a negative radius
    wild[2, 0] = 0.0           # a zero height
    wild[3] = 1e6              # absurdly large, but positive: a (dull) spectrum
    y = task.simulate(wild)
    assert torch.isnan(y[1]).all() and torch.isnan(y[2]).all()
    assert torch.isfinite(y[0]).all() and torch.isfinite(y[3]).all()
    torch.testing.assert_close(y[0], task.simulate(x[:1])[0])     # the others are unaffected
    e = metrics.resimulation_errors(task, wild.float().unsqueeze(0), task.simulate(x).float())
    assert torch.isinf(e[0, 1:3]).all() and torch.isfinite(e[0, 0])
