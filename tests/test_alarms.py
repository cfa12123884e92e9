"""The alarms and dashboards (deploy/cloudformation.yml, deploy/prometheus/alerts.yml,
deploy/grafana/mailer.json) against what the service really publishes, so that names cannot
drift apart: the CloudWatch metric filters' patterns run against log lines the code writes (a
real delivery in this process, through the real SQS-compatible server and the provider
simulator, formatted by the production JSON formatter), every alarm and dashboard widget names a
metric that a filter or AWS publishes, every threshold is a parameter, and every metric the
Prometheus rules and the Grafana panels use is one /metrics serves."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
import yaml
from cfnlint.decode import cfn_yaml
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from mail import dead_letters, delivery
from mail.delivery_task import DeliveryTask
from mail.exceptions import DeliveryFailed
from mail.runtime import RUNTIME
from mailer_project.log_format import formatter
from providers.circuit import Admission, BreakerConfig, Breakers, Outcome
from providers.registry import REGISTRY

from .stack import mail_body

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = cfn_yaml.load(str(ROOT / "deploy" / "cloudformation.yml"))
RESOURCES = TEMPLATE["Resources"]
NAMESPACE = {"Fn::Sub": "Mailer/${EnvironmentName}"}

# What AWS publishes, for the metrics the alarms and the dashboard read: namespace -> metric
# names -> the dimension sets used here (from AWS's documentation of each namespace).
AWS_METRICS = {
    "AWS/SQS": (
        {
            "ApproximateNumberOfMessagesVisible",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
            "ApproximateAgeOfOldestMessage",
        },
        [{"QueueName"}],
    ),
    "AWS/ApplicationELB": (
        {"RequestCount", "HTTPCode_Target_5XX_Count", "HTTPCode_ELB_5XX_Count", "TargetResponseTime", "UnHealthyHostCount"},
        [{"LoadBalancer"}, {"LoadBalancer", "TargetGroup"}],
    ),
    "ECS/ContainerInsights": ({"RunningTaskCount"}, [{"ClusterName", "ServiceName"}]),
    "AWS/ECS": ({"CPUUtilization", "MemoryUtilization"}, [{"ClusterName", "ServiceName"}]),
}


# --- CloudWatch Logs filter patterns, the JSON form the template uses ------------------------
TOKEN = re.compile(r'\s*(\|\||&&|\(|\)|=|\$\.[A-Za-z_][\w.]*|"[^"]*"|IS\s+(?:TRUE|FALSE|NULL))')


def matches(pattern: str, line: str) -> bool:
    """Whether CloudWatch Logs' JSON filter pattern `{ ... }` selects this log line. Only the
    subset the template uses, each documented by AWS ("Using filter patterns to match terms in
    JSON log events"): `$.field = "text"` (the field exists and is that string), `$.field IS TRUE`
    (exists and is JSON true), && and || with parentheses; mixing && and || without parentheses
    is refused rather than guessed at."""
    body = pattern.strip()
    assert body.startswith("{") and body.endswith("}"), pattern
    tokens, position, text = [], 0, body[1:-1].rstrip()
    while position < len(text):
        found = TOKEN.match(text, position)
        assert found, f"cannot read {text[position:]!r} in {pattern!r}"
        tokens.append(found.group(1))
        position = found.end()
    event = json.loads(line)

    def field(selector: str):
        value = event
        for key in selector[2:].split("."):
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return value

    def expression(i):
        values, operators = [], set()
        value, i = term(i)
        values.append(value)
        while i < len(tokens) and tokens[i] in ("&&", "||"):
            operators.add(tokens[i])
            value, i = term(i + 1)
            values.append(value)
        assert len(operators) <= 1, f"parenthesize && and || in {pattern!r}"
        return (any(values) if operators == {"||"} else all(values)), i

    def term(i):
        if tokens[i] == "(":
            value, i = expression(i + 1)
            assert tokens[i] == ")", pattern
            return value, i + 1
        selector, operator = tokens[i], tokens[i + 1]
        assert selector.startswith("$."), pattern
        value = field(selector)
        if operator.startswith("IS"):
            expected = {"TRUE": True, "FALSE": False, "NULL": None}[operator.split()[-1]]
            return value is expected, i + 2
        assert operator == "=" and tokens[i + 2].startswith('"'), pattern
        return value == tokens[i + 2][1:-1], i + 3

    result, end = expression(0)
    assert end == len(tokens), pattern
    return result


def test_the_pattern_reader_reads_the_syntax_the_template_uses():
    line = json.dumps({"outcome": "sent", "logger": "mail.delivery", "new": True, "count": 1})
    assert matches('{ $.outcome = "sent" }', line)
    assert not matches('{ $.outcome = "failed" }', line)
    assert not matches('{ $.missing = "sent" }', line)
    assert matches('{ $.logger = "x" || $.outcome = "sent" }', line)
    assert matches('{ $.outcome = "sent" && ($.logger = "x" || $.new IS TRUE) }', line)
    assert not matches('{ ($.logger = "x" || $.outcome = "sent") && $.new IS FALSE }', line)
    assert not matches("{ $.count IS TRUE }", line)
    with pytest.raises(AssertionError, match="parenthesize"):
        matches('{ $.logger = "x" || $.outcome = "sent" && $.new IS TRUE }', line)


# --- the log lines, written by the code that writes them -------------------------------------
class Lines(logging.Handler):
    """Every record, as the production JSON formatter writes it to stdout and CloudWatch."""

    def __init__(self):
        super().__init__(level=logging.INFO)
        self.setFormatter(formatter("json"))
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(self.format(record))


def next_task(sqs, queue_url, wait_seconds: int = 5) -> tuple[DeliveryTask, dict]:
    """The next task in the queue, taken off it."""
    received = sqs.receive_message(
        QueueUrl=queue_url, WaitTimeSeconds=wait_seconds, MaxNumberOfMessages=1, AttributeNames=["All"]
    )
    (sqs_message,) = received["Messages"]
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=sqs_message["ReceiptHandle"])
    return DeliveryTask.from_sqs_body(sqs_message["Body"]), sqs_message


@pytest.fixture
def service_lines(api_client, simulator, empty_queues, sqs, settings):
    """The lines of: a message retried once, then sent; one failed by both providers, then dead-lettered and recorded
    by the drainer (twice: the second is no new dead letter); both circuits opened and a message
    waiting for them; a circuit that opens, is probed and closes."""
    lines = Lines()
    logging.getLogger().addHandler(lines)
    RUNTIME.reset()
    try:
        sent = api_client.post("/api/v1/messages", data=json.dumps(mail_body("sent")), content_type="application/json")
        assert sent.status_code == 202
        settings.DELIVERY_RETRY_BASE_SECONDS = 1  # the retry's SQS delay: a second at most
        simulator.behave("sendgrid", status=503, times=1)
        delivery.run(next_task(sqs, empty_queues.queue_url)[0])
        delivery.run(next_task(sqs, empty_queues.queue_url)[0])

        simulator.behave("sendgrid", status=400)
        simulator.behave("mailgun", status=400)
        api_client.post("/api/v1/messages", data=json.dumps(mail_body("failed")), content_type="application/json")
        delivery.run(next_task(sqs, empty_queues.queue_url)[0])  # sendgrid refuses it: mailgun's turn
        failing, sqs_message = next_task(sqs, empty_queues.queue_url)
        with pytest.raises(DeliveryFailed):
            delivery.run(failing)
        # As SQS's redrive would move it; the drainer records it, and again after a crash.
        sqs.send_message(QueueUrl=empty_queues.dlq_url, MessageBody=sqs_message["Body"])
        assert dead_letters.drain_once(wait_seconds=1) == 1
        dead_letters.record(sqs_message | {"MessageId": dead_letters.DeadLetter.objects.get().sqs_message_id})

        # Open for 3 s (a 429's Retry-After): the message waits that long in SQS, and is taken
        # off the queue again so that no later test meets it.
        for provider in ("sendgrid", "mailgun"):
            RUNTIME.breakers().record(provider, Admission.PASS, Outcome(ok=False, latency=0.1, retry_after=3))
        api_client.post("/api/v1/messages", data=json.dumps(mail_body("waits")), content_type="application/json")
        delivery.run(next_task(sqs, empty_queues.queue_url)[0])
        next_task(sqs, empty_queues.queue_url, wait_seconds=10)

        now = [1000.0]
        breakers = Breakers(BreakerConfig(failure_run=1, cooldown_seconds=30), clock=lambda: now[0])
        breakers.record("sendgrid", Admission.PASS, Outcome(ok=False, latency=0.1))
        now[0] += 31
        admission, _ = breakers.admit("sendgrid")
        breakers.record("sendgrid", admission, Outcome(ok=True, latency=0.1))
    finally:
        logging.getLogger().removeHandler(lines)
        RUNTIME.reset()
    return [json.loads(line) | {"_line": line} for line in lines.lines]


def metric_filters() -> dict[str, dict]:
    return {name: r["Properties"] for name, r in RESOURCES.items() if r["Type"] == "AWS::Logs::MetricFilter"}


# Which of the service's lines each filter must select (by its "message"), and no other.
EXPECTED_SELECTIONS = {
    "AcceptedMetricFilter": ["message accepted"] * 3,
    "SentMetricFilter": ["message sent"],
    "SentByProviderMetricFilter": ["message sent"],
    "FailedMetricFilter": ["message failed: every provider exhausted"],
    "FailedByProviderMetricFilter": ["message failed: every provider exhausted"],
    "WaitingMetricFilter": ["every circuit left for the message is open; waiting in the queue"],
    "CircuitNotClosedMetricFilter": ["circuit open", "circuit open", "circuit open", "circuit half_open"],
    "CircuitClosedMetricFilter": ["circuit closed"],
    "DeadLetterMetricFilter": ["dead letter recorded"],
}


@pytest.mark.django_db(transaction=True)
def test_every_metric_filter_selects_the_lines_the_code_writes_and_no_other(service_lines):
    assert set(metric_filters()) == set(EXPECTED_SELECTIONS)
    for name, properties in metric_filters().items():
        assert properties["LogGroupName"] == {"Ref": "AppLogGroup"}
        selected = [line for line in service_lines if matches(properties["FilterPattern"], line["_line"])]
        assert [line["message"] for line in selected] == EXPECTED_SELECTIONS[name], name
        (transformation,) = properties["MetricTransformations"]
        assert transformation["MetricNamespace"] == NAMESPACE
        for dimension in transformation.get("Dimensions", []):
            # Dimensions come from a field every selected line carries, naming a real provider.
            assert dimension == {"Key": "Provider", "Value": "$.provider"}
            assert all(line["provider"] in REGISTRY.names() for line in selected), name
    sent = next(line for line in service_lines if line["message"] == "message sent")
    failed = next(line for line in service_lines if line["message"].startswith("message failed"))
    assert (sent["provider"], failed["provider"]) == ("sendgrid", "mailgun")


def published() -> set[tuple[str, str, frozenset]]:
    """(namespace, metric name, dimension names) of every metric the filters publish."""
    found = set()
    for properties in metric_filters().values():
        (transformation,) = properties["MetricTransformations"]
        dimensions = frozenset(d["Key"] for d in transformation.get("Dimensions", []))
        found.add(("Mailer", transformation["MetricName"], dimensions))
    return found


def check_metric(namespace, name: str, dimensions: dict[str, object]) -> None:
    if namespace in (NAMESPACE, "Mailer/${EnvironmentName}"):
        assert ("Mailer", name, frozenset(dimensions)) in published(), (name, dimensions)
        if "Provider" in dimensions:
            assert dimensions["Provider"] in REGISTRY.names()
        return
    names, dimension_sets = AWS_METRICS[namespace]
    assert name in names, (namespace, name)
    assert set(dimensions) in dimension_sets, (namespace, name, dimensions)


def alarms() -> dict[str, dict]:
    return {name: r["Properties"] for name, r in RESOURCES.items() if r["Type"] == "AWS::CloudWatch::Alarm"}


def parameters_used(value) -> set[str]:
    """Parameters a property refers to: by Ref, or by name inside a Fn::Sub."""
    if isinstance(value, dict):
        if "Ref" in value:
            return {value["Ref"]} & set(TEMPLATE["Parameters"])
        if "Fn::Sub" in value:
            text = value["Fn::Sub"] if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"][0]
            return set(re.findall(r"\$\{(\w+)\}", text)) & set(TEMPLATE["Parameters"])
        return set().union(*(parameters_used(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(parameters_used(v) for v in value)) if value else set()
    return set()


def test_every_alarm_reads_a_published_metric_notifies_the_topic_and_is_tuned_by_a_parameter():
    assert len(alarms()) >= 12
    for name, alarm in alarms().items():
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}] and alarm["OKActions"] == [{"Ref": "AlarmTopic"}], name
        assert "docs/runbook.md#" in alarm["AlarmDescription"], name
        if "Metrics" in alarm:
            stats = [m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m]
            for stat in stats:
                metric = stat["Metric"]
                check_metric(
                    metric["Namespace"], metric["MetricName"], {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}
                )
            (expression,) = [m for m in alarm["Metrics"] if m.get("ReturnData")]
            ids = {m["Id"] for m in alarm["Metrics"]}
            text = expression["Expression"]["Fn::Sub"]
            assert set(re.findall(r"\b([a-z][a-z0-9_]*)\b", re.sub(r"\$\{\w+\}", "", text))) - {"IF", "FILL"} <= ids
        else:
            dimensions = {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}
            check_metric(alarm["Namespace"], alarm["MetricName"], dimensions)
        assert tuning(alarm), f"{name}: no parameter tunes it"


def tuning(alarm: dict) -> set[str]:
    """The parameters an alarm's threshold, duration or expression comes from."""
    expressions = [m["Expression"] for m in alarm.get("Metrics", []) if "Expression" in m]
    return parameters_used([alarm.get("Threshold"), alarm.get("EvaluationPeriods"), *expressions]) - {"EnvironmentName"}


def test_the_alarm_parameters_defaults_are_within_their_own_bounds():
    used = set().union(*(tuning(a) for a in alarms().values()))
    for name in used:
        parameter = TEMPLATE["Parameters"][name]
        assert parameter["Type"] == "Number"
        default = float(parameter["Default"])
        assert float(parameter.get("MinValue", default)) <= default <= float(parameter.get("MaxValue", default)), name


def test_a_circuit_alarm_for_every_provider_the_code_has():
    circuit_alarms = [a for a in alarms().values() if a.get("MetricName") == "CircuitNotClosed"]
    assert sorted(a["Dimensions"][0]["Value"] for a in circuit_alarms) == sorted(REGISTRY.names())


def test_the_alarm_email_is_optional():
    assert TEMPLATE["Parameters"]["AlarmEmail"]["Default"] == ""
    subscription = RESOURCES["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert TEMPLATE["Conditions"]["HasAlarmEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}


def test_every_dashboard_widget_reads_a_published_metric():
    body = RESOURCES["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    # What CloudFormation substitutes: parameters and resources' attributes (numbers stay numbers).
    names = set(re.findall(r"\$\{([\w.:]+)\}", body))
    for name in names:
        assert name.split(".")[0] in RESOURCES or name in TEMPLATE["Parameters"] or name.startswith("AWS::"), name
    numeric = {name for name in names if TEMPLATE["Parameters"].get(name, {}).get("Type") == "Number"}
    dashboard = json.loads(re.sub(r"\$\{([\w.:]+)\}", lambda m: "1" if m.group(1) in numeric else m.group(1), body))
    titles = [widget["properties"]["title"] for widget in dashboard["widgets"]]
    for needed in (
        "accepted, sent and failed",
        "Circuits",
        "queue depth",
        "oldest",
        "Dead letters",
        "response time",
        "CPU",
        "memory",
    ):
        assert any(needed.lower() in title.lower() for title in titles), needed
    for widget in dashboard["widgets"]:
        for metric in widget["properties"]["metrics"]:
            *fields, _options = metric
            namespace, name, *pairs = fields
            dimensions = dict(zip(pairs[::2], pairs[1::2], strict=True))
            check_metric("Mailer/${EnvironmentName}" if namespace == "Mailer/EnvironmentName" else namespace, name, dimensions)


# --- Prometheus and Grafana against /metrics --------------------------------------------------
PROMQL_KEYWORDS = {"sum", "by", "on", "and", "or", "increase", "rate", "vector", "max", "min", "count", "group_left"}


def promql_metrics(expr: str) -> set[str]:
    """The metric names an expression reads (label matchers and strings removed first)."""
    bare = re.sub(r'"[^"]*"', "", re.sub(r"\{[^}]*\}", "", re.sub(r"\[[^\]]*\]", "", expr)))
    bare = re.sub(r"\b(by|on|without|ignoring|group_left|group_right)\s*\([^)]*\)", "", bare)
    names = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b", bare))
    return {n for n in names if n not in PROMQL_KEYWORDS and not re.fullmatch(r"\d+[smhd]?", n)}


def promql_labels(expr: str) -> set[str]:
    found = set()
    for matchers in re.findall(r"\{([^}]*)\}", expr):
        found |= set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers))
    for grouping in re.findall(r"\b(?:by|on)\s*\(([^)]*)\)", expr):
        found |= {label.strip() for label in grouping.split(",") if label.strip()}
    return found


