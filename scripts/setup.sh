#!/usr/bin/env bash
# Set up tabresnet in the current Python environment.
#
#   bash scripts/setup.sh          # the package, its CLI and Graphviz (for model graphs)
#   bash scripts/setup.sh --dev    # + test and benchmark tools, PostgreSQL and Chromium
#
# Torch is installed first, the fast way: where none is present we ask for the
# CPU build that this machine's pip serves locally, so that the package's loose
# `torch>=2.3` requirement does not pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[ "${1:-}" = "--dev" ] && dev=1
PY=${PYTHON:-python3}
SUDO=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO=sudo

apt_pkgs=()
command -v dot >/dev/null || apt_pkgs+=(graphviz)
if [ $dev = 1 ]; then
  command -v chromium >/dev/null || apt_pkgs+=(chromium)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt_pkgs+=(postgresql)
fi
if [ ${#apt_pkgs[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null; then
    echo "setup: installing ${apt_pkgs[*]} with apt-get"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${apt_pkgs[@]}" >/dev/null
  else
    echo "setup: please install ${apt_pkgs[*]} with your system's package manager" >&2
  fi
fi

if ! $PY -c "import torch" 2>/dev/null; then
  echo "setup: installing torch (CPU build)"
  $PY -m pip install -q "torch==2.13.0" || $PY -m pip install -q "torch>=2.3"
fi

if [ $dev = 1 ]; then
  $PY -m pip install -q -e ".[dev]"
else
  $PY -m pip install -q -e .
fi
# pyenv serves console scripts through shims that must be regenerated.
command -v pyenv >/dev/null && pyenv rehash 2>/dev/null || true
echo "setup: done ($($PY -c 'import tabresnet, torch; print("tabresnet", tabresnet.__version__, "torch", torch.__version__)'))"
