# One image for every mode: MAILER_MODE=consumer (API), processor (worker + DLQ drainer) or all.
# Migrations and queue provisioning are one-off commands, not part of start-up:
#   docker run IMAGE migrate        docker run IMAGE provision_queues
FROM python:3.11.7-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install -r /tmp/requirements.txt

FROM python:3.11.7-slim-bookworm
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent mailer
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MAILER_MODE=all \
    BIND_ADDRESS=0.0.0.0:8000 \
    STATIC_ROOT=/app/static \
    MAILER_VAR_DIR=/tmp/mailer
WORKDIR /app
COPY manage.py ./
COPY mailer_project ./mailer_project
COPY mail ./mail
COPY providers ./providers
# The admin's static files, collected once into the image (served by WhiteNoise).
RUN python manage.py collectstatic --noinput --verbosity 0
USER mailer
EXPOSE 8000
# The API answers /healthz in the modes that run it; a processor-only container has no port.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; os.environ.get('MAILER_MODE') == 'processor' or urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
# SIGTERM reaches `serve`, which stops the API first, then lets the worker finish in-flight sends.
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "manage.py"]
CMD ["serve"]
