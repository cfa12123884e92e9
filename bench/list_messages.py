"""The message list at a million rows (issue 18): how long GET /api/v1/messages takes with each
filter, on a page and deep in the list. Not a test: a measurement, written to
docs/benchmarks/list.json.

    .venv/bin/python bench/list_messages.py       # a few minutes, most of it loading the rows once

One API process (`MAILER_MODE=consumer`, production defaults) on PostgreSQL. The rows are loaded
once (devtools/synthetic_messages.py: one INSERT ... SELECT generate_series) into their own
database, 900,000 for the measured team and 100,000 for another, then ANALYZEd; a later run
reuses them. Each case is requested REQUESTS times one at a time after a warm-up, timed from send
to answer, with a read-only key of the team."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import requests
from common import ROOT, local_servers, machine, manage, now, service, summary

from devtools import synthetic_messages

RESULTS = ROOT / "docs" / "benchmarks" / "list.json"
DATABASE_URL = "postgres://postgres@127.0.0.1:5432/mailerbench_list"
TEAM, OTHER_TEAM = "bench-list", "bench-list-other"
ROWS, TEAM_SHARE = 1_000_000, 0.9
REQUESTS = 50


def load(database_url: str) -> tuple[int, str]:
    """The rows, unless a run before loaded them; (the team's id, a key id of it for the rows)."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        team_id, key_id = connection.execute(
            "SELECT t.id, p.api_key_id FROM mail_team t JOIN mail_apikeyprofile p ON p.team_id = t.id WHERE t.name = %s LIMIT 1",
            (TEAM,),
        ).fetchone()
        other_id = connection.execute("SELECT id FROM mail_team WHERE name = %s", (OTHER_TEAM,)).fetchone()[0]
        present = connection.execute("SELECT count(*) FROM mail_message").fetchone()[0]
        if present < ROWS:
            started = time.perf_counter()
            with connection.cursor() as cursor:
                synthetic_messages.insert(
                    cursor,
                    api_key=key_id,
                    team=team_id,
                    other_team=other_id,
                    newest=datetime.now(UTC),
                    count=ROWS - present,
                    first=present + 1,
                )
            connection.execute("VACUUM ANALYZE mail_message")
            print(f"loaded {ROWS - present} rows in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        return team_id, key_id


def cases(newest: datetime) -> dict[str, dict]:
    return {
        "no filter": {},
        "status": {"status": "bounced"},
        "status and provider": {"status": "failed", "provider": "ses"},
        "provider": {"provider": "mailgun"},
        "recipient (1 match)": {"recipient": "user777@example.com"},
        "recipient (900 matches)": {"recipient": "copy7@example.com"},
        "tag (1 %)": {"tag": "tag42"},
        "tag (33 %)": {"tag": "kind1"},
        "metadata (1 match)": {"metadata": "order_id:4242"},
        "metadata (5 %)": {"metadata": "shard:3"},
        "created, one hour": {
            "created_after": (newest - timedelta(hours=100)).isoformat(),
            "created_before": (newest - timedelta(hours=99)).isoformat(),
        },
        "sent, one hour": {
            "sent_after": (newest - timedelta(hours=50)).isoformat(),
            "sent_before": (newest - timedelta(hours=49)).isoformat(),
        },
    }


def timed(session: requests.Session, url: str, params: dict) -> tuple[list[float], dict]:
    session.get(url, params=params, timeout=60).raise_for_status()  # warm-up
    timings = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        response = session.get(url, params=params, timeout=60)
        timings.append(time.perf_counter() - started)
        response.raise_for_status()
    return timings, response.json()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DATABASE_URL)
    parser.add_argument(
        "--sqs", choices=["fauxqs", "moto"], default="moto", help="the SQS/S3-compatible server (unused by reads)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    with local_servers(args.sqs, args.database_url) as servers:
        # Every case's requests, one after another, are well over the default limit of a key.
        env = {**servers.env, "API_RATE_LIMIT": "1000000/min"}
        manage(env, "create_api_key", "bench list rows", "--team", TEAM, "--scope", "messages:send")
        manage(env, "create_api_key", "bench list other", "--team", OTHER_TEAM, "--scope", "messages:send")
        key = manage(env, "create_api_key", "bench list", "--team", TEAM, "--scope", "messages:read").strip()
        load(args.database_url)
        results = {
            "what": "seconds from sending GET /api/v1/messages to its answer, one request at a time",
            "measured_at": now(),
            "machine": machine(),
            "rows": ROWS,
            "team_rows": int(ROWS * TEAM_SHARE),
            "requests_per_case": REQUESTS,
            "cases": {},
        }
        with service(env, "consumer", servers.log_dir / "serve.log") as base:
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {key}"
            url = f"{base}/api/v1/messages"
            first = session.get(url, params={"limit": 1}, timeout=60).json()["data"][0]
            newest = datetime.fromisoformat(first["created_at"].replace("Z", "+00:00"))
            for label, params in cases(newest).items():
                for limit in (20, 100):
                    timings, page = timed(session, url, {**params, "limit": limit})
                    results["cases"][f"{label}, limit {limit}"] = {"returned": len(page["data"]), **summary(timings)}
                    print(label, limit, json.dumps(results["cases"][f"{label}, limit {limit}"]), file=sys.stderr)
            # Deep in the list: the page after one half-way down, reached by its cursor.
            middle = session.get(
                url, params={"limit": 100, "created_before": (newest - timedelta(seconds=ROWS // 2)).isoformat()}, timeout=60
            ).json()
            timings, page = timed(session, url, {"limit": 100, "after": middle["next_cursor"]})
            results["cases"]["half-way down (after a cursor), limit 100"] = {"returned": len(page["data"]), **summary(timings)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out} (service logs in {servers.log_dir})", file=sys.stderr)


if __name__ == "__main__":
    main()
