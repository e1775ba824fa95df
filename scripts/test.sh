#!/usr/bin/env bash
# The test suite under every required Keras backend (torch, then TensorFlow).
# Usage: scripts/test.sh [pytest args...]     Backends: AVLOC_TEST_BACKENDS="torch tensorflow"
set -uo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=3 PYTHONUNBUFFERED=1
status=0
for backend in ${AVLOC_TEST_BACKENDS:-torch tensorflow}; do
  echo "=== KERAS_BACKEND=$backend"
  KERAS_BACKEND=$backend python3 -m pytest -q -p no:cacheprovider --durations=15 "${@:-tests}" || status=1
done
exit $status
