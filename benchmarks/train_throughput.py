#!/usr/bin/env python
"""Training throughput of a model on this CPU, against this CPU's own fp32 matmul rate.

Measures, in one run:
  * training samples/s through the trainer's own `train_one_epoch` (forward, backward, AdamW step on
    in-memory uint8 images normalised per batch), for each memory format x thread count;
  * FLOPs per training sample (torch.utils.flop_counter over one step, forward + backward, / batch);
  * achieved GFLOP/s, and the fp32 matmul GFLOP/s (torch.mm, N x N) at the same thread count, measured
    in the same round, so that load from other processes hits both;
  * a torch.profiler breakdown of the step: which operator dominates and its share of the time, and
    the GFLOP/s each FLOP-carrying operator reaches.
Variants run round-robin (one epoch each per round) and every figure is the median over rounds.

    python benchmarks/train_throughput.py                       # gazecnn, batch 64 (the defaults)
    python benchmarks/train_throughput.py --rounds 7 --samples 1024
    python benchmarks/train_throughput.py --model mlp --threads 1
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from gazeneg import grid
from gazeneg.config import TrainConfig
from gazeneg.data.dataset import FACE_FEATURES, IMAGE_H, IMAGE_W
from gazeneg.model.networks import create_model
from gazeneg.training.loop import MEMORY_FORMAT, Recipe, TrainState, make_optimizer, train_one_epoch
from gazeneg.wronglabels.objective import WrongLabelObjective

FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
# Profiler names of the operators that carry FLOPs, and the flop-counter names they correspond to.
FLOP_OPS = {"aten::convolution": ("convolution",), "aten::convolution_backward": ("convolution_backward",),
            "aten::addmm": ("addmm",), "aten::mm": ("mm",)}
# Operator families for the time breakdown (self CPU time of the profiler's aten ops).
FAMILIES = {
    "convolution": ("aten::mkldnn_convolution", "aten::convolution_backward", "aten::_convolution",
                    "aten::convolution", "aten::conv2d"),
    "batch_norm": ("aten::native_batch_norm", "aten::native_batch_norm_backward", "aten::batch_norm",
                   "aten::_batch_norm_impl_index", "aten::_native_batch_norm_legit"),
    "relu": ("aten::relu_", "aten::clamp_min_", "aten::threshold_backward", "aten::relu", "aten::clamp_min"),
    "linear": ("aten::addmm", "aten::mm", "aten::linear", "aten::t"),
}


def machine_line() -> str:
    try:
        model = next(ln.split(":", 1)[1].strip() for ln in subprocess.run(
            ["lscpu"], capture_output=True, text=True).stdout.splitlines() if ln.startswith("Model name"))
    except (OSError, StopIteration):
        model = platform.processor() or "unknown CPU"
    return f"{model}, {os.cpu_count()} cores (nproc), torch {torch.__version__}, python {platform.python_version()}"


def load() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "n/a"


def make_data(n: int, seed: int = 0):
    """uint8 (n, H, W, 3) images, (n, FACE_FEATURES) face features, (n, 2) targets on the grid: the trainer's layout."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, IMAGE_H, IMAGE_W, 3), dtype=torch.uint8, generator=g)
    face = torch.rand(n, FACE_FEATURES, generator=g) * 0.2 - 0.1
    y = torch.rand(n, 2, generator=g) * torch.tensor([grid.ROW_MAX, grid.COL_MAX], dtype=torch.float32)
    return x, face, y


def augmentation_cost(data, batch_size: int, rounds: int) -> dict:
    """Median microseconds per sample of the two augmentation backends on this CPU: the albumentations
    pass over an epoch (what CPU training runs once per epoch) and DeviceAugment per batch (what CUDA
    training runs on the GPU; here its torch code on the CPU)."""
    from gazeneg.data.augment import DeviceAugment, augment_epoch

    x, face, y = data
    xn, fn, yn = x.numpy(), face.numpy(), y.numpy()
    times = defaultdict(list)
    for r in range(rounds):
        t = time.perf_counter()
        augment_epoch(xn, yn, fn, seed=r)
        times["albumentations (CPU, per epoch)"].append(time.perf_counter() - t)
        t = time.perf_counter()
        augment_epoch(xn, yn, fn, seed=r, realism=True)  # the synthetic data's default: the webcam look first
        times["albumentations + webcam look"].append(time.perf_counter() - t)
        aug = DeviceAugment(r, "cpu")
        t = time.perf_counter()
        for s in range(0, len(x), batch_size):
            aug(x[s:s + batch_size], y[s:s + batch_size], face[s:s + batch_size])
        times["DeviceAugment (torch, per batch)"].append(time.perf_counter() - t)
    return {k: statistics.median(v) / len(x) * 1e6 for k, v in times.items()}


