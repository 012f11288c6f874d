#!/usr/bin/env bash
# The test command: installs what the tests need, prepares the offline data, runs the suite.
# Usage: bash scripts/test.sh [pytest args]     e.g. bash scripts/test.sh -m "not slow"
# Runs on 2 processes (pytest-xdist): much of the suite is single-threaded process start-up.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh test
TFDS_DATA_DIR="$(bash scripts/prepare_data.sh | tail -n 1)"
export TFDS_DATA_DIR
python -m pytest -n 2 "$@"
