"""Training time of JMVAE's successors relative to JMVAE-kl, on this machine's CPU threads.

Each model trains with train.fit's step (noise, objective, backward, clipping, Adam) on random
batches of 100 MNIST images; the models take turns, `--steps` steps each per round for
`--rounds` rounds, so that all of them see the same machine drift (another job on the same
cores makes absolute times meaningless; ratios survive). The report is each model's median
seconds per step over rounds divided by JMVAE-kl's, the ratio of seconds per epoch, in wall
time and in this process's CPU time. MMVAE is timed at every K of `--mmvae-k` (its training
draws per expert).

Usage: python benchmarks/successors_speed.py [--steps 10] [--rounds 10] [--mmvae-k 2,3]
       [--out benchmarks/results]  (writes <device>-successors-speed.json there)
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from pathlib import Path

import torch

from jmvae_core import models, store
from jmvae_core.config import SUCCESSORS, make_config
from jmvae_core.data.mnist import load_mnist
from jmvae_core.models import build_model
from jmvae_core.nn.networks import draw_noise
from jmvae_core.training.fit import clip_gradients, make_optimizers

REFERENCE = "jmvae_kl"


def _candidates(mmvae_ks: list[int]) -> dict[str, tuple[str, object, int]]:
    """name -> (variant, objective, noise draws per example)."""
    out = {REFERENCE: (REFERENCE, models.spec(REFERENCE).objective, 1)}
    for variant in SUCCESSORS:
        spec = models.spec(variant)
        if variant == "mmvae":
            for k in mmvae_ks:
                objective = functools.partial(spec.objective, k=k)
                out[f"mmvae (K = {k})"] = (variant, objective, 2 * k)
        else:
            out[variant] = (variant, spec.objective, spec.noise_samples)
    return out


class Trainer:
    """One model and its optimiser, stepping as train._step does, on random batches."""

    def __init__(self, variant, objective, draws, data, seed=1):
        self.cfg = make_config("quick", variant=variant, seed=seed)
        torch.manual_seed(seed)
        self.model = build_model(self.cfg.model)
        self.optimizer = make_optimizers(self.model, self.cfg.train, torch.device("cpu"))["all"]
        self.generator = torch.Generator().manual_seed(seed)
        self.objective, self.draws, self.data = objective, draws, data

    def steps(self, n: int) -> tuple[float, float]:
        """n steps: (wall seconds, CPU seconds of this process) per step."""
        data, cfg = self.data, self.cfg
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            idx = torch.randint(0, data.x_train.shape[0], (cfg.train.batch_size,),
                                generator=self.generator)  # fmt: skip
            x = torch.bernoulli(data.x_train[idx], generator=self.generator)
            eps = draw_noise(self.generator, x, cfg.model.latent_dim * self.draws)
            terms = self.objective(self.model, x, data.w_train[idx], eps, 1.0, cfg.model.alpha)
            self.optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            clip_gradients(list(self.model.parameters()), cfg.train)
            self.optimizer.step()
        return (time.perf_counter() - wall) / n, (time.process_time() - cpu) / n


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10, help="steps per model and round")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--mmvae-k", default="2,3", help="MMVAE draws per expert to time")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the JSON report")
    args = parser.parse_args()
    torch.set_flush_denormal(True)  # as train.fit
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    data = load_mnist(n_train=10000, n_test=100)
    candidates = _candidates([int(k) for k in args.mmvae_k.split(",")])
    trainers = {name: Trainer(*spec, data) for name, spec in candidates.items()}
    for trainer in trainers.values():
        trainer.steps(3)  # warm-up: first allocations, Adam's state
    wall: dict[str, list[float]] = {name: [] for name in trainers}
    cpu: dict[str, list[float]] = {name: [] for name in trainers}
    for _ in range(args.rounds):
        for name, trainer in trainers.items():
            w, c = trainer.steps(args.steps)
            wall[name].append(w)
            cpu[name].append(c)
    ratio = lambda t: {n: statistics.median(v) / statistics.median(t[REFERENCE])  # noqa: E731
                       for n, v in t.items()}  # fmt: skip
    report = {
        "device": store.device_name(torch.device("cpu")),
        "torch": torch.__version__,
        "git_commit": store.git_commit(),
        "command": "python benchmarks/successors_speed.py " + " ".join(sys.argv[1:]),
        "threads": torch.get_num_threads(),
        "steps_per_round": args.steps,
        "rounds": args.rounds,
        "wall_s_per_step": wall,
        "cpu_s_per_step": cpu,
        "ratio_wall": ratio(wall),
        "ratio_cpu": ratio(cpu),
    }
    print(f"{torch.get_num_threads()} threads, {args.rounds} rounds of {args.steps} steps")
    print(f"{'model':16s} {'wall':>6s} {'CPU':>6s}   (ratios of medians to JMVAE-kl)")
    for name in trainers:
        print(f"{name:16s} {report['ratio_wall'][name]:6.2f} {report['ratio_cpu'][name]:6.2f}")
    if args.out is not None:
        print(store.write_benchmark(report, args.out, "successors-speed"))


if __name__ == "__main__":
    main()
