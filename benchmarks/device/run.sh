#!/usr/bin/env bash
# Run ON THE DEVICE MACHINE (16 cores, one NVIDIA GPU, Python 3.12, no network), from the
# repository root, after benchmarks/device/prepare.sh filled .whl/ here:
#   run(command="bash benchmarks/device/run.sh", carry=[".whl"], timeout_s=600)
# The checks no 2-core, GPU-less machine can make, most needed first, each bounded so that the
# whole run ends within BUDGET seconds (default 540: a device command may run 600). Logs go to
# $OUT (at most 8 files come back): env.txt, gpu_tests.txt, bench_*.txt.
# QUICK=1 shrinks every workload (a dry run of this script on any machine). PARTS="gpu bench
# writer profile big" (the default: all) picks the groups of checks to run; "dragon" and
# "telemetry" run one phase of "bench" alone; "dragon-suite" runs tests/dragon (not by default).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/rhapsody-device-out}
PYTHON=${PYTHON:-python3}
BUDGET=${BUDGET:-540}
mkdir -p "$OUT"
start=$(date +%s)

# seconds a phase may take: its own share, never past the budget (less a margin to report)
allow() {
    local left=$((BUDGET - ($(date +%s) - start) - 15))
    ((left < $1)) && echo $((left > 0 ? left : 1)) || echo "$1"
}
phase() {  # phase NAME SECONDS LOG COMMAND...: runs COMMAND with a bound, logs how it ended
    local name=$1 seconds log=$3
    seconds=$(allow "$2")
    shift 3
    echo "== $name (up to ${seconds}s): $*" >>"$OUT/$log"
    local t0=$(date +%s)
    timeout -k 10 "$seconds" "$@" >>"$OUT/$log" 2>&1
    echo "== $name: exit $? after $(($(date +%s) - t0))s" >>"$OUT/$log"
}
cleanup_dragon() { timeout 60 dragon-cleanup >/dev/null 2>&1 || true; }

site=/tmp/rhapsody-site
"$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" .whl/*.whl >"$OUT/env.txt" 2>&1 || { echo "wheels did not install" >>"$OUT/env.txt"; exit 1; }
export PYTHONPATH=$site PATH=$site/bin:$PATH PYTHONUNBUFFERED=1
{
    echo "cores: $(nproc)"
    nvidia-smi -L 2>&1
    "$PYTHON" -VV
    "$PYTHON" -c "import rhapsody; print(sorted(n for n, i in rhapsody.discover_backends().items() if i))"
} >>"$OUT/env.txt" 2>&1

if [[ ${QUICK:-0} == 1 ]]; then
    F=2000 F_BIG=20000 EXE=200 DASK=500 DRAGON=2000 TEL=5000 R=1
else
    F=100000 F_BIG=1000000 EXE=2000 DASK=10000 DRAGON=20000 TEL=100000 R=3
fi
pytest=("$PYTHON" -m pytest -p no:cacheprovider -q -rs --timeout 120)
PARTS=${PARTS:-gpu bench writer profile big}
part() { [[ " $PARTS " == *" $1 "* ]]; }

# 1. GPU checks (skipped with a reason where no GPU is seen: that is then the finding)
if part gpu; then
phase "GPU: concurrent placement, telemetry sampling" 120 gpu_tests.txt "${pytest[@]}" \
    "tests/core/test_concurrent_resources.py::test_on_real_gpus_each_task_sees_exactly_its_own" \
    "tests/core/test_telemetry_session.py::test_gpu_sampling_reads_every_gpu"
phase "GPU: Dragon placement and template affinity" 150 gpu_tests.txt dragon "${pytest[@]}" \
    "tests/dragon/test_dragon_resources.py::test_on_real_gpus_each_rank_sees_exactly_its_own" \
    "tests/dragon/test_dragon_templates.py::test_gpu_affinity_sets_cuda_visible_devices" \
    "tests/dragon/test_dragon_templates.py::test_gpu_affinity_holds_for_executables_started_together"
cleanup_dragon
fi

# the whole Dragon suite on a GPU node (PARTS=dragon-suite; not in the default set)
if part dragon-suite; then
phase "Dragon suite" 240 dragon_suite.txt dragon "${pytest[@]}" --timeout 300 tests/dragon
cleanup_dragon
fi

# 2. many-core throughput and driving-process CPU per task (issue 13), telemetry (issue 11)
if part bench; then
phase "concurrent" 130 bench_concurrent.txt "$PYTHON" benchmarks/bench_concurrent.py \
    --sizes "$F" --exe-size "$EXE" --process-size "$((EXE * 2))" --repeat "$R" \
    --memory-size "$((F / 5))"
# (3 rounds of 16-worker clusters outran 90 s on the node: 2 rounds, 150 s)
phase "dask" 150 bench_dask.txt "$PYTHON" benchmarks/bench_dask.py --size "$DASK" --repeat 2
fi
# (PARTS=dragon or PARTS=telemetry: that phase of "bench" alone)
if part bench || part dragon; then
phase "dragon" 120 bench_dragon.txt dragon "$PYTHON" benchmarks/bench_dragon.py \
    --functions "$DRAGON" --executables "$((EXE / 4))" --repeat "$R"
cleanup_dragon
fi
if part bench || part telemetry; then
phase "telemetry" 90 bench_telemetry.txt "$PYTHON" benchmarks/bench_telemetry.py \
    --size "$TEL" --repeat "$R" --memory-size "$((TEL / 5))"
fi
# the checkpoint writers' share (issue 11): the run again with the writer replaced by
# cat > /dev/null, and with 1, 2 and 4 writer processes (the default scales with the cores)
# and the writers alone, draining a captured stream, against the session's own rate
if part writer; then
phase "telemetry, the writers' share" 90 bench_telemetry.txt "$PYTHON" \
    benchmarks/bench_telemetry.py --size "$TEL" --repeat "$R" --memory-size 0 --discard \
    --writers 1,2,4
phase "checkpoint writers alone" 60 bench_telemetry.txt "$PYTHON" \
    benchmarks/bench_checkpoint_writers.py --size "$TEL" --writers 1,2,4 --repeat "$R"
fi
# 3. where the driving process's CPU goes on this node (profiled, all threads): concurrent
# executables (ours spent 1.4x raw's CPU per task here) and telemetry with its file
if part profile; then
P=("$PYTHON" benchmarks/profile_tasks.py)
phase "profile: concurrent executables, ours" 60 profile.txt "${P[@]}" concurrent-exe --size "$EXE"
phase "profile: concurrent executables, raw" 60 profile.txt "${P[@]}" concurrent-exe --size "$EXE" --raw
phase "profile: telemetry with its file" 60 profile.txt "${P[@]}" telemetry --size "$((TEL / 5))"
phase "profile: telemetry, OpenTelemetry only" 60 profile.txt "${P[@]}" telemetry \
    --size "$((TEL / 5))" --no-file
fi
# 4. (measured on the node already: 3.68x raw) the 1M-task run, if time is left
part big && phase "concurrent, 1M functions" 150 bench_concurrent_1m.txt "$PYTHON" \
    benchmarks/bench_concurrent.py --sizes "$F_BIG" --exe-size 0 --memory-size 0 --repeat 1
echo "total: $(($(date +%s) - start))s" >>"$OUT/env.txt"
