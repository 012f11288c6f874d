#!/usr/bin/env bash
# Makes sure a TFDS data dir holds mnist, fashion_mnist and cifar10, built offline from the
# copies in ../shared (see ../shared/DATA.md). Prints the data dir on its last line.
# Usage: bash scripts/prepare_data.sh [DATA_DIR]   (default: $TFDS_DATA_DIR or ~/tensorflow_datasets)
set -euo pipefail
cd "$(dirname "$0")/.."
data_dir="${1:-${TFDS_DATA_DIR:-$HOME/tensorflow_datasets}}"
shared="${TFVQ_SHARED_DIR:-../shared}"
if [ -f "$shared/tools/prepare_tfds.py" ]; then
  python "$shared/tools/prepare_tfds.py" --data_dir "$data_dir" >&2
else
  echo "No $shared/tools/prepare_tfds.py: using $data_dir as it is (tfds may try to download)." >&2
fi
echo "$data_dir"
