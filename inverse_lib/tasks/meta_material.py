r"""D4, the meta-material: a physical ground truth for the paper's all-dielectric metasurface absorber.

The paper's D4 (section 5.1) maps the heights ``h1..h4`` and radii ``r1..r4`` of four dielectric cylinders in
one unit cell to a 300-point reflection spectrum, through full-wave simulations that cannot be had here
(design.md section 1, D4). This module replaces them with **temporal coupled-mode theory** (TCMT) of the same
geometry, which is exact for its own model, batched, differentiable and fast.

The model
---------
*Geometry.* A 2 x 2 unit cell of silicon-like cylinders (``EPS_R = 11.7``) on a metal ground plane::

    1  2        x-neighbours: (1, 2), (3, 4)     (the incident electric field points along x)
    3  4        y-neighbours: (1, 3), (2, 4)

Cylinder ``k`` has height ``H_k = h_k`` and radius ``a_k = r_k`` (micrometres). Centres are
``CELL_PITCH_UM`` apart in both directions (an assumption of this model; the paper does not give the pitch).

*Modes.* Every cylinder carries two resonances (design.md): the magnetic dipole TE01delta and the electric
dipole HEM11delta; their frequencies and radiative quality factors come from the empirical dielectric-resonator
design formulas (see :func:`te01d_frequency_thz`, :func:`hem11d_frequency_thz`, :func:`te01d_q`,
:func:`hem11d_q`). Maxwell's equations are scale invariant for a non-dispersive material, so formulas fitted on
millimetre resonators at GHz hold for micrometre ones at THz with the units converted (1 mm <-> 1 um,
1 GHz <-> 1 THz).

*Coupling.* Like modes of nearest neighbours couple through their near fields (:func:`mode_matrix`). The
coupling of two dipoles at distance ``d`` scales as ``p_i p_j / d^3``; with the dipole moment proportional to
the resonator volume ``V = pi a^2 H`` and the mode energy to ``V`` as well, the frequency-normalised coupling is
``kappa_ij = C sqrt(V_i V_j) / CELL_PITCH_UM^3``, with signs from the dipole orientation: the TE01delta magnetic
dipoles stand along the cylinder axis, side by side for both neighbours (``+COUPLING``); the HEM11delta electric
dipoles lie along x, end to end for x-neighbours (``-2 COUPLING``, the on-axis dipole field is twice the
broadside one) and side by side for y-neighbours (``+COUPLING``).

*Ports and losses.* One port (normal incidence, one polarisation) over the ground plane: the background
reflection is ``R_BG = -1`` and every mode radiates into that single port, so (Fan, Suh & Joannopoulos 2003)

    Gamma_rad = d d^T / 2,   d_k = sqrt(2 gamma_rad,k),
    r(omega)  = r_bg (1 - d^T (i (omega I - Omega) + Gamma_rad + Gamma_abs)^-1 d),

which keeps ``|r| <= 1`` (energy conservation; equality without absorption). A resonator's ``Q`` describes its
radiation into all directions; in a cell of ``N_CYLINDERS`` identical cylinders, their in-phase superposition
collects the cell's share of the incident wave, so each cylinder's rate into the port is
``gamma_rad,k = omega_k / (2 Q_k N_CYLINDERS)`` and the bright collective mode of identical cylinders keeps the
isolated resonator's ``Q``. The dielectric loss is ``Gamma_abs = gamma_abs(omega) I`` with
``gamma_abs(omega) = omega tan(delta) / 2`` (``TAN_DELTA``; the field is taken to lie wholly in the dielectric),
evaluated at the drive frequency, which equals ``omega_k tan(delta) / 2`` at each resonance.

*Spectrum.* ``y = |r(omega)|^2`` at the ``N_FREQUENCIES = 300`` frequencies ``FREQUENCIES_THZ``
(0.60 to 1.30 THz), which hold every resonance the box produces (0.70 to 1.15 THz before coupling).
Spectra show a broad dip from each bright collective mode, and narrow dips from the "dark" modes that the
differences between the four cylinders make radiate; their depth peaks where such a mode's radiative rate
meets its absorption rate (critical coupling), so depths as well as positions depend on the geometry.

Evaluation
----------
``Gamma_abs`` is a multiple of the identity and ``Gamma_rad`` has rank one, so by Sherman-Morrison
``r = r_bg (1 - s/2) / (1 + s/2)`` with ``s(omega) = d^T (i (omega I - Omega) + gamma_abs I)^-1 d``, and one
eigendecomposition ``Omega = U diag(w) U^T`` per design gives ``s`` at all frequencies:
``s = -i sum_k (U^T d)_k^2 / (z - w_k)`` with ``z = omega - i gamma_abs(omega)``. The eigenvectors are taken
without gradient; the gradient enters through the first-order resolvent expansion around them
(:func:`tcmt_reflection`), which is exact to first order and, unlike differentiating ``eigh``, stays finite
when modes are degenerate (identical cylinders). 40,000 designs take 8 s on the project's shared 2-core CPU
(measured under load; no gradient).

Validity
--------
The design formulas are empirical fits for single resonators (ranges as commonly quoted in the DRA literature,
e.g. A. Petosa, *Dielectric Resonator Antenna Handbook*, Artech House 2007; not re-checked against the primary
sources here): TE01delta frequency ``0.5 < a/H < 2``, ``30 < eps_r < 50``; TE01delta Q about ``0.5 < a/H < 5``;
HEM11delta frequency and Q about ``0.4 < a/H < 6``. The box (``a/H`` from 42/55 = 0.76 to 52/30 = 1.73) stays
inside every aspect-ratio range; it leaves them in permittivity for the TE01delta frequency (11.7 < 30). Beyond
that, the model's own assumptions -- the pitch, the coupling prefactor, the port share ``1/N_CYLINDERS``,
nearest-neighbour coupling only, a frequency-independent ``eps_r`` -- make it a physically structured stand-in
for the full-wave simulations, not a prediction of them.

References
----------
* S. Fan, W. Suh, J. D. Joannopoulos, "Temporal coupled-mode theory for the Fano resonance in optical
  resonators", J. Opt. Soc. Am. A 20, 569 (2003).
* R. K. Mongia, P. Bhartia, "Dielectric resonator antennas -- a review and general design relations for
  resonant frequency and bandwidth", Int. J. Microwave Millimeter-Wave CAE 4, 230 (1994).
* D. Kajfez, P. Guillon (eds.), *Dielectric Resonators*, Artech House (1986); the TE01delta formula as quoted
  in D. M. Pozar, *Microwave Engineering*, section on dielectric resonators.
* C. C. Nadell, B. Huang, J. M. Malof, W. J. Padilla, "Deep learning for accelerated all-dielectric metasurface
  design", Opt. Express 27, 27523 (2019) -- the paper's ref. [24], the original D4 geometry.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from . import register
from .base import Task

# -- geometry and material -----------------------------------------------------------------------------------
N_CYLINDERS = 4
N_MODES = 2 * N_CYLINDERS              # TE01delta of cylinders 1..4, then HEM11delta of cylinders 1..4
HEIGHT_RANGE_UM = (30.0, 55.0)         # the paper's box (design.md section 1, D4)
RADIUS_RANGE_UM = (42.0, 52.0)
X_NAMES = ("h1", "h2", "h3", "h4", "r1", "r2", "r3", "r4")
EPS_R = 11.7                           # relative permittivity of silicon at THz frequencies
TAN_DELTA = 0.02                       # dielectric loss tangent (design.md's prototype value)
CELL_PITCH_UM = 125.0                  # centre-to-centre distance of neighbouring cylinders (assumed)
COUPLING = 0.2                         # prefactor C of the near-field coupling kappa = C sqrt(V_i V_j) / pitch^3
R_BG = -1.0                            # background reflection of the ground plane
C_UM_PER_PS = 299.792458               # speed of light in micrometres per picosecond (so c k / 2 pi is in THz)
Q_MIN = 1.0                            # floor on the Q formulas, which leave their fitted range far outside the box

# -- the spectrum ------------------------------------------------------------------------------------------------
N_FREQUENCIES = 300
F_MIN_THZ, F_MAX_THZ = 0.60, 1.30
FREQUENCIES_THZ = torch.linspace(F_MIN_THZ, F_MAX_THZ, N_FREQUENCIES, dtype=torch.float64)
"""The 300 frequencies of ``y``, THz, evenly spaced from 0.60 to 1.30 THz (2.34 GHz apart)."""


# -- the dielectric-resonator design formulas ------------------------------------------------------------------
def te01d_frequency_thz(a: Tensor, H: Tensor, eps_r: float = EPS_R) -> Tensor:
    """Resonant frequency of the TE01delta mode of a cylindrical dielectric resonator.

    ``f[GHz] = 34 / (a[mm] sqrt(eps_r)) (a / H + 3.45)`` (Kajfez & Guillon 1986, as quoted by Pozar), stated
    accurate to about 2 % for ``0.5 < a/H < 2`` and ``30 < eps_r < 50``. With ``a`` and ``H`` in micrometres the
    same expression gives THz (scale invariance). The box's aspect ratios ``a/H`` in [0.76, 1.73] lie inside the
    stated range; ``eps_r = 11.7`` lies below it, so the formula is extrapolated in permittivity (it follows the
    expected ``1/sqrt(eps_r)`` scaling; the Mongia-Bhartia fit for isolated resonators gives frequencies about
    15 % lower at this permittivity). Larger radius or height lowers the frequency.

    Args:
        a: radii, um, any shape.
        H: heights, um, broadcastable with ``a``.
        eps_r: relative permittivity.

    Returns:
        Frequencies in THz, the broadcast shape of ``a`` and ``H``.
    """
    return 34.0 / (a * math.sqrt(eps_r)) * (a / H + 3.45)


def hem11d_frequency_thz(a: Tensor, H: Tensor, eps_r: float = EPS_R) -> Tensor:
    """Resonant frequency of the HEM11delta mode of a cylindrical dielectric resonator on a ground plane.

    ``k0 a = 6.324 / sqrt(eps_r + 2) (0.27 + 0.36 a/(2H) + 0.02 (a/(2H))^2)`` (Mongia & Bhartia 1994), with
    ``H`` the height above the ground plane, fitted for roughly ``0.4 < a/H < 6`` (the box's [0.76, 1.73] is
    inside) and permittivities from about 10 to 100 (11.7 is near the low end). ``f = c k0 / (2 pi)``.

    Args:
        a: radii, um, any shape.
        H: heights, um, broadcastable with ``a``.
        eps_r: relative permittivity.

    Returns:
        Frequencies in THz.
    """
    u = a / (2 * H)
    k0a = 6.324 / math.sqrt(eps_r + 2) * (0.27 + 0.36 * u + 0.02 * u ** 2)
    return C_UM_PER_PS * k0a / (2 * math.pi * a)


def te01d_q(a: Tensor, H: Tensor, eps_r: float = EPS_R) -> Tensor:
    """Radiation quality factor of the TE01delta mode of an isolated cylindrical resonator.

    ``Q = 0.078192 eps_r^1.27 (1 + 17.31 t - 21.57 t^2 + 10.86 t^3 - 1.98 t^4)`` with ``t = H / a``
    (Mongia & Bhartia 1994), fitted for about ``0.5 < a/H < 5``; the box's [0.76, 1.73] is inside. The
    quartic turns negative for ``a/H`` below about 0.4, far outside the box, so ``Q`` is floored at ``Q_MIN``.
    At ``eps_r = 11.7`` it is about 9 to 10 across the box.

    Args:
        a: radii, um.
        H: heights, um.
        eps_r: relative permittivity.

    Returns:
        Dimensionless ``Q``, the broadcast shape of ``a`` and ``H``.
    """
    t = H / a
    q = 0.078192 * eps_r ** 1.27 * (1 + 17.31 * t - 21.57 * t ** 2 + 10.86 * t ** 3 - 1.98 * t ** 4)
    return q.clamp_min(Q_MIN)


def hem11d_q(a: Tensor, H: Tensor, eps_r: float = EPS_R) -> Tensor:
    """Radiation quality factor of the HEM11delta mode of a cylindrical resonator on a ground plane.

    ``Q = 0.01007 eps_r^1.3 (a/H) (1 + 100 exp(-2.05 (a/(2H) - (a/H)^2 / 80)))`` (Mongia & Bhartia 1994),
    fitted over the same ranges as :func:`hem11d_frequency_thz`; about 8 to 9 across the box.

    Args:
        a: radii, um.
        H: heights, um.
        eps_r: relative permittivity.

    Returns:
        Dimensionless ``Q``.
    """
    p = a / H
    q = 0.01007 * eps_r ** 1.3 * p * (1 + 100 * torch.exp(-2.05 * (p / 2 - p ** 2 / 80)))
    return q.clamp_min(Q_MIN)


# -- geometry -> modes ---------------------------------------------------------------------------------------------
# Signed coupling pattern between like modes of the 2 x 2 cell (cylinders 0..3), per mode family.
_X_PAIRS = ((0, 1), (2, 3))
_Y_PAIRS = ((0, 2), (1, 3))
COUPLING_SIGNS = {"te01d": (1.0, 1.0), "hem11d": (-2.0, 1.0)}
"""(x-neighbour, y-neighbour) factors multiplying ``COUPLING`` for each mode family (see the module notes)."""


def _pattern(kx: float, ky: float) -> Tensor:
    P = torch.zeros(N_CYLINDERS, N_CYLINDERS, dtype=torch.float64)
    for (i, j), k in [(p, kx) for p in _X_PAIRS] + [(p, ky) for p in _Y_PAIRS]:
        P[i, j] = P[j, i] = k
    return P


def modes(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The resonances of every cylinder, before coupling.

    Args:
        x: designs ``(n, 8)`` float64, columns ``(h1..h4, r1..r4)`` in micrometres.

    Returns:
        ``(omega, gamma_rad, volume)``: ``omega`` ``(n, 8)`` angular resonance frequencies in rad/ps
        (TE01delta of cylinders 1..4, then HEM11delta of cylinders 1..4); ``gamma_rad`` ``(n, 8)`` each
        mode's radiative decay rate into the cell's port, rad/ps; ``volume`` ``(n, 4)`` cylinder volumes, um^3.
    """
    H, a = x[:, :N_CYLINDERS], x[:, N_CYLINDERS:]
    f = torch.cat([te01d_frequency_thz(a, H), hem11d_frequency_thz(a, H)], dim=1)
    q = torch.cat([te01d_q(a, H), hem11d_q(a, H)], dim=1)
    omega = 2 * math.pi * f
    return omega, omega / (2 * q * N_CYLINDERS), math.pi * a ** 2 * H


