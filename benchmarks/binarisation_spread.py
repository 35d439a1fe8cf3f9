"""How much log p(x) moves when the MNIST test images are binarised with another seed.

The test set is binarised once (each pixel drawn from its grey level); the authors' seed is not
known, so the paper's number was measured on another binary draw of the same 10,000 images.
This script evaluates one trained run's log p(x) (proposal q(z|x,w), k = 1000) on several
draws and reports the spread over draws: the part of a gap to the paper that a different
draw alone can make. It needs the run's checkpoint (a folder of `jmvae run --results-dir`).

    python benchmarks/binarisation_spread.py --results-dir RESULTS --variant jmvae_kl \
        --alpha 0.1 --seed 4 --draws 0,1,2,3,4
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from jmvae_core import store  # noqa: E402
from jmvae_core.config import make_config  # noqa: E402
from jmvae_core.data.mnist import load_mnist  # noqa: E402
from jmvae_core.measure.estimators import evaluate, summarize  # noqa: E402
from jmvae_core.study.runs import load_trained  # noqa: E402


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results-dir", type=Path, required=True)
    ap.add_argument("--profile", default="paper")
    ap.add_argument("--variant", default="jmvae_kl")
    ap.add_argument("--alpha", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--draws", default="0,1,2,3,4", help="test binarisation seeds")
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = make_config(args.profile, variant=args.variant, alpha=args.alpha, seed=args.seed)
    run = store.Run(cfg, args.profile, args.results_dir)
    model = load_trained(run, "cpu")
    rows = []
    for draw in (int(s) for s in args.draws.split(",")):
        data = load_mnist(test_binarize_seed=draw)
        start = time.perf_counter()
        with torch.no_grad():
            values = evaluate(model, data.x_test, data.w_test, names=["marginal"], k=args.k)
        est = summarize(values["marginal"])
        rows.append({"test_binarize_seed": draw, "test_hash": data.test_hash, **est,
                     "seconds": round(time.perf_counter() - start, 1)})  # fmt: skip
        print(f"draw {draw}: log p(x) {est['mean']:.3f} ± {est['sem']:.3f}", flush=True)
    means = np.array([r["mean"] for r in rows])
    result = {
        "run_id": cfg.run_id,
        "k": args.k,
        "device": store.device_name(torch.device("cpu")),
        "torch": torch.__version__.split("+")[0],
        "git_commit": store.git_commit(),
        "command": "python benchmarks/binarisation_spread.py " + " ".join(argv or sys.argv[1:]),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "draws": rows,
        "mean_over_draws": float(means.mean()),
        "sd_over_draws": float(means.std(ddof=1)) if len(means) > 1 else None,
    }
    path = store.write_benchmark(result, args.out, "binarisation-spread")
    print(json.dumps({k: result[k] for k in ("mean_over_draws", "sd_over_draws")}), path)
    return result


if __name__ == "__main__":
    main()
