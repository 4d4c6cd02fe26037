#!/usr/bin/env bash
# Creates (or refreshes) the project's virtual environment in .venv and activates it.
# Sourced by scripts/run.sh and scripts/test.sh. Re-installs only when pyproject.toml changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${UNETZOO_VENV:-$root/.venv}"
python="${PYTHON:-python3}"
# torch and torchvision must be a matching pair (timm needs torchvision).
torch_spec="${UNETZOO_TORCH:-torch==2.14.1 torchvision==0.29.1}"
stamp="$venv/.unetzoo-installed"
want="$(cat "$root/pyproject.toml" | sha256sum | cut -d' ' -f1) $torch_spec"
if [[ ! -x "$venv/bin/python" ]]; then
    echo "unetzoo: creating virtual environment $venv" >&2
    "$python" -m venv "$venv"
fi
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    echo "unetzoo: installing dependencies into $venv (a few minutes the first time)" >&2
    # shellcheck disable=SC2086
    "$venv/bin/python" -m pip install --quiet $torch_spec
    "$venv/bin/python" -m pip install --quiet -e "$root[dev]"
    echo "$want" > "$stamp"
fi
# shellcheck disable=SC1091
source "$venv/bin/activate"
