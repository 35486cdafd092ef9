"""Benchmark: neural-adjoint inference on the robotic-arm surrogate (pool 2048, 300 steps, 20 targets).

Prints, all measured in one run on this machine:

* the fp32 matmul rate (the yardstick);
* the authors' loop (one target at a time, weights left trainable so every step also computes weight
  gradients, torch.optim.Adam on the inputs): seconds per target, on a few targets;
* ours (all targets batched, frozen weights, gradients to the inputs only, per-target Adam): seconds per
  target, candidate-steps per second, the useful FLOP rate (forward plus backward to the input: 4 FLOP per
  weight per candidate-step) and its share of the matmul rate;
* ours with staged pruning (candidates that can no longer reach the top T are dropped; each ``--prune``
  schedule given), and r_T with and without it through the true simulator, to show what pruning does to r_T.

The search's per-step work is a hand-written forward and input-gradient pass through the surrogate with its
BatchNorm folded into the Linear layers (``inverse_lib.models.neural_adjoint.loss_and_input_grad``).

Run: ``OMP_NUM_THREADS=1 python benchmarks/na_inference.py [--targets 20] [--reference-targets 2] [--epochs 100]
[--prune 0.2:0.5,0.4:0.5 --prune 0.1:0.25,0.3:0.5]``
"""
from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from inverse_lib import data, experiment, metrics, models


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n ** 3 * repeats / (time.perf_counter() - t0) / 1e9


def authors_loop(model, y: torch.Tensor, pool: int, steps: int, seed: int = 0) -> float:
    """Seconds per target for the original style: one target at a time, weight gradients computed too."""
    net = model.net
    for p in net.parameters():
        p.requires_grad_(True)
    t0 = time.perf_counter()
    for b in range(len(y)):
        x = model.starting_points(pool, seed + b).requires_grad_(True)
        opt = torch.optim.Adam([x], lr=model.config.infer_lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=10)
        for _ in range(steps):
            opt.zero_grad()
            loss = ((net(x) - y[b]) ** 2).mean() + model.config.boundary_weight * model.boundary_loss(x).mean()
            loss.backward()
            opt.step()
            sched.step(loss.item())
    return (time.perf_counter() - t0) / len(y)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", type=int, default=20)
    ap.add_argument("--reference-targets", type=int, default=2, help="targets for the (slow) authors' loop")
    ap.add_argument("--pool", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=100, help="surrogate training epochs (cached after the first run)")
    ap.add_argument("--prune", action="append", default=None,
                    help="a pruning schedule 'fraction_of_steps:fraction_kept,...' (repeat for several); "
                         "default: 0.2:0.5,0.4:0.5 and 0.1:0.25,0.3:0.5")
    args = ap.parse_args()
    schedules = [tuple(tuple(float(v) for v in stage.split(":")) for stage in text.split(","))
                 for text in (args.prune or ["0.2:0.5,0.4:0.5", "0.1:0.25,0.3:0.5"])]

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {experiment.hardware()}")
    d = data.load_or_generate("robotic_arm", n=10_000, seed=0, n_test=args.targets)
    na, _ = experiment.trained_model("na", "robotic_arm", d, "quick", seed=0, epochs=args.epochs,
                                     pool=args.pool, steps=args.steps, prune=(), batch_size=256)
    y = na.norm_y(d.y_test.to(na.device))
    weights = sum(m.in_features * m.out_features for m in na.net.modules() if isinstance(m, nn.Linear))
    flop_per_cs = 4 * weights  # forward (2 per weight) + backward to the input (2 per weight)

    rate = matmul_gflops()
    print(f"fp32 matmul (2048^3): {rate:.1f} GFLOP/s")

    ref = authors_loop(na, y[: args.reference_targets], args.pool, args.steps)
    ref_rate = 6 * weights * args.pool * args.steps / ref / 1e9  # forward + input grad + weight grad
    print(f"authors' loop: {ref:.2f} s/target ({ref_rate:.1f} GFLOP/s of all work, {ref_rate / rate:.0%} of matmul; "
          f"{args.reference_targets} targets)")

    results = {}
    variants = [("ours, frozen + batched", ())]
    variants += [(f"ours, + pruning {','.join(f'{a:g}:{b:g}' for a, b in p)}", p) for p in schedules]
    for label, prune in variants:
        m = models.create("na", "robotic_arm", device=str(na.device), pool=args.pool, steps=args.steps, prune=prune)
        m.net.load_state_dict(na.net.state_dict())
        m.net.eval()  # search() is called directly here: BatchNorm must use its running statistics
        m.stats = na.stats
        x0 = m.starting_points(len(y) * args.pool, 123).reshape(len(y), args.pool, -1)
        n = m.chunk_targets()
        t0 = time.perf_counter()
        outs, work = [], 0
        for s in range(0, len(y), n):
            xs, _, w = m.search(y[s:s + n], 50, x0[s:s + n])
            outs.append(xs)
            work += w
        dt = time.perf_counter() - t0
        x = m.denorm_x(torch.cat(outs, 1)).cpu()
        rT = metrics.r_T(metrics.resimulation_errors("robotic_arm", x, d.y_test), [1, 10, 50])
        gf = flop_per_cs * work / dt / 1e9
        results[label] = rT
        print(f"{label}: {dt / len(y):.2f} s/target ({ref / (dt / len(y)):.1f}x faster than the authors' loop), "
              f"{work / dt:.3g} candidate-steps/s, useful {gf:.1f} GFLOP/s = {gf / rate:.0%} of matmul "
              f"(work {work / (len(y) * args.pool * args.steps):.0%} of the full search); "
              f"r_1 {rT.r[0]:.2e}, r_10 {rT.r[1]:.2e}, r_50 {rT.r[2]:.2e}")
    full = results.pop(variants[0][0])
    for label, rT in results.items():
        print(f"{label}: r_T changes by a factor of "
              + ", ".join(f"{rb / ra:.2f} at T={t}" for t, ra, rb in zip(full.T, full.r, rT.r)))


if __name__ == "__main__":
    main()
