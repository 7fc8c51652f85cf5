#!/usr/bin/env bash
# Run HERE (the development machine), in the repository root, right before a device call.
# Fills .whl/ (git-ignored; the device call carries it) with what the device machine lacks,
# built for its Python: the third-party wheels of wheels.txt, and wheels of our four
# distributions built from this working tree. Then, with the device tool:
#   run(command="bash benchmarks/device/run.sh", carry=[".whl"], timeout_s=600)
# DEVICE_PYTHON_VERSION=3.11 makes a set for this machine's Python (a dry run of run.sh here).
set -euo pipefail
cd "$(dirname "$0")/../.."
version=${DEVICE_PYTHON_VERSION:-3.12}
grep -qxF "/.whl/" .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo "/.whl/" >>.git/info/exclude; }
rm -rf .whl && mkdir -p .whl
platforms=()
for n in 17 24 27 28 31 34 35; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
platforms+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any)
grep -v '^#' benchmarks/device/wheels.txt | xargs python3 -m pip download -q --no-deps \
    --only-binary=:all: --python-version "$version" --implementation cp "${platforms[@]}" -d .whl
python3 -m pip wheel -q --no-deps -w .whl ./rhapsody-core ./rhapsody-dask ./rhapsody-dragon \
    ./rhapsody-vllm
du -sh .whl