def mode_matrix(omega: Tensor, volume: Tensor, coupling: float = COUPLING,
                pitch_um: float = CELL_PITCH_UM) -> Tensor:
    """The Hermitian (here real symmetric) mode matrix ``Omega`` of the coupled cell.

    ``Omega_kk = omega_k``; like modes of nearest neighbours couple with
    ``Omega_ij = s_ij coupling sqrt(V_i V_j) / pitch^3 sqrt(omega_i omega_j)``, where ``s_ij`` is the
    orientation factor of ``COUPLING_SIGNS``; unlike modes do not couple (orthogonal dipoles).

    Args:
        omega: ``(n, 8)`` uncoupled angular frequencies, rad/ps (see :func:`modes`).
        volume: ``(n, 4)`` cylinder volumes, um^3.
        coupling: the prefactor ``C``.
        pitch_um: centre-to-centre distance of neighbours, um.

    Returns:
        ``(n, 8, 8)`` float64, rad/ps.
    """
    s = torch.sqrt(volume.unsqueeze(2) * volume.unsqueeze(1)) / pitch_um ** 3        # (n, 4, 4)
    blocks = []
    for fam, k in zip(COUPLING_SIGNS, (slice(0, N_CYLINDERS), slice(N_CYLINDERS, N_MODES))):
        w = omega[:, k]
        pattern = _pattern(*COUPLING_SIGNS[fam]).to(omega)
        blocks.append(coupling * pattern * s * torch.sqrt(w.unsqueeze(2) * w.unsqueeze(1)) + torch.diag_embed(w))
    zero = torch.zeros_like(blocks[0])
    return torch.cat([torch.cat([blocks[0], zero], 2), torch.cat([zero, blocks[1]], 2)], 1)


