#!/bin/sh
# The image's one entrypoint. `serve` (the default) runs the processes MAILER_MODE names; the
# other commands are one-off tasks an orchestrator runs on their own (never on every start: two
# tasks starting at once would race their migrations).
set -eu
# The app directory: /app in the image, the checkout when the tests run this script.
cd "$(dirname "$0")/.."

command="${1:-serve}"
[ $# -gt 0 ] && shift
case "$command" in
    serve)       exec python manage.py serve "$@" ;;
    migrate)     exec python manage.py migrate --noinput "$@" ;;
    provision)   exec python manage.py provision_queues "$@" ;;
    # Both, in order: what docker-compose's one-off setup service runs.
    setup)       python manage.py migrate --noinput && exec python manage.py provision_queues ;;
    healthcheck) exec python docker/healthcheck.py "$@" ;;
    # The local provider simulator (docker-compose), listening on every interface of its container.
    simulator)   exec python -m devtools.simulator --host 0.0.0.0 --port 8025 "$@" ;;
    # Anything else of manage.py, e.g. `manage create_api_key shop` or `manage drain_dlq --once`.
    manage)      exec python manage.py "$@" ;;
    *)
        echo "usage: entrypoint.sh [serve|migrate|provision|setup|healthcheck|simulator|manage ARGS...]" >&2
        exit 64
        ;;
esac
