#!/usr/bin/env bash
# The checks that need the database and broker (run by scripts/testenv.py,
# which provides DATABASE_URL and CELERY_BROKER_URL).
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

echo "== makemigrations --check"
$BIN/python manage.py makemigrations --check --dry-run
echo "== check --deploy (production-like settings)"
DJANGO_HTTPS=true DJANGO_ALLOWED_HOSTS=stagegate.example.com \
  DJANGO_SECRET_KEY="$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(50))')" \
  $BIN/python manage.py check --deploy --fail-level WARNING
echo "== pytest"
# Not exec: the EXIT trap above must still run to remove $STAGEGATE_VAR_DIR.
status=0
$BIN/pytest "$@" || status=$?
exit "$status"