# -- coupled-mode theory ---------------------------------------------------------------------------------------------
def _port_resolvent(omega: Tensor, mode_matrix: Tensor, gamma_rad: Tensor, gamma_abs: Tensor | float
                    ) -> tuple[Tensor, Tensor]:
    """``d^T ((omega - i gamma_abs) I - Omega)^-1 d`` as real and imaginary parts, ``(n, F)`` each.

    One symmetric eigendecomposition ``Omega = U diag(w) U^T`` per design, taken without gradient; with
    ``E = U^T Omega U - diag(w)`` (zero in value, carrying the gradient of ``Omega``) and
    ``D = diag(1 / (z - w))``, the resolvent is ``b^T (D + D E D) b + O(E^2)`` with ``b = U^T d``: exact in
    value and in first derivatives, and finite for degenerate modes. Real arithmetic throughout (complex
    division is several times slower on a CPU); the ``E`` term is only formed when a gradient is needed.
    """
    n, M, _ = mode_matrix.shape
    omega = omega.to(mode_matrix)
    g = torch.as_tensor(gamma_abs, dtype=mode_matrix.dtype, device=mode_matrix.device).expand(n, omega.shape[0])
    with torch.no_grad():
        w, U = torch.linalg.eigh(mode_matrix)                                     # (n, M), (n, M, M)
    Ut = U.transpose(1, 2)
    b = (Ut @ torch.sqrt(2 * gamma_rad).unsqueeze(2)).squeeze(2)                  # U^T d, (n, M)
    delta = omega.view(1, -1, 1) - w.unsqueeze(1)                                 # (n, F, M)
    inv = 1.0 / (delta * delta + (g * g).unsqueeze(2))                            # 1/|z - w|^2
    Dr = delta * inv                                                              # 1/(z - w) = Dr + i g inv
    b2 = (b * b).unsqueeze(2)                                                     # (n, M, 1)
    re, im = (Dr @ b2).squeeze(2), g * (inv @ b2).squeeze(2)
    if torch.is_grad_enabled() and (mode_matrix.requires_grad or gamma_rad.requires_grad or g.requires_grad):
        E = Ut @ mode_matrix @ U - torch.diag_embed(w)
        P, Q = b.unsqueeze(1) * Dr, b.unsqueeze(1) * (g.unsqueeze(2) * inv)      # b D = P + i Q, (n, F, M)
        PE, QE = P @ E, Q @ E
        re = re + (PE * P).sum(2) - (QE * Q).sum(2)
        im = im + 2 * (PE * Q).sum(2)
    return re, im


