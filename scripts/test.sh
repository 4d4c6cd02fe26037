#!/usr/bin/env bash
# The whole test suite: sets up .venv, then lint (ruff), tests (pytest) and docs (mkdocs --strict).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/venv.sh"
cd "$root"
echo "== ruff"
ruff check .
echo "== mkdocs build --strict"
NO_MKDOCS_2_WARNING=1 mkdocs build --strict --quiet --site-dir "$(mktemp -d)"
echo "== pytest"
pytest "$@"
