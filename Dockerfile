# One image for every Stagegate process: web (gunicorn), worker and beat
# (Celery) and the one-shot migrate. docker-compose.yml runs them; see
# docs/operations.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=portal.settings \
    STAGEGATE_VAR_DIR=/var/lib/stagegate

WORKDIR /app

# Dependencies first, so that a code change does not reinstall them.
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY . .

# Static files are part of the image; whitenoise serves them from
# $STAGEGATE_VAR_DIR/static. The settings need a secret key to load, and
# without production configuration they create local state (the embedded
# broker's folders, a generated encryption key) in their var folder; so
# collectstatic runs against a scratch var folder, of which only the static
# files are kept. No key or secret ends up in the image.
ARG BUILD_VAR_DIR=/tmp/stagegate-build
RUN DJANGO_SECRET_KEY=collectstatic-build-only STAGEGATE_VAR_DIR="$BUILD_VAR_DIR" \
        python manage.py collectstatic --no-input -v0 \
    && mkdir -p "$STAGEGATE_VAR_DIR" \
    && mv "$BUILD_VAR_DIR/static" "$STAGEGATE_VAR_DIR/static" \
    && rm -rf "$BUILD_VAR_DIR"

# The code and the static files stay owned by root: the processes read them
# and never write them. storage/ is where a Compose volume is mounted.
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/stagegate stagegate \
    && mkdir -p "$STAGEGATE_VAR_DIR/storage" \
    && chown stagegate:stagegate "$STAGEGATE_VAR_DIR" "$STAGEGATE_VAR_DIR/storage"
USER stagegate

EXPOSE 8000
CMD ["gunicorn", "portal.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--threads", "4", "--worker-tmp-dir", "/dev/shm", "--access-logfile", "-"]