def tcmt_reflection(omega: Tensor, mode_matrix: Tensor, gamma_rad: Tensor, gamma_abs: Tensor | float,
                    r_bg: float = R_BG) -> Tensor:
    """Reflection coefficient of modes coupled to one port (Fan, Suh & Joannopoulos 2003).

    ``r(omega) = r_bg (1 - d^T (i (omega I - Omega) + d d^T / 2 + gamma_abs I)^-1 d)``, ``d_k = sqrt(2 gamma_rad,k)``,
    evaluated as ``r_bg (1 - s/2) / (1 + s/2)`` with ``s = d^T (i (omega I - Omega) + gamma_abs I)^-1 d`` from one
    symmetric eigendecomposition per design (Sherman-Morrison, see the module notes). A single mode gives the
    Lorentzian dip ``|r|^2 = 1 - 4 gamma_rad gamma_abs / ((omega - omega_0)^2 + (gamma_rad + gamma_abs)^2)``.

    Differentiable with respect to ``mode_matrix``, ``gamma_rad`` and ``gamma_abs`` (first derivatives, finite
    also for degenerate modes).

    Args:
        omega: ``(F,)`` drive angular frequencies (any unit, the same as the rates).
        mode_matrix: ``(n, M, M)`` real symmetric ``Omega``.
        gamma_rad: ``(n, M)`` non-negative radiative rates into the port.
        gamma_abs: absorption rate shared by all modes: a float, ``(F,)`` or ``(n, F)``, positive.
        r_bg: background reflection (``-1`` for a ground plane).

    Returns:
        ``(n, F)`` complex128 reflection coefficients.
    """
    re, im = _port_resolvent(omega, mode_matrix, gamma_rad, gamma_abs)
    s = torch.complex(im, -re)                                                    # s = -i (re + i im)
    return r_bg * (1 - s / 2) / (1 + s / 2)


