"""What a bare GPU machine needs beside the repository, made once here: `gpu_kit/`.

    python scripts/gpu_kit.py prepare [--results DIR] [--kit gpu_kit]
    python scripts/gpu_kit.py size [--kit gpu_kit]

`prepare` writes, into the git-ignored folder gpu_kit/:
- mnist/<name>.gz: the four MNIST IDX files gzipped (11 MB instead of 52 MB uncompressed;
  scripts/gpu_paper_mnist.sh unpacks them into data/mnist/ on the machine, MD5-checked);
- digit-judge-<id>/: the paper profile's digit judge (weights and record), taken from the
  results folder --results (default: the repository's results/) or trained there first
  (minutes on a CPU), so that every piece made on any machine is judged by the one
  classifier that judged the runs made on the CPU.
`size` prints what one command sends (the files git tracks, the untracked ones it does not
ignore, and the kit) against the 64 MiB a command may carry, and fails above it.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jmvae_core.data.mnist import MNIST_MD5, fetch_mnist, md5, mnist_dir  # noqa: E402

KIT = ROOT / "gpu_kit"
LIMIT = 64 * 2**20  # bytes one command may carry: the tree and the carried paths together
PROFILE = "paper"
COMMIT = "commit.txt"  # the commit the kit was prepared at


def prepare(kit: Path, results: Path, log=print) -> dict:
    """gpu_kit/mnist/*.gz, gpu_kit/digit-judge-<id>/ and gpu_kit/commit.txt (the code's
    commit, which a copy of the tree without .git records in its runs); returns
    {name: bytes}."""
    from jmvae_core import store
    from jmvae_core.measure import digit_judge  # trains the judge if the folder lacks it

    source = fetch_mnist(log=log)
    (kit / "mnist").mkdir(parents=True, exist_ok=True)
    for name in MNIST_MD5:
        target = kit / "mnist" / f"{name}.gz"
        if not target.exists():
            part = target.with_suffix(".gz.part")
            with open(source / name, "rb") as raw, gzip.open(part, "wb", compresslevel=6) as gz:
                shutil.copyfileobj(raw, gz)
            part.replace(target)
    digit_judge.load_or_train(PROFILE, None, "cpu", results, progress=True)
    judge = digit_judge.judge_dir(PROFILE, None, results)
    shutil.copytree(judge, kit / judge.name, dirs_exist_ok=True)
    (kit / COMMIT).write_text(store.git_commit() + "\n")
    sizes = {str(p.relative_to(kit)): p.stat().st_size for p in sorted(kit.rglob("*"))
             if p.is_file()}  # fmt: skip
    log(f"{kit}: {sum(sizes.values()) / 2**20:.1f} MiB ({len(sizes)} files)")
    return sizes


def unpack(kit: Path, target: Path | None = None) -> list[str]:
    """The kit's gzipped MNIST files into data/mnist/ where missing, each MD5-checked;
    returns the names unpacked."""
    target = target or mnist_dir()
    target.mkdir(parents=True, exist_ok=True)
    done = []
    for name in MNIST_MD5:
        packed = kit / "mnist" / f"{name}.gz"
        if (target / name).exists() or not packed.exists():
            continue
        part = target / f".{name}.part"
        with gzip.open(packed, "rb") as gz, open(part, "wb") as raw:
            shutil.copyfileobj(gz, raw)
        if md5(part) != MNIST_MD5[name]:
            part.unlink()
            raise SystemExit(f"{packed}: unpacked MD5 is not the genuine {name}'s")
        part.replace(target / name)
        done.append(name)
    return done


def tree_bytes(root: Path = ROOT) -> int:
    """Bytes of the files git tracks and of the untracked ones it does not ignore."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root, capture_output=True, check=True,
    ).stdout.decode()  # fmt: skip
    paths = [root / p for p in listed.split("\0") if p]
    return sum(p.stat().st_size for p in paths if p.is_file())


def sent_bytes(kit: Path, root: Path = ROOT) -> dict:
    """What one command sends: the tree and the kit, in bytes, and the limit."""
    kit_bytes = sum(p.stat().st_size for p in kit.rglob("*") if p.is_file())
    tree = tree_bytes(root)
    return {"tree": tree, "kit": kit_bytes, "total": tree + kit_bytes, "limit": LIMIT}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("action", choices=("prepare", "size", "unpack"))
    p.add_argument("--kit", type=Path, default=KIT)
    p.add_argument("--results", type=Path, default=ROOT / "results",
                   help="results folder with (or for) the paper profile's digit judge")  # fmt: skip
    args = p.parse_args(argv)
    if args.action == "prepare":
        prepare(args.kit, args.results)
    if args.action == "unpack":
        print(f"unpacked {unpack(args.kit) or 'nothing (present or not in the kit)'}")
    if args.action in ("prepare", "size"):
        sizes = sent_bytes(args.kit)
        mib = {k: round(v / 2**20, 1) for k, v in sizes.items()}
        print(f"one command sends {mib['total']} MiB (tree {mib['tree']}, kit {mib['kit']}) "
              f"of {mib['limit']} MiB")  # fmt: skip
        if sizes["total"] > sizes["limit"]:
            raise SystemExit("too large for one command: remove untracked files from the tree")


if __name__ == "__main__":
    main()
