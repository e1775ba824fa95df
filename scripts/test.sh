#!/usr/bin/env bash
# The test suite under every required Keras backend (torch, then TensorFlow), then its JAX subset
# (tests marked `jax`: train, exact resume, eval and localize at tiny size) under JAX.
# Usage: scripts/test.sh [pytest args...]
# Backends: AVLOC_TEST_BACKENDS="torch tensorflow jax" (jax runs `-m jax`, after the arguments so
# that it wins over another -m; left out when JAX is not installed)
set -uo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=3 PYTHONUNBUFFERED=1
status=0
for backend in ${AVLOC_TEST_BACKENDS:-torch tensorflow jax}; do
  select=()
  if [ "$backend" = jax ]; then
    python3 -c "import jax" 2>/dev/null || { echo "=== KERAS_BACKEND=jax: JAX not installed, skipped"; continue; }
    select=(-m jax)
  fi
  echo "=== KERAS_BACKEND=$backend ${select[*]}"
  KERAS_BACKEND=$backend python3 -m pytest -q -p no:cacheprovider --durations=15 "${@:-tests}" "${select[@]}" || status=1
done
exit $status
