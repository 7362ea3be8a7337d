#!/usr/bin/env bash
# Sweeps on Hydra's cluster launchers, exercised on this machine: Ray in local mode and
# submitit's local launcher (the Slurm launcher's twin). Installs the `cluster` extra (Ray is
# large: about 1 GB with its dependencies) into its own venv, outside the repository, then runs
# tests/test_cluster.py there. Usage: scripts/cluster_smoke.sh [venv dir]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-${TMPDIR:-/tmp}/llmsim-cluster-venv}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q -e '.[test,cluster]'
"$VENV/bin/python" -m pytest -q -rs tests/test_cluster.py
