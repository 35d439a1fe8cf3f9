#!/usr/bin/env bash
# The paper profile of MNIST on one bare GPU machine (torch + numpy, no internet):
#     bash scripts/gpu_paper_mnist.sh OUT_DIR [options of scripts/gpu_paper_mnist.py]
# e.g. a part of the study that stops cleanly within 9 minutes and resumes on the next call:
#     bash scripts/gpu_paper_mnist.sh OUT --time-budget 540 --groups jmvae_kl-z64
#
# Needs, relative to the repository root:
#   data/mnist/   the four uncompressed MNIST IDX files (git-ignored: carry the folder)
#   wheels/       optional (git-ignored): wheels to install where a module is missing. Fill it
#                 on a machine with PyPI access:  python3 -m pip download tqdm --no-deps -d wheels
#                 Without it, a missing tqdm is replaced by a silent stand-in in the script.
# Environment: PYTHON (default python3), JMVAE_WHEELS (default wheels),
#              JMVAE_ESTIMATOR_PRECISION (fp32 | bf16 | auto, as runs.py).
# Writes OUT_DIR/paper_results.tar.gz (extract with `tar -xzf ... -C results/`),
# OUT_DIR/timing.json and OUT_DIR/log.txt; see the script's docstring for the rest.
#
# On a machine whose returned folder is emptied before each command, keep OUT_DIR in the
# git-ignored gpu_out/ (it stays while the machine is held) and copy the three files out:
#     bash scripts/gpu_paper_mnist.sh gpu_out --export "$OUT" --time-budget 540 \
#         --max-group-runs 5 --git-commit <commit>
# and on a fresh machine carry gpu_out/results (the archive extracted there: finished runs
# are then skipped) besides data/mnist.
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
"$python" scripts/gpu_paper_mnist.py --out "$out" "$@" 2>&1 | tee -a "$out/log.txt"