def build(cfg: TrainConfig, fmt):
    torch.manual_seed(0)
    model = create_model(cfg.model, head=cfg.head, **cfg.model_kwargs).to(memory_format=fmt)
    return model, make_optimizer(cfg, model.parameters()), make_optimizer(cfg, model.parameters(), negative=True)


def epoch(cfg, model, opt, neg_opt, data, ep: int) -> float:
    """Seconds for one trainer epoch over data."""
    t = time.perf_counter()
    train_one_epoch(Recipe.from_config(cfg), model, opt, neg_opt, data, TrainState(), WrongLabelObjective(), torch.device("cpu"), lr=cfg.lr, lam=0.0,
                    epoch=ep)
    return time.perf_counter() - t


def matmul_gflops(n: int, reps: int) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b)
        ts.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(ts) / 1e9


def flops_per_step(cfg, fmt, data) -> tuple[int, dict]:
    """(total FLOPs, {op name: FLOPs}) for one training step of cfg.batch_size samples."""
    model, opt, neg_opt = build(cfg, fmt)
    one = tuple(t[:cfg.batch_size] for t in data)
    with FlopCounterMode(display=False) as fc:
        train_one_epoch(Recipe.from_config(cfg), model, opt, neg_opt, one, TrainState(), WrongLabelObjective(), torch.device("cpu"), lr=cfg.lr,
                        lam=0.0, epoch=0)
    per_op = {str(k).removeprefix("aten.").split(".")[0]: int(v) for k, v in fc.get_flop_counts()["Global"].items()}
    return fc.get_total_flops(), per_op


def profile_epoch(cfg, fmt, data) -> tuple[dict, dict, float]:
    """Self CPU seconds per operator and total CPU seconds per FLOP-carrying operator, over one epoch."""
    model, opt, neg_opt = build(cfg, fmt)
    epoch(cfg, model, opt, neg_opt, data, 0)  # warm-up outside the trace
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        epoch(cfg, model, opt, neg_opt, data, 1)
    self_s, total_s = {}, {}
    for ev in prof.key_averages():
        self_s[ev.key] = ev.self_cpu_time_total / 1e6
        total_s[ev.key] = ev.cpu_time_total / 1e6
    return self_s, total_s, sum(self_s.values())


