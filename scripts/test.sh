#!/usr/bin/env bash
# The test command: installs what the tests need, prepares the offline data, runs the suite.
# Usage: bash scripts/test.sh [pytest args]     e.g. bash scripts/test.sh -m "not slow"
# Runs on 2 processes (pytest-xdist, work stealing: the minute-long tests at the end no longer
# leave one process idle; 9 min 29 s against 10 min 55 s with the default scheduling).
# Then the layers' backend tests again under JAX and under torch, one pytest run per backend
# (Keras reads KERAS_BACKEND once, at import), each on 2 processes too; the pytest args are
# passed on to them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh test
TFDS_DATA_DIR="$(bash scripts/prepare_data.sh | tail -n 1)"
export TFDS_DATA_DIR
python -m pytest -n 2 --dist worksteal "$@"
# The TensorFlow outputs the other backends are compared with, computed once for both runs.
reference_dir="$(mktemp -d)"
trap 'rm -rf "$reference_dir"' EXIT
export TFVQ_TF_REFERENCE="$reference_dir/tf_reference.npz"
# Written before the runs start: two processes that both found it missing would both write it.
python tests/layers/backend_cases.py "$TFVQ_TF_REFERENCE"
# JAX compiles each op it runs eagerly; a compilation cache shared by the two processes (new
# for every run, so nothing carries over between runs) took its run from 3 min 1 s to 2 min 10 s
# on a 2-core AMD EPYC with AVX2 (2026-12-04). Small compilations count too (min time 0).
export JAX_COMPILATION_CACHE_DIR="$reference_dir/jax_cache"
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=-1
for backend in jax torch; do
    KERAS_BACKEND="$backend" python -m pytest -n 2 --dist worksteal \
        tests/layers/test_backends.py "$@"
done
