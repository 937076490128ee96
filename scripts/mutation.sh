#!/usr/bin/env bash
# Mutation testing of the critical modules ([tool.mutmut] in pyproject.toml),
# run by scripts/testenv.py, which provides DATABASE_URL and CELERY_BROKER_URL.
#   scripts/mutation.sh                  mutate every function of those modules; print each
#                                        module's score and the survivors
#   scripts/mutation.sh --gate --check   only the functions in mutation-floors.toml's [gate];
#                                        fail when a module is below its floor (make test)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export DJANGO_SETTINGS_MODULE=portal.settings
export DJANGO_SECRET_KEY="test-only-$(date +%s%N)"
export STATIC_MANIFEST=false
export FIELD_ENCRYPTION_KEYS="$($BIN/python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
export STAGEGATE_VAR_DIR="$(mktemp -d -t stagegate-var-XXXXXX)"
trap 'rm -rf "$STAGEGATE_VAR_DIR"' EXIT
mkdir -p "$STAGEGATE_VAR_DIR/static"

# Always from scratch: mutmut keeps results in mutants/ and would otherwise
# report those of code or tests that have changed since.
rm -rf mutants
echo "== mutmut (${MUTATION_JOBS:-2} processes)"
start=$(date +%s)
status=0
names=()
if [[ " $* " == *" --gate "* ]]; then
  mapfile -t names < <($BIN/python scripts/mutation_floor.py --globs)
fi
run() {
  $BIN/mutmut run "$@" > "$STAGEGATE_VAR_DIR/mutmut.log" 2>&1 || status=$?
  # The run's progress is a spinner; keep its last lines only.
  tr '\r' '\n' < "$STAGEGATE_VAR_DIR/mutmut.log" | grep -v '^\s*$' \
    | grep -v '⠋\|⠙\|⠹\|⠸\|⠼\|⠴\|⠦\|⠧\|⠇\|⠏' | tail -n 25
  if [ "$status" -ne 0 ]; then
    echo "mutmut failed (exit $status)" >&2
    exit "$status"
  fi
}
run --max-children "${MUTATION_JOBS:-2}" "${names[@]}"
echo "== mutmut took $(( $(date +%s) - start )) s"
# Out of time on a busy machine is not a kill: each timed-out mutant runs
# again, one at a time; only one that times out again counts as killed.
mapfile -t timed_out < <($BIN/python scripts/mutation_floor.py --timeouts | grep -v '^$' || true)
if [ "${#timed_out[@]}" -gt 0 ]; then
  echo "== ${#timed_out[@]} mutants timed out; running them again one at a time"
  run --max-children 1 "${timed_out[@]}"
  echo "== mutmut took $(( $(date +%s) - start )) s in all"
fi
$BIN/python scripts/mutation_floor.py "$@"