def print_profile(cfg, fmt_name, threads, data, per_op, per_sample, mm_rate, samples) -> None:
    self_s, total_s, tot = profile_epoch(cfg, FORMATS[fmt_name], data)
    steps = -(-samples // cfg.batch_size)
    print(f"\nprofile of one epoch ({fmt_name}, {threads} thread(s), {steps} steps, {tot:.2f} s of operator time):")
    top = sorted(self_s.items(), key=lambda kv: -kv[1])[:8]
    for name, sec in top:
        print(f"  {name:<40} {sec / tot:>6.1%}  ({sec / steps * 1e3:.1f} ms per step)")
    fam = {k: sum(self_s.get(o, 0.0) for o in ops) for k, ops in FAMILIES.items()}
    fam["optimizer + other"] = tot - sum(fam.values())
    print("  by family: " + ", ".join(f"{k} {v / tot:.0%}" for k, v in sorted(fam.items(), key=lambda kv: -kv[1])))
    print("  FLOP-carrying operators (their wall time includes their own overheads):")
    for prof_name, fc_names in FLOP_OPS.items():
        fl = sum(per_op.get(n, 0) for n in fc_names) / cfg.batch_size * samples
        sec = total_s.get(prof_name, 0.0)
        if fl and sec:
            print(f"    {prof_name:<28} {fl / sec / 1e9:>7.1f} GFLOP/s = {fl / sec / 1e9 / mm_rate:>4.0%} of matmul, "
                  f"{sec / tot:>4.0%} of the time, {fl / (per_sample * samples):>4.0%} of the FLOPs")
    top_name, top_sec = top[0]
    print(f"  dominant operator: {top_name}, {top_sec / tot:.0%} of the step; batch norm + ReLU (memory-bound, "
          f"no FLOPs counted) take {(fam['batch_norm'] + fam['relu']) / tot:.0%}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=TrainConfig.model)
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    p.add_argument("--samples", type=int, default=512, help="samples per timed epoch")
    p.add_argument("--rounds", type=int, default=5, help="timed epochs per variant (median reported)")
    p.add_argument("--threads", type=int, nargs="+", default=None,
                   help="torch thread counts to compare (default: torch's default, and 1 if that differs)")
    p.add_argument("--formats", nargs="+", default=list(FORMATS), choices=list(FORMATS))
    p.add_argument("--mm-size", type=int, default=2048, help="N for the N x N fp32 matmul reference")
    p.add_argument("--no-profile", action="store_true")
    p.add_argument("--no-augment", action="store_true", help="skip the augmentation-cost figures")
    args = p.parse_args(argv)

    default_threads = torch.get_num_threads()
    threads = args.threads or sorted({default_threads, 1}, reverse=True)
    cfg = TrainConfig(model=args.model, batch_size=args.batch_size, augment=False, flip=False, progress=False,
                      device="cpu")
    data = make_data(args.samples)
    trainer_fmt = next(k for k, v in FORMATS.items() if v == MEMORY_FORMAT)
    print(f"machine: {machine_line()}")
    print(f"load average at start: {load()} (other processes on these cores slow every figure below)")
    print(f"model {cfg.model}, batch {cfg.batch_size}, optimizer {cfg.optimizer}, {args.samples} samples per "
          f"timed epoch, {args.rounds} rounds, median reported; the trainer uses {trainer_fmt} weights")

    flops, per_op = flops_per_step(cfg, MEMORY_FORMAT, data)
    per_sample = flops / cfg.batch_size
    print(f"FLOPs per training sample (forward + backward): {per_sample / 1e6:.1f} MFLOP "
          f"({', '.join(f'{k} {v / cfg.batch_size / 1e6:.1f}' for k, v in sorted(per_op.items()))})")

    variants = [(f, t) for t in threads for f in args.formats]
    built = {}
    for f, t in variants:
        torch.set_num_threads(t)
        built[(f, t)] = build(cfg, FORMATS[f])
        epoch(cfg, *built[(f, t)], data, 0)  # warm-up: oneDNN primitive creation, allocator
    sps, mm = defaultdict(list), defaultdict(list)
    for r in range(args.rounds):
        for t in threads:
            torch.set_num_threads(t)
            mm[t].append(matmul_gflops(args.mm_size, 3))
            for f in args.formats:
                sps[(f, t)].append(args.samples / epoch(cfg, *built[(f, t)], data, r + 1))
    torch.set_num_threads(default_threads)

    print(f"\n{'weights':<14} {'threads':>7} {'samples/s':>10} {'GFLOP/s':>8} {'matmul GFLOP/s':>15} "
          f"{'of matmul':>9}   (medians; samples/s min-max)")
    results = {}
    for f, t in variants:
        s = statistics.median(sps[(f, t)])
        m = statistics.median(mm[t])
        results[(f, t)] = (s, s * per_sample / 1e9, m)
        print(f"{f:<14} {t:>7} {s:>10.0f} {s * per_sample / 1e9:>8.1f} {m:>15.1f} {s * per_sample / 1e9 / m:>9.0%}"
              f"   ({min(sps[(f, t)]):.0f}-{max(sps[(f, t)]):.0f})")
    key = (trainer_fmt, default_threads) if (trainer_fmt, default_threads) in results else variants[0]
    s, g, m = results[key]
    best = max(results, key=lambda k: results[k][0])
    print(f"\ntrainer setting ({key[0]}, {key[1]} threads): {s:.0f} samples/s, {g:.1f} GFLOP/s = {g / m:.0%} of "
          f"this run's {args.mm_size}x{args.mm_size} fp32 matmul ({m:.1f} GFLOP/s)")
    print(f"fastest variant: {best[0]}, {best[1]} threads, {results[best][0]:.0f} samples/s "
          f"({results[best][0] / s:.2f}x the trainer setting)")

    if not args.no_profile:
        for t in threads:
            torch.set_num_threads(t)
            print_profile(cfg, key[0], t, data, per_op, per_sample, statistics.median(mm[t]), args.samples)
        torch.set_num_threads(default_threads)
    if not args.no_augment:
        # The timed epochs above train without augmentation (it is not part of the model's FLOPs); what it
        # adds per sample, beside the step it feeds:
        step_us = 1e6 / s
        print(f"\naugmentation cost on this CPU ({default_threads} threads; medians over {args.rounds} rounds of "
              f"{args.samples} samples), beside the {step_us:.0f} us/sample training step:")
        for name, us in augmentation_cost(data, cfg.batch_size, args.rounds).items():
            print(f"  {name:<34} {us:7.0f} us/sample = {us / (us + step_us):.0%} of step + augmentation")
    target = 0.30
    verdict = "met" if g / m >= target else "missed"
    print(f"\ntarget >= {target:.0%} of the same-run matmul rate at the trainer setting: {verdict} ({g / m:.0%})")
    for (f, t), (s_, g_, m_) in results.items():
        if f == key[0] and t != key[1]:
            print(f"  at {t} thread(s): {g_ / m_:.0%} of that thread count's matmul rate ({s_ / s:.2f}x the samples/s)")
    if best[1] < key[1] and results[best][0] > 1.2 * s:
        print(f"  fewer threads are faster here: with {key[1]} threads every OpenMP parallel region (one per conv, "
              f"batch norm, ReLU, optimizer op) waits for its slowest thread, and a thread that shares its core with "
              f"another process (load average {load()} on {os.cpu_count()} cores) stalls them all. Train with "
              f"--threads {best[1]} on a busy machine; use the other cores with more processes (the sweep's pool, "
              f"torchrun) rather than more threads.")
    print(f"\nload average at end: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
