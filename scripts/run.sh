#!/usr/bin/env bash
# The main job: sets up .venv, then fine-tunes a small U-Net on the built-in demo dataset
# (generated once, no download) into runs/demo, and shows how to load the result.
# Extra arguments go to `unetzoo finetune` (e.g. --epochs 3, --quiet).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/venv.sh"
cd "$root"
unetzoo finetune --config configs/demo.yaml --out runs/demo --overwrite "$@"
