"""Templates (issue 19): what rendering costs, and what it adds to an accept. Not a test: a
measurement, written to docs/benchmarks/templates.json.

    .venv/bin/python bench/templates.py            # about two minutes

1. Renders per second of a typical confirmation: 20 kB of HTML (a styled table of order lines,
   a dozen of them looped over, the usual header and footer), its text part and subject, in this
   process through mail/templating/rendering.py (the compiled template cached, as in the API),
   and the first render's cost with compiling. Medians of 3 runs.
2. Accept latency with and without it: one API process (`manage.py serve`, consumer mode,
   production defaults but the rate limit raised), POST /api/v1/messages one at a time, the same
   message sent as a template and with the same subject, HTML and text given inline, the two
   interleaved so that both see the same machine; timed from send to answer."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import requests
from common import DEFAULT_DATABASE_URL, ROOT, local_servers, machine, manage, now, service, summary

RESULTS = ROOT / "docs" / "benchmarks" / "templates.json"

STYLE = "".join(
    f".c{n} {{ color: #{n:03d}; padding: {n % 7}px; font-family: Helvetica, Arial, sans-serif; }}\n" for n in range(200)
)
HTML = (
    "<!doctype html><html><head><meta charset='utf-8'><style>" + STYLE + "</style></head><body>"
    "<table class='c1' width='600'><tr><td class='c2'><h1>Thank you for your order, {{ customer.name }}</h1>"
    "<p class='c3'>Order {{ order_number }} placed on {{ placed_on|date('%d %B %Y') }}.</p></td></tr>"
    "<tr><td><table class='c4'>{% for line in lines %}<tr class='{{ loop.cycle(\"c5\", \"c6\") }}'>"
    "<td class='c7'>{{ line.sku }}</td><td class='c8'>{{ line.name }}</td><td class='c9'>{{ line.quantity }}</td>"
    "<td class='c10'>{{ line.price|round(2) }} {{ currency }}</td></tr>{% endfor %}</table></td></tr>"
    "<tr><td class='c11'>Total: <strong>{{ total|round(2) }} {{ currency }}</strong></td></tr>"
    "{% if customer.vip %}<tr><td class='c12'>As a member you earned {{ (total / 10)|int }} points.</td></tr>{% endif %}"
    "<tr><td class='c13'><p>Ship to: {{ customer.address }}</p>"
    + "<p class='c14'>Questions? Reply to this mail or call us. We are happy to help with your order. </p>" * 20
    + "</td></tr></table></body></html>"
)
TEXT = (
    "Thank you for your order, {{ customer.name }}.\nOrder {{ order_number }}, {{ placed_on|date('%d %B %Y') }}\n"
    "{% for line in lines %}{{ line.quantity }} x {{ line.name }} ({{ line.sku }}): {{ line.price }} {{ currency }}\n{% endfor %}"
    "Total: {{ total|round(2) }} {{ currency }}\n"
)
SUBJECT = "Your order {{ order_number }} ({{ lines|length }} items)"
VARIABLES = [
    {"name": "customer", "type": "object", "example": {"name": "Ann", "vip": True, "address": "1 Main St"}},
    {"name": "order_number", "type": "string", "example": "A-1"},
    {"name": "placed_on", "type": "date", "example": "2026-12-03"},
    {"name": "lines", "type": "list", "example": []},
    {"name": "total", "type": "number", "example": 0},
    {"name": "currency", "type": "string", "required": False, "default": "EUR", "example": "EUR"},
]
VALUES = {
    "customer": {"name": "Ann Example", "vip": True, "address": "1 Main Street, Springfield"},
    "order_number": "A-10042",
    "placed_on": "2026-12-03",
    "lines": [
        {"sku": f"SKU-{n:04d}", "name": f"Product number {n} <deluxe>", "quantity": n % 3 + 1, "price": 9.5 + n}
        for n in range(12)
    ],
    "total": 321.5,
}


def render_rate(seconds: float) -> dict:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailer_project.settings")
    import django  # noqa: PLC0415 - the settings need the environment above first

    django.setup()
    from mail.templating import rendering, sandbox, variables  # noqa: PLC0415 - after django.setup()

    content = rendering.Content(subject=SUBJECT, html=HTML, text=TEXT)
    declared = variables.declared([{"required": "default" not in v, **v} for v in VARIABLES])
    rendering.check(content, declared)
    sandbox.compiled.cache_clear()
    started = time.perf_counter()
    rendered = rendering.render(content, declared, VALUES)
    first = time.perf_counter() - started
    rates = []
    for _ in range(3):
        count, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            rendering.render(content, declared, VALUES)
            count += 1
        rates.append(count / elapsed)
    return {
        "html_bytes": len(rendered.html.encode()),
        "source_html_bytes": len(HTML.encode()),
        "first_render_with_compile_ms": round(first * 1000, 2),
        "renders_per_second_median_of_3": round(statistics.median(rates)),
        "runs": [round(rate) for rate in rates],
    }


def accept_latency(sqs: str, database_url: str, count: int) -> dict:
    with local_servers(sqs, database_url) as servers:
        env = {**servers.env, "API_RATE_LIMIT": "1000000/min"}
        manage(env, "provision_queues")
        key = manage(env, "create_api_key", "bench templates").strip()
        with service(env, "consumer", servers.log_dir / "serve.log") as base:
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {key}"
            alias = f"confirmation-{int(time.time())}"
            created = session.post(
                f"{base}/api/v1/templates",
                json={"alias": alias, "subject": SUBJECT, "html": HTML, "text": TEXT, "variables": VARIABLES, "publish": True},
                timeout=30,
            )
            created.raise_for_status()
            rendered = session.post(f"{base}/api/v1/templates/{alias}/render", json={"variables": VALUES}, timeout=30).json()
            envelope = {"from": "Shop <shop@example.com>", "to": "ann@example.com"}
            bodies = {
                "template": {**envelope, "template": {"alias": alias, "variables": VALUES}},
                "inline": {**envelope, "subject": rendered["subject"], "html": rendered["html"], "text": rendered["text"]},
            }
            timings: dict[str, list[float]] = {name: [] for name in bodies}
            for n in range(count + 20):
                for name, body in bodies.items():
                    started = time.perf_counter()
                    response = session.post(f"{base}/api/v1/messages", json=body, timeout=30)
                    elapsed = time.perf_counter() - started
                    assert response.status_code == 202, response.text
                    if n >= 20:  # the first ones warm the process up
                        timings[name].append(elapsed)
        return {"sqs_server": servers.sqs_server, **{name: summary(values) for name, values in timings.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sqs", choices=["fauxqs", "moto"], default="fauxqs")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--render-seconds", type=float, default=5.0)
    parser.add_argument("--accepts", type=int, default=300, help="messages of each kind")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    os.environ.setdefault("DATABASE_URL", args.database_url)
    results = {"measured_at": now(), "machine": machine(), "render": render_rate(args.render_seconds)}
    print(json.dumps(results["render"]), file=sys.stderr)
    results["accept"] = accept_latency(args.sqs, args.database_url, args.accepts)
    print(json.dumps(results["accept"]), file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