def tcmt_reflectance(omega: Tensor, mode_matrix: Tensor, gamma_rad: Tensor, gamma_abs: Tensor | float) -> Tensor:
    """``|r(omega)|^2`` of :func:`tcmt_reflection` (any ``|r_bg| = 1``), in real arithmetic: ``(n, F)`` float64.

    With ``s = B - i A`` (``A + i B`` the port resolvent),
    ``|r|^2 = ((1 - B/2)^2 + (A/2)^2) / ((1 + B/2)^2 + (A/2)^2)``.
    """
    re, im = _port_resolvent(omega, mode_matrix, gamma_rad, gamma_abs)
    a2 = (re / 2) ** 2
    return ((1 - im / 2) ** 2 + a2) / ((1 + im / 2) ** 2 + a2)


def tcmt_reflection_direct(omega: Tensor, mode_matrix: Tensor, gamma_rad: Tensor, gamma_abs: Tensor,
                           r_bg: float = R_BG) -> Tensor:
    """The same reflection by brute force: one complex linear solve per design and frequency.

    A reference for :func:`tcmt_reflection` that also allows a different absorption rate per mode.

    Args:
        omega: ``(F,)`` drive angular frequencies.
        mode_matrix: ``(n, M, M)`` ``Omega``.
        gamma_rad: ``(n, M)`` radiative rates.
        gamma_abs: ``(n, M)`` absorption rates per mode, or ``(n, F)`` / ``(F,)`` / float shared by the modes.
        r_bg: background reflection.

    Returns:
        ``(n, F)`` complex128.
    """
    n, M, _ = mode_matrix.shape
    F = omega.shape[0]
    cd = torch.complex128
    d = torch.sqrt(2 * gamma_rad).to(cd)                                            # (n, M)
    ga = torch.as_tensor(gamma_abs, dtype=torch.float64)
    if ga.ndim == 2 and ga.shape == (n, M) and M != F:
        G_abs = torch.diag_embed(ga).unsqueeze(1).to(cd)                             # (n, 1, M, M)
    else:
        ga = ga.expand(n, F)
        G_abs = ga[:, :, None, None].to(cd) * torch.eye(M, dtype=cd)                 # (n, F, M, M)
    I = torch.eye(M, dtype=cd)
    A = (1j * (omega.to(cd)[None, :, None, None] * I - mode_matrix.to(cd).unsqueeze(1))
         + (d.unsqueeze(2) * d.unsqueeze(1) / 2).unsqueeze(1) + G_abs)               # (n, F, M, M)
    sol = torch.linalg.solve(A, d[:, None, :, None].expand(n, F, M, 1)).squeeze(3)
    return r_bg * (1 - (sol * d.unsqueeze(1)).sum(2))


