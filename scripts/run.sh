#!/usr/bin/env bash
# The main job: sets up .venv, then shows the zoo (every model with its parameter count).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"
unetzoo list "$@"
