"""/metrics: whole-service numbers from the database and SQS, scraped over HTTP from the API
process while other processes (a worker) did the sending; and who may read it."""

import pytest
import requests
from django.test import Client, override_settings
from prometheus_client.parser import text_string_to_metric_families

from mail.models import ProviderSetting
from mail.runtime import RUNTIME
from providers.circuit import Admission, Outcome

from .stack import mail_body


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted label pairs): value}"""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_metrics_count_what_workers_did_and_read_queue_depth(make_stack, simulator):
    stack = make_stack(METRICS_TOKEN="scrape-token")
    stack.start_worker()
    simulator.behave("sendgrid", status=503, times=1)  # a retry, then sent by sendgrid
    first = stack.post(mail_body("retried"))
    stack.wait_for_status(first, "sent")
    simulator.behave("sendgrid", status=401, times=1)  # sendgrid refuses: failover, sent by mailgun
    second = stack.post(mail_body("failed over"))
    stack.wait_for_status(second, "sent")
    simulator.behave("sendgrid", status=400)  # both reject the message itself: failed
    simulator.behave("mailgun", status=400)
    third = stack.post(mail_body("rejected everywhere"))
    stack.wait_for_status(third, "failed")

    response = requests.get(f"{stack.api_url}/metrics", headers={"Authorization": "Bearer scrape-token"}, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    found = samples(response.text)
    assert found[("mailer_messages_accepted_total", ())] == 3
    assert found[("mailer_messages_sent_total", (("provider", "sendgrid"),))] == 1
    assert found[("mailer_messages_sent_total", (("provider", "mailgun"),))] == 1
    assert found[("mailer_send_retries_total", (("provider", "sendgrid"),))] == 1
    # The failover of the second message and that of the third (sendgrid rejected it too).
    assert found[("mailer_failovers_total", (("provider", "sendgrid"),))] == 2
    assert found[("mailer_messages_failed_total", (("provider", "mailgun"),))] == 1
    assert found[("mailer_messages", (("status", "sent"),))] == 2
    assert found[("mailer_messages", (("status", "failed"),))] == 1
    assert found[("mailer_send_latency_window_messages", ())] == 2
    p50, p99 = (
        found[("mailer_send_latency_seconds", (("percentile", "50"),))],
        found[("mailer_send_latency_seconds", (("percentile", "99"),))],
    )
    assert 0 < p50 <= p99 < 60
    queue = stack.env["SQS_QUEUE_NAME"]
    assert found[("mailer_queue_up", (("queue", queue),))] == 1
    assert found[("mailer_queue_up", (("queue", f"{queue}-dlq"),))] == 1
    # The failed message's task stays un-acked for the redrive policy: in the queue or its DLQ.
    depth = sum(
        found[("mailer_queue_messages", (("queue", name), ("state", state)))]
        for name in (queue, f"{queue}-dlq")
        for state in ("visible", "in_flight", "delayed")
    )
    assert depth == 1


@pytest.mark.django_db
@override_settings(METRICS_TOKEN="right-token")
def test_with_a_token_only_a_scraper_sending_it_reads_metrics():
    client = Client()
    refused = client.get("/metrics")
    assert refused.status_code == 401
    assert refused["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert refused.json()["error"]["type"] == "not_authenticated"
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong-token").status_code == 401
    allowed = client.get("/metrics", HTTP_AUTHORIZATION="Bearer right-token")
    assert allowed.status_code == 200 and b"mailer_messages_accepted_total" in allowed.content


@pytest.mark.django_db
@override_settings(METRICS_TOKEN="", METRICS_OPEN_WITHOUT_TOKEN=False)
def test_without_a_token_metrics_are_off_in_production():
    response = Client().get("/metrics")
    assert response.status_code == 404
    assert "METRICS_TOKEN" in response.json()["error"]["message"]


@pytest.mark.django_db
@override_settings(METRICS_TOKEN="", METRICS_OPEN_WITHOUT_TOKEN=True)
def test_without_a_token_metrics_are_open_on_a_local_run():
    assert Client().get("/metrics").status_code == 200


@pytest.mark.django_db
@override_settings(ALLOWED_HOSTS=["mail.example.com"])
def test_probes_answer_a_load_balancer_that_addresses_the_task_by_ip(provisioned_queues):
    client = Client()
    task_ip = "10.0.3.7:8000"
    assert client.get("/healthz", HTTP_HOST=task_ip).status_code == 200
    assert client.get("/readyz", HTTP_HOST=task_ip).json()["status"] == "ok"
    assert client.get("/metrics", HTTP_HOST=task_ip).status_code == 200
    # Everything else still checks the Host header.
    assert client.get("/api/v1/messages/00000000-0000-0000-0000-000000000000", HTTP_HOST=task_ip).status_code == 400
    assert client.get("/healthz", HTTP_HOST="mail.example.com").status_code == 200


@pytest.mark.django_db
def test_each_circuit_state_and_each_providers_switch_is_a_gauge(provisioned_queues):
    RUNTIME.reset()
    try:
        RUNTIME.breakers().record("sendgrid", Admission.PASS, Outcome(ok=False, latency=0.1, retry_after=60))
        ProviderSetting.objects.create(name="mailgun", enabled=False)
        found = samples(Client().get("/metrics").content.decode())
    finally:
        RUNTIME.reset()
    circuits = {labels: value for (name, labels), value in found.items() if name == "mailer_circuit_state"}
    assert circuits == {
        (("provider", provider), ("state", state)): float(state == expected)
        for provider, expected in (("sendgrid", "open"), ("mailgun", "closed"))
        for state in ("closed", "open", "half_open")
    }
    assert found[("mailer_provider_enabled", (("provider", "sendgrid"),))] == 1
    assert found[("mailer_provider_enabled", (("provider", "mailgun"),))] == 0