def meta_material_forward(x: Tensor, frequencies_thz: Tensor | None = None, chunk: int = 2048) -> Tensor:
    """The D4 ground truth: reflectance spectra of designs.

    Args:
        x: ``(n, 8)`` float64, columns ``(h1..h4, r1..r4)`` in micrometres.
        frequencies_thz: ``(F,)`` frequencies, THz (default ``FREQUENCIES_THZ``, F = 300).
        chunk: designs evaluated at a time (bounds memory at about ``chunk * F * 8 * 16`` bytes per temporary).

    Returns:
        ``(n, F)`` float64 reflectance ``|r|^2`` in [0, 1]; differentiable with respect to ``x``. A design that
        cannot be simulated (a non-positive or non-finite size) gets a row of NaN instead of an exception, so one
        wild proposal never stops an evaluation: the metrics count it as a failure.
    """
    f = FREQUENCIES_THZ if frequencies_thz is None else torch.as_tensor(frequencies_thz, dtype=torch.float64)
    f = f.to(x.device)
    w = 2 * math.pi * f
    out = []
    centre = x.new_tensor([sum(HEIGHT_RANGE_UM) / 2] * N_CYLINDERS + [sum(RADIUS_RANGE_UM) / 2] * N_CYLINDERS)
    for s in range(0, x.shape[0], chunk):
        xs = x[s:s + chunk]
        # A design with a non-positive or non-finite size has no spectrum: its row is NaN (a failed
        # re-simulation, counted as such by the metrics), computed on a stand-in so the batch still runs.
        bad = ~(torch.isfinite(xs) & (xs > 0)).all(1)
        omega, gamma_rad, volume = modes(torch.where(bad[:, None], centre, xs))
        matrix = mode_matrix(omega, volume)
        bad = bad | ~(torch.isfinite(matrix).flatten(1).all(1) & torch.isfinite(gamma_rad).all(1))
        if bad.any():
            omega, gamma_rad, volume = modes(torch.where(bad[:, None], centre, xs))
            matrix = mode_matrix(omega, volume)
        try:
            spectra = tcmt_reflectance(w, matrix, gamma_rad, w * TAN_DELTA / 2)
        except torch.linalg.LinAlgError:  # an eigendecomposition that does not converge: one design at a time
            rows = []
            for k in range(len(xs)):
                try:
                    rows.append(tcmt_reflectance(w, matrix[k:k + 1], gamma_rad[k:k + 1], w * TAN_DELTA / 2))
                except torch.linalg.LinAlgError:
                    rows.append(torch.full((1, len(w)), float("nan"), dtype=matrix.dtype, device=x.device))
            spectra = torch.cat(rows, 0)
        out.append(torch.where(bad[:, None], torch.full_like(spectra, float("nan")), spectra))
    return torch.cat(out, 0)


