# One image for every role. `docker run IMAGE` runs MAILER_MODE (consumer: the API under gunicorn;
# processor: the Celery worker, the DLQ drainer and housekeeping; all: both). Migrations and queue
# provisioning are one-off commands, never part of a start:
#   docker run IMAGE migrate      docker run IMAGE provision      docker run IMAGE setup (both)
# See docker/entrypoint.sh for every command. `make image-test` builds this file and tests the
# image as the CloudFormation task definitions run it (docs/image.md).

# An exact tag; pin its digest too (@sha256:...) where images are built and scanned.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
# Every dependency installs from a wheel, so no compiler is needed even here; pip itself is
# removed so the runtime image has no package installer.
RUN /opt/venv/bin/pip install --no-cache-dir --only-binary=:all: -r /tmp/requirements.txt \
    && /opt/venv/bin/pip uninstall --yes pip setuptools

FROM ${PYTHON_IMAGE}
# uid and gid 10001 both named mailer (useradd --user-group alone would give the group another id).
RUN groupadd --system --gid 10001 mailer \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent mailer
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MAILER_MODE=all \
    BIND_ADDRESS=0.0.0.0:8000 \
    STATIC_ROOT=/app/static \
    MAILER_VAR_DIR=/tmp/mailer \
    WORKER_HEARTBEAT_FILE=/tmp/mailer/worker-heartbeat
WORKDIR /app
# The app: the build context as .dockerignore lets it through (manage.py, docker/, the Python
# packages), so a package added there needs no line here.
COPY . ./
# The admin's static files, collected once into the image (served by WhiteNoise), and the app's
# bytecode compiled now, since the non-root user cannot write it at run time. Loading the settings
# as root made MAILER_VAR_DIR (/tmp/mailer) owned by root: a /tmp volume seeded from the image
# would then refuse the worker its heartbeat file. /tmp leaves the build empty, or the build fails.
RUN python manage.py collectstatic --noinput --verbosity 0 \
    && python -m compileall -q . \
    && rm -rf /tmp/mailer \
    && [ -z "$(ls -A /tmp)" ]
# The one writable place under a read-only root filesystem. Declared a volume so that ECS copies
# the image's /tmp (empty, mode 1777) into the task's bind mount there; without it that mount is
# an empty directory owned by root, mode 0755, which user 10001 cannot write.
VOLUME ["/tmp"]
# Numeric, so a runtime that checks "runs as non-root" (Kubernetes, ECS) can tell without /etc/passwd.
USER 10001:10001
EXPOSE 8000
# consumer: /healthz answers; processor: the worker's event loop touched its heartbeat file lately.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/app/docker/entrypoint.sh", "healthcheck"]
# SIGTERM reaches `serve`, which stops the API first, then lets the worker finish in-flight sends
# (run with an init, `docker run --init` / compose `init: true` / ECS initProcessEnabled, so
# orphaned grandchildren are reaped).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/app/docker/entrypoint.sh"]
CMD ["serve"]
