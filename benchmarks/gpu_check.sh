#!/usr/bin/env bash
# The GPU check (docs/scale.md, "The GPU check"): on one CUDA device, in at most 8 minutes,
#   1. installs the project into a fresh virtual environment (unless --python names one that has it);
#   2. runs the GPU-marked tests (pytest -m gpu);
#   3. times training steps of the default's towers (also as 5 batched seeds) and of the cifar10 preset's
#      towers (a ViT-B/16-shaped patch transformer and a ResNet-50, from scratch, batch 256, bf16 autocast),
#      printing steps/s and samples/s;
#   4. runs a tiny study on the CPU and on the GPU and compares their metrics within a stated tolerance
#      (benchmarks/gpu_check.py, TOLERANCE);
#   5. prints one summary table; the exit status is 1 if any step failed.
#
# Usage: benchmarks/gpu_check.sh [--python PATH] [--out DIR] [--cpu]
#   --python PATH  an interpreter with the project's dependencies (pip install -e ".[test]"): no install
#   --out DIR      where logs and figures go (default: a new temporary folder)
#   --cpu          without a GPU (CI, so that the script cannot rot): no install, the GPU tests skip
#                  themselves, the steps are timed on the CPU at toy sizes, and both studies run on the CPU
#                  and must agree exactly.
set -uo pipefail

usage() { sed -n '2,/^set /p' "$0" | sed '$d; s/^# \{0,1\}//'; }

MODE=gpu
PYTHON=""
OUT=""
while (($#)); do
    case $1 in
        --cpu) MODE=cpu ;;
        --python) PYTHON=$2; shift ;;
        --out) OUT=$2; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
    shift
done

REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$(mktemp -d -t modgap-gpu-check.XXXXXX)}
OUT=$(mkdir -p "$OUT" && cd "$OUT" && pwd)
: >"$OUT/steps.tsv"
export PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's modgap, whatever else is installed
# The 8 minutes hold on a GPU machine; a CPU machine in CI is given longer for the same steps at toy sizes.
if [[ $MODE == gpu ]]; then DEADLINE=480; else DEADLINE=1500; fi
FAILED=0

record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$OUT/steps.tsv"; }

# step NAME SECONDS COMMAND...: run COMMAND with its output in OUT/NAME.log, within SECONDS and the deadline.
step() {
    local name=$1 limit=$2 began=$SECONDS status
    shift 2
    local left=$((DEADLINE - SECONDS))
    if ((left <= 0)); then
        record "$name" "skipped: out of time" 0
        FAILED=1
        return
    fi
    ((limit > left)) && limit=$left
    echo "== $name (at most ${limit} s)" >&2
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    case $? in
        0) status=ok ;;
        124) status="timed out after ${limit} s"; FAILED=1 ;;
        *) status="failed (see $name.log)"; FAILED=1 ;;
    esac
    record "$name" "$status" $((SECONDS - began))
    [[ $status == ok ]] || tail -n 20 "$OUT/$name.log" >&2
}

if [[ -n $PYTHON ]]; then
    record install "skipped: $PYTHON" 0
elif [[ $MODE == cpu ]]; then
    PYTHON=$(command -v python3)
    record install "skipped: CPU mode, $PYTHON" 0
else
    BASE=$(command -v python3.11 || command -v python3)  # the project's Python is 3.11
    step install 300 bash -c '"$1" -m venv "$2/venv" && "$2/venv/bin/pip" install --quiet -e "$3[test]"' \
        _ "$BASE" "$OUT" "$REPO"
    PYTHON=$OUT/venv/bin/python
fi

if [[ $MODE == gpu ]]; then
    if ! "$PYTHON" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
        echo "no CUDA device visible to $PYTHON: run with --cpu to check the script without one" >&2
        exit 2
    fi
    DEVICE=cuda
    SAMPLES=1000
    DEFAULT_STEPS=(--steps 50 --seeds 5)
    PAPER_STEPS=(--steps 20 --batch-size 256)
else
    DEVICE=cpu
    SAMPLES=300
    DEFAULT_STEPS=(--steps 3 --seeds 2)
    PAPER_STEPS=(--steps 1 --batch-size 2)
fi

step gpu_tests 150 "$PYTHON" -m pytest -q -p no:cacheprovider -m gpu "$REPO/tests"
step data 120 "$PYTHON" "$REPO/benchmarks/gpu_check.py" prepare "$OUT/data/embedded" --samples $SAMPLES
BENCHMARK=("$PYTHON" "$REPO/benchmarks/training_benchmark.py" --data "$OUT/data/embedded" --device $DEVICE
    --no-start-cost --batch-sizes --methods ours)
# the default's towers once per modality count (its experiments from CLIP's 0.07 train the same towers)
step default_towers 150 "${BENCHMARK[@]}" "${DEFAULT_STEPS[@]}" \
    --experiments embedded_image_text embedded_image_audio_text --json "$OUT/default_towers.json"
step paper_towers 240 "${BENCHMARK[@]}" "${PAPER_STEPS[@]}" --amp --configfile "$REPO/presets/cifar10.yaml" \
    --experiments cifar10 cifar10_rn50 --json "$OUT/paper_towers.json"

# The tiny study twice, the first on the CPU, the second on the device; its metrics compared.
for study in reference device; do
    mkdir -p "$OUT/study_$study"
    if [[ $study == reference ]]; then study_device=cpu; else study_device=$DEVICE; fi
    "$PYTHON" "$REPO/benchmarks/gpu_check.py" study-config "$OUT/study_$study/tiny.yaml" --device $study_device
    step "study_$study" 240 "$PYTHON" -m snakemake -s "$REPO/Snakefile" --directory "$OUT/study_$study" \
        --configfile "$OUT/study_$study/tiny.yaml" --cores all results/tables/runs.csv
done
EXACT=()
[[ $MODE == cpu ]] && EXACT=(--exact)
step study_agreement 30 "$PYTHON" "$REPO/benchmarks/gpu_check.py" compare "$OUT/study_reference" \
    "$OUT/study_device" --json "$OUT/study_agreement.agreement.json" "${EXACT[@]}"

echo
echo "GPU check ($MODE mode) on $("$PYTHON" -c 'import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else "the CPU")'), $(date -u +%Y-%m-%d), ${SECONDS} s; logs in $OUT"
"$PYTHON" "$REPO/benchmarks/gpu_check.py" summary "$OUT"
exit $FAILED