# What Prometheus itself adds to every scrape of the job, beside what /metrics serves.
PROMETHEUS_OWN = {"up": {"job", "instance"}, "scrape_duration_seconds": {"job", "instance"}}


def served_metrics() -> dict[str, set[str]]:
    """{sample name: label names} of what GET /metrics answers, with a row of each kind behind it."""
    response = Client().get("/metrics")
    assert response.status_code == 200
    served: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            served.setdefault(sample.name, set()).update(sample.labels)
    return served


def expressions() -> list[str]:
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    alerts = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    grafana = json.loads((ROOT / "deploy" / "grafana" / "mailer.json").read_text())
    panels = [target["expr"] for panel in grafana["panels"] for target in panel.get("targets", [])]
    assert len(alerts) >= 9 and len(panels) >= 10
    return alerts + panels


@pytest.mark.django_db(transaction=True)
def test_every_metric_and_label_the_alerts_and_grafana_use_is_served(service_lines, provisioned_queues):
    served = served_metrics()
    for expr in expressions():
        for name in promql_metrics(expr):
            labels = PROMETHEUS_OWN.get(name, served.get(name))
            assert labels is not None, f"{name} (in {expr!r}) is not served by /metrics"
            # A label the expression filters or groups on (beyond Prometheus' own) is one of its series'.
        used = promql_labels(expr) - {"job", "instance"}
        available = set().union(*(PROMETHEUS_OWN.get(n, served.get(n, set())) for n in promql_metrics(expr)))
        assert used <= available, (expr, used - available)