def meta_material_prior(n: int, g: torch.Generator) -> Tensor:
    """Uniform in the box: ``h ~ U(30, 55)`` um, ``r ~ U(42, 52)`` um; ``(n, 8)`` float64."""
    lo = torch.tensor([HEIGHT_RANGE_UM[0]] * 4 + [RADIUS_RANGE_UM[0]] * 4, dtype=torch.float64)
    hi = torch.tensor([HEIGHT_RANGE_UM[1]] * 4 + [RADIUS_RANGE_UM[1]] * 4, dtype=torch.float64)
    return lo + (hi - lo) * torch.rand(n, 8, generator=g, dtype=torch.float64)


META_MATERIAL = register(Task(
    name="meta_material", x_dim=8, y_dim=N_FREQUENCIES, forward=meta_material_forward, prior=meta_material_prior,
    lower=(HEIGHT_RANGE_UM[0],) * 4 + (RADIUS_RANGE_UM[0],) * 4,
    upper=(HEIGHT_RANGE_UM[1],) * 4 + (RADIUS_RANGE_UM[1],) * 4,
    x_names=X_NAMES, y_label="reflectance |r|^2",
    description="D4 meta-material: 4 cylinder heights and radii (um) -> 300-point reflectance, 0.6-1.3 THz (TCMT)",
), overwrite=True)


