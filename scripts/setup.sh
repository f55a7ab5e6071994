#!/usr/bin/env bash
# Sets up everything cil_jax needs on a fresh machine: a virtualenv in .venv with the package installed
# in editable mode and its test tools (`pip install -e .[dev]`: the dependencies and their ranges are in
# pyproject.toml), and Fashion-MNIST's IDX files and WordNet from Debian/Ubuntu packages when apt is usable. Idempotent. PYTHON=python3.12 picks another interpreter (3.11 and 3.12 work).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# (PYTHONWARNINGS: setuptools warns at every editable install of a package whose configs/ folder
# installs inside it; the warning asks nothing of the user)
PYTHONWARNINGS=ignore .venv/bin/python -m pip install -q -e '.[dev]'
# Debian/Ubuntu packages: Fashion-MNIST's IDX files (the default run) and WordNet 3.0 (MGRB's WordNet
# hierarchy and its tests)
PKGS=""
[ -d /usr/share/datasets/fashion-mnist ] || PKGS="$PKGS dataset-fashion-mnist"
[ -f /usr/share/wordnet/data.noun ] || PKGS="$PKGS wordnet-base"
if [ -n "$PKGS" ] && command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
  ($SUDO apt-get install -y -q $PKGS >/dev/null 2>&1 ||
   ($SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q $PKGS >/dev/null 2>&1)) ||
    echo "note: could not install$PKGS; the default run needs Fashion-MNIST, MGRB's WordNet hierarchy needs" \
         "wordnet-base (see README)" >&2
fi
