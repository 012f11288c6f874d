#!/usr/bin/env bash
# The main job: installs tfvq, prepares CIFAR-10 offline, trains briefly and writes metrics and
# pictures to runs/cifar10 (flags are passed on to examples/cifar10.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
TFDS_DATA_DIR="$(bash scripts/prepare_data.sh | tail -n 1)"
export TFDS_DATA_DIR
python examples/cifar10.py --output_dir=runs/cifar10 "$@"
