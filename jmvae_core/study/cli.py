"""The `jmvae` command: fetch data, train and evaluate a run."""

from __future__ import annotations

import argparse
import errno
import json
import sys
from pathlib import Path

from jmvae_core import data as datasets
from jmvae_core.config import (
    DATASETS,
    FIELD_PARTS,
    MNIST_VARIANTS,
    PROFILES,
    RUN_FILTERS,
    TRAIN_PRECISIONS,
    ConfigError,
    config_from_params,
)
from jmvae_core.data.mnist import MNIST_SOURCES, DataError, fetch_mnist

DEBUG_HELP = "show the traceback of an error instead of its one-line message"
PRECISION_HELP = "training matmuls: fp32 (default) or bf16 (bfloat16 autocast; MNIST only)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jmvae", description=__doc__)
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    common = argparse.ArgumentParser(add_help=False)  # --debug after the command too
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", required=True)

    fetch = sub.add_parser(
        "fetch-data", parents=[common], help="place the verified dataset files in the data dir"
    )
    fetch.add_argument(
        "dataset",
        choices=tuple(DATASETS),
        help="mnist: fetch and verify; standin: generate the stand-in face set of --profile; "
        "celeba: check and crop the CelebA files placed by hand (book/celeba.md)",
    )
    fetch.add_argument("--profile", default="quick", help="face-set size of this profile")
    fetch.add_argument(
        "--data-dir", type=Path, default=None, help="default: $JMVAE_DATA_DIR or data/"
    )
    fetch.add_argument(
        "--source",
        action="append",
        choices=MNIST_SOURCES,
        default=None,
        help="MNIST: sources to try, in order (default: all)",
    )

    run = sub.add_parser(
        "run", parents=[common], help="train and evaluate one variant; print its metrics"
    )
    run.add_argument("--variant", required=True, help=f"one of: {', '.join(MNIST_VARIANTS)}")
    run.add_argument("--profile", default="quick", help=f"one of: {', '.join(PROFILES)}")
    run.add_argument("--alpha", type=float)
    run.add_argument("--latent-dim", type=int)
    run.add_argument("--epochs", type=int)
    run.add_argument("--warmup-epochs", type=int)
    run.add_argument("--seed", type=int)
    run.add_argument("--n-train", type=int, help="train on the first N training images")
    run.add_argument("--k", type=int, help="importance samples per test example")
    run.add_argument("--n-prior", type=int, help="prior samples for log p(w)")
    run.add_argument("--n-test", type=int, help="evaluate on the first N test images")
    run.add_argument("--n-judged", type=int, help="images generated per digit for the digit judge")
    run.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    run.add_argument("--precision", choices=TRAIN_PRECISIONS, help=PRECISION_HELP)
    run.add_argument(
        "--results-dir",
        type=Path,
        default=None,
        help="default: $JMVAE_RESULTS_DIR or results/; may lie outside the repository "
        "(bring a finished run's small files back with `jmvae collect`)",
    )
    run.add_argument(
        "--threads",
        type=int,
        default=None,
        help="intra-op threads (recorded with the run, not part of its id); one thread for a "
        "long run beside other work",
    )
    collect = sub.add_parser(
        "collect",
        parents=[common],
        help="copy the finished runs of a results folder into results/, without checkpoints",
    )
    collect.add_argument("source", type=Path, help="a --results-dir of `jmvae run`")
    collect.add_argument("--profile", default="paper", help=f"one of: {', '.join(PROFILES)}")
    collect.add_argument("--results-dir", type=Path, default=None, help="default: results/")
    rep = sub.add_parser(
        "reproduce", parents=[common], help="run a whole profile, the result notebooks, the book"
    )
    rep.add_argument("--profile", default="quick", help=f"one of: {', '.join(PROFILES)}")
    rep.add_argument(
        "--dataset",
        default="mnist",
        choices=DATASETS,
        help="mnist (Table 1), standin (the generated faces) or celeba (needs --data-dir)",
    )
    rep.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="the CelebA folder (img_align_celeba/, list_attr_celeba.txt); "
        "default: $JMVAE_CELEBA_DIR or data/celeba",
    )
    rep.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    rep.add_argument(
        "--jobs", type=int, default=None, help="runs at once (default: CPU cores, or 1 on a GPU)"
    )
    rep.add_argument("--epochs", type=int, help="override every run's epochs (for trials)")
    rep.add_argument(
        "--batched",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="train the paper's MNIST runs not yet trained together through the batched step "
        "(notebooks/train_plan.ipynb), then evaluate each; default: on CUDA",
    )
    rep.add_argument("--precision", choices=TRAIN_PRECISIONS, help=PRECISION_HELP)
    rep.add_argument(
        "--executor",
        default="local",
        choices=["local", "dask"],
        help="local threads, or tasks on a Dask cluster (groups of runs of one architecture)",
    )
    rep.add_argument(
        "--scheduler",
        default=None,
        help="Dask scheduler address (tcp://host:8786; dask-jobqueue for SLURM/PBS); "
        "default: a LocalCluster of --jobs workers",
    )
    only = rep.add_argument_group(
        "run filter",
        "train only the plan's runs that match (each flag may repeat); the result "
        "notebooks and the book follow once every run of the plan is finished",
    )
    only.add_argument("--variant", action="append", dest="only_variant", metavar="VARIANT")
    only.add_argument("--alpha", action="append", type=float, dest="only_alpha", metavar="ALPHA")
    only.add_argument(
        "--latent-dim", action="append", type=int, dest="only_latent_dim", metavar="D"
    )
    only.add_argument("--seed", action="append", type=int, dest="only_seed", metavar="SEED")
    rep.add_argument("--results-dir", type=Path, default=None)
    rep.add_argument("--book-dir", type=Path, default=None, help="default: the repository")
    rep.add_argument("--no-build", action="store_true", help="skip jupyter-book build")
    return parser