# -- a gallery of spectra --------------------------------------------------------------------------------------------
def gallery(n_examples: int = 5, seed: int = 0, radius: str = "r1", height: str = "h1", steps: int = 6,
            base: Sequence[float] | None = None, figsize: tuple[float, float] = (12.0, 3.6)):
    """Plot D4 spectra: a few prior draws, and how the spectrum moves as one radius and one height change.

    Three panels: (a) ``n_examples`` designs drawn from the prior with ``seed``; (b) ``radius`` swept over its
    range (42..52 um) with the other parameters at ``base``; (c) ``height`` swept over 30..55 um likewise. At
    the default base (the box centre, four identical cylinders) only the bright collective modes show; changing
    one cylinder makes the dark modes radiate and adds narrow dips.

    Args:
        n_examples: number of random designs in panel (a).
        seed: seed of those draws.
        radius, height: the parameters swept in panels (b) and (c), e.g. ``"r1"`` and ``"h1"``.
        steps: number of values in each sweep.
        base: the design ``(8,)`` in um the sweeps start from (default: the box centre).
        figsize: figure size in inches.

    Returns:
        A ``matplotlib.figure.Figure`` (built without pyplot, so it works under any backend, Agg included).
    """
    from matplotlib.figure import Figure

    if radius not in X_NAMES[4:] or height not in X_NAMES[:4]:
        raise ValueError(f"radius must be one of {X_NAMES[4:]} and height one of {X_NAMES[:4]}; "
                         f"got {radius!r}, {height!r}")
    lo, hi = META_MATERIAL.box()
    base_x = (lo + hi) / 2 if base is None else torch.as_tensor(base, dtype=torch.float64)
    f = FREQUENCIES_THZ.numpy()
    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(1, 3, sharey=True)
    x = META_MATERIAL.sample_prior(n_examples, seed=seed).double()
    for xi, yi in zip(x, META_MATERIAL.simulate(x)):
        label = "h=" + ",".join(f"{v:.0f}" for v in xi[:4]) + " r=" + ",".join(f"{v:.0f}" for v in xi[4:])
        axes[0].plot(f, yi.numpy(), lw=1, label=label)
    axes[0].set_title("(a) random designs (um)")
    axes[0].legend(fontsize=6, loc="lower right")
    for ax, name, tag in ((axes[1], radius, "(b)"), (axes[2], height, "(c)")):
        j = X_NAMES.index(name)
        xs = base_x.repeat(steps, 1)
        xs[:, j] = torch.linspace(float(lo[j]), float(hi[j]), steps, dtype=torch.float64)
        colours = [(0.1 + 0.8 * t, 0.2, 0.9 - 0.8 * t) for t in np.linspace(0, 1, steps)]
        for xi, yi, c in zip(xs, META_MATERIAL.simulate(xs), colours):
            ax.plot(f, yi.numpy(), lw=1, color=c, label=f"{name} = {xi[j]:.1f} um")
        ax.set_title(f"{tag} sweeping {name}, others at " + ("the box centre" if base is None else "base"))
        ax.legend(fontsize=6, loc="lower right")
    for ax in axes:
        ax.set_xlabel("frequency (THz)")
        ax.set_ylim(-0.02, 1.02)
    axes[0].set_ylabel("reflectance |r|^2")
    return fig
