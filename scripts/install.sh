#!/usr/bin/env bash
# Installs tfvq and what its tests need into the current Python (CPU TensorFlow).
# Usage: bash scripts/install.sh [extra ...]      e.g. bash scripts/install.sh test bench
set -euo pipefail
cd "$(dirname "$0")/.."
extras="cpu"
for e in "$@"; do extras="$extras,$e"; done
python -m pip install --quiet --disable-pip-version-check -e ".[${extras}]"
# tensorflow-probability imports tf_keras; its own dependency on `tensorflow` would pull the
# full 600 MB wheel next to tensorflow-cpu, so it goes in without dependencies.
python -m pip install --quiet --disable-pip-version-check --no-deps "tf-keras>=2.21.0,<2.22"
