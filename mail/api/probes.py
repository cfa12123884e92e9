"""What load balancers, orchestrators and scrapers ask, without an API key: is the process alive
(/healthz), can it serve (/readyz), and the service's numbers (/metrics)."""

import hmac

from django.conf import settings
from django.db import connection
from django.http import HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST

from .. import metrics as service_metrics
from .. import queues
from .errors import error_body


def healthz(request):
    """The process is alive; touches nothing else."""
    return JsonResponse({"status": "ok"})


def readyz(request):
    """The database and the queue answer (each bounded by its client's timeouts)."""
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # any failure means not ready; the reason is for the operator
        checks["database"] = f"error: {exc.__class__.__name__}"
    try:
        queues.probe_client().get_queue_url(QueueName=settings.SQS_QUEUE_NAME)
        checks["queue"] = "ok"
    except Exception as exc:
        checks["queue"] = f"error: {exc.__class__.__name__}"
    ready = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)


def metrics(request):
    """Prometheus text format (mail/metrics.py). With METRICS_TOKEN set, only for a scraper
    sending `Authorization: Bearer <token>`; unset, open on a local run (loopback bind, no HTTPS)
    and off wherever others can reach it, so a deployment never publishes it by omission."""
    token = settings.METRICS_TOKEN
    if not token:
        if not settings.METRICS_OPEN_WITHOUT_TOKEN:
            sentence = "Metrics are off: set METRICS_TOKEN (required with HTTPS=true or a BIND_ADDRESS beyond loopback)."
            return JsonResponse(error_body("not_found", sentence), status=404)
    elif not hmac.compare_digest(request.headers.get("Authorization", "").encode(), f"Bearer {token}".encode()):
        response = JsonResponse(error_body("not_authenticated", "Send Authorization: Bearer <METRICS_TOKEN>."), status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(service_metrics.render(), content_type=CONTENT_TYPE_LATEST)


PROBES = {"/healthz": healthz, "/readyz": readyz, "/metrics": metrics}


class HostIndependentProbes:
    """Middleware: /healthz, /readyz and /metrics, answered before anything checks the Host header.

    A load balancer's health checks and a scraper that reaches tasks one by one address a task by
    its IP, which ALLOWED_HOSTS (the public names) does not list, so Django would answer them 400.
    None of these builds a URL from the Host header, which is what ALLOWED_HOSTS protects."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        probe = PROBES.get(request.path_info)
        if probe is not None and request.method in ("GET", "HEAD"):
            return probe(request)
        return self.get_response(request)
