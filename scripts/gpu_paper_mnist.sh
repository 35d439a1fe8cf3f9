#!/usr/bin/env bash
# The paper profile of MNIST on one bare GPU machine (torch + numpy, no internet), in one call:
#     bash scripts/gpu_paper_mnist.sh OUT_DIR [options of scripts/gpu_paper_mnist.py]
# e.g. on a machine lent for one command of at most 10 minutes:
#     bash scripts/gpu_paper_mnist.sh OUT --time-budget 540 --git-commit "$(git rev-parse HEAD)"
# or one piece of the plan per command, the next one not yet committed:
#     bash scripts/gpu_paper_mnist.sh OUT --piece next --time-budget 500
# A smoke call first (every stage on the whole plan at throwaway sizes, then step times in
# fp32 and TF32; its archive is smoke_results.tar.gz, never extracted into results/):
#     bash scripts/gpu_paper_mnist.sh OUT --smoke --precision-epochs 1
#
# Needs, relative to the repository root:
#   gpu_kit/      made here by `python scripts/gpu_kit.py prepare` (git-ignored: carry it):
#                 MNIST gzipped (unpacked into data/mnist/ on the machine) and the digit
#                 judge that reads every run's coherence; or data/mnist/ itself
#   wheels/       optional (git-ignored): wheels to install where a module is missing. Fill it
#                 on a machine with PyPI access:  python3 -m pip download tqdm --no-deps -d wheels
#                 Without it, a missing tqdm is replaced by a silent stand-in in the script.
# Environment: PYTHON (default python3), JMVAE_WHEELS (default wheels).
# Writes OUT_DIR/paper_results.tar.gz (extract with `tar -xzf ... -C results/`),
# OUT_DIR/timing.json and OUT_DIR/log.txt; see the script's docstring for the stages.
# Where the returned folder is emptied before each command, write OUT_DIR inside the
# git-ignored gpu_out/ and copy the three files out with --export "$OUT".
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: bash scripts/gpu_paper_mnist.sh OUT_DIR [options]}"
shift
python="${PYTHON:-python3}"
wheels="${JMVAE_WHEELS:-wheels}"
mkdir -p "$out"

if ! "$python" -c "import tqdm" 2>/dev/null; then
    if compgen -G "$wheels/tqdm-*.whl" >/dev/null; then
        site="$(mktemp -d)"
        "$python" -m pip install -q --no-index --no-deps --find-links "$wheels" \
            --target "$site" tqdm
        export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
    else
        echo "tqdm is missing and $wheels/ has no tqdm wheel: running without progress bars" >&2
    fi
fi

export PYTHONUNBUFFERED=1
# SIGTERM (a time limit's, sent to the whole command) is for the script, which then writes
# what it finished: this shell and tee ignore it, so the shell waits for those last writes
# and the log keeps them (the script sets its own handler at its start)
trap '' TERM
"$python" scripts/gpu_paper_mnist.py --out "$out" "$@" 2>&1 | tee -a "$out/log.txt"
