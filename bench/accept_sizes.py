"""Accept latency by message size (issue 8): how long POST /api/v1/messages takes for a 1 KB, a
500 KB and a 20 MB message, the larger ones through the S3 claim-check. Not a test: a
measurement, written to docs/benchmarks/accept-sizes.json.

    .venv/bin/python bench/accept_sizes.py        # about a minute

One API process (`MAILER_MODE=consumer`, production defaults) on PostgreSQL, with the SQS/S3
server on loopback; requests one at a time from this process, timed from send to answer."""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
import uuid
from pathlib import Path

import requests
from common import DEFAULT_DATABASE_URL, ROOT, local_servers, machine, manage, now, service, summary

RESULTS = ROOT / "docs" / "benchmarks" / "accept-sizes.json"
# (label, attachment bytes, requests): the larger, the fewer, to keep the run short.
SIZES = [("1 KB", 0, 200), ("500 KB", 500_000, 50), ("20 MB", 20_000_000, 10)]


def body(attachment_bytes: int) -> dict:
    message = {"from": "bench@example.com", "to": "rcpt@example.com", "subject": "size", "text": "x" * 1000}
    if attachment_bytes:
        content = base64.b64encode(os.urandom(attachment_bytes)).decode()
        message["attachments"] = [{"filename": "data.bin", "content": content, "content_type": "application/octet-stream"}]
    return message


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--sqs", choices=["fauxqs", "moto"], default="fauxqs", help="the SQS/S3-compatible server")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    with local_servers(args.sqs, args.database_url) as servers:
        queue = f"bench-accept-{uuid.uuid4().hex[:8]}"
        env = {**servers.env, "SQS_QUEUE_NAME": queue, "SQS_DLQ_NAME": f"{queue}-dlq"}
        manage(env, "provision_queues")
        key = manage(env, "create_api_key", "bench accept").strip()
        results = {
            "what": "seconds from sending POST /api/v1/messages to its 202, one request at a time",
            "measured_at": now(),
            "machine": machine(),
            "sqs_server": servers.sqs_server,
            "large_message_bytes": 768 * 1024,
            "sizes": {},
        }
        with service(env, "consumer", servers.log_dir / "serve.log") as base:
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {key}"
            for label, attachment_bytes, count in SIZES:
                payload = json.dumps(body(attachment_bytes)).encode()
                headers = {"Content-Type": "application/json"}
                session.post(f"{base}/api/v1/messages", data=payload, headers=headers, timeout=120).raise_for_status()  # warm-up
                timings, stored = [], 0
                for _ in range(count):
                    started = time.perf_counter()
                    response = session.post(f"{base}/api/v1/messages", data=payload, headers=headers, timeout=120)
                    timings.append(time.perf_counter() - started)
                    response.raise_for_status()
                    message = session.get(f"{base}{response.headers['Location']}", timeout=30).json()
                    stored += message["events"][0]["detail"].startswith("body stored in S3")
                results["sizes"][label] = {"request_bytes": len(payload), "through_s3": f"{stored}/{count}", **summary(timings)}
                print(label, json.dumps(results["sizes"][label]), file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out} (service logs in {servers.log_dir})", file=sys.stderr)


if __name__ == "__main__":
    main()