def main(argv=None) -> int:
    """Run a command; every expected failure ends in one message on stderr and an exit code:
    2 for a bad setting or input (file, folder, scheduler), 1 for work that failed, 130 for
    Ctrl-C. A traceback only with --debug, or for a genuine bug."""
    args = _parser().parse_args(argv)
    try:
        return _command(args)
    except KeyboardInterrupt:
        print(
            "jmvae: interrupted; finished runs and the last checkpoints are kept: run the same "
            "command again to go on",
            file=sys.stderr,
        )
        return 130
    except Exception as error:
        code, message = _expected(error)
        if code is None or getattr(args, "debug", False):
            raise
        print(f"jmvae: error: {message}", file=sys.stderr)
        return code


def _command(args) -> int:
    if args.command == "fetch-data":
        return _fetch(args)
    if args.command == "reproduce":
        return _reproduce(args)
    if args.command == "collect":
        return _collect(args)
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads {args.threads} must be a positive integer")
    # the flags of `jmvae run` carry the names of the configuration fields they set
    params = {name: value for name, value in vars(args).items() if name in FIELD_PARTS}
    cfg = config_from_params(args.profile, **params)
    from jmvae_core.study.runs import (  # imported late: `jmvae fetch-data` needs no model code
        Run,
        run_one,
    )
    from jmvae_core.training.fit import check_device

    datasets.check(cfg)  # settings against the data and the device, before any file
    device = check_device(args.device)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    metrics = run_one(Run(cfg, args.profile, args.results_dir), device=device)
    keys = ("run_id", "estimators", "accuracy", "judged_coherence", "wall_time_s")
    print(json.dumps({k: metrics[k] for k in keys if k in metrics}, indent=2))
    return 0


def _expected(error: Exception) -> tuple[int | None, str]:
    """(exit code, message) of an anticipated failure; (None, "") for anything else (a bug)."""
    from jmvae_core.training.fit import TrainingDiverged

    if isinstance(error, (ConfigError, DataError)):
        return 2, str(error)
    if isinstance(error, TrainingDiverged):
        return 1, f"training diverged: {error}"
    execution = sys.modules.get("jmvae_core.execution")  # only notebook runs import it
    if execution is not None and isinstance(error, execution.NotebookFailed):
        return 1, f"a notebook failed:\n{error}"
    if isinstance(error, OSError):
        where = f" {error.filename}" if error.filename else ""
        reason = error.strerror or str(error)
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            return 1, (
                f"no space left writing{where}: free some space and run the same command "
                "again (finished runs and the last good checkpoint are kept)"
            )
        if error.filename:
            return 2, (
                f"cannot use{where}: {reason}; choose another folder (--results-dir, "
                "--data-dir) or make this one writable"
            )
        return 1, reason
    return None, ""


def _fetch(args) -> int:
    """The dataset's own preparation, as `reproduce` makes it before its runs start."""
    from jmvae_core.config import make_config

    if args.source and args.dataset != "mnist":
        raise ConfigError(f"--source names MNIST's sources; {args.dataset} has none")
    if args.source:
        fetch_mnist(args.data_dir, sources=tuple(args.source))
        return 0
    cfg = make_config(args.profile, dataset=args.dataset)
    root = args.data_dir.resolve() if args.data_dir is not None else None
    data = datasets.DATASETS[args.dataset].prepare(cfg, root, None, True, print)
    if data is not None:
        print(
            f"{args.dataset} ({args.profile} profile): {len(data.x_train):,} training and "
            f"{len(data.x_test):,} test images ready"
        )
    return 0


def _collect(args) -> int:
    from jmvae_core.store import collect_runs

    if args.profile not in PROFILES:
        raise ConfigError(f"profile={args.profile!r} is unknown; allowed: {', '.join(PROFILES)}")
    report = collect_runs(args.source, args.profile, args.results_dir)
    for state, run_ids in report.items():
        for run_id in run_ids:
            print(f"{state}: {run_id}", file=sys.stderr)
    print(json.dumps(report, indent=2))
    return 0


def _reproduce(args) -> int:
    from jmvae_core.study.pipeline import reproduce

    given = {"epochs": args.epochs, "precision": args.precision}
    overrides = {name: value for name, value in given.items() if value is not None} or None
    summary = reproduce(
        profile=args.profile,
        device=args.device,
        jobs=args.jobs,
        results_dir=args.results_dir,
        book_dir=args.book_dir,
        build=not args.no_build,
        overrides=overrides,
        dataset=args.dataset,
        data_dir=args.data_dir,
        executor=args.executor,
        scheduler=args.scheduler,
        batched=args.batched,
        only={
            name: values
            for name in RUN_FILTERS
            if (values := getattr(args, f"only_{name}")) is not None
        },
    )
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
