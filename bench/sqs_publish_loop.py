"""The bare SQS publish rate for bench/accept.py: N threads calling SendMessage in a loop on one
boto3 client, nothing else. What the API cannot beat, since every 202 includes one such publish.

    .venv/bin/python bench/sqs_publish_loop.py --endpoint-url URL --queue-url URL \\
        --threads 8 --duration 6 --warmup 1 --body-bytes 2200

Prints one JSON line: messages, seconds, msgs/s, latency percentiles, errors. Its own process
(not threads of the benchmark script) so that it has a Python interpreter to itself, as each API
worker process does. The client is configured as the service's (mailer_project.settings
SQS_CLIENT_CONFIG: 3 s connect, 5 s read, two attempts), without importing Django."""

from __future__ import annotations

import argparse
import json
import string
import threading
import time

import boto3
from botocore.config import Config
from common import percentile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint-url", required=True)
    parser.add_argument("--queue-url", required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--duration", type=float, required=True, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of publishing before the measurement")
    parser.add_argument("--body-bytes", type=int, required=True, help="the size of each message body")
    args = parser.parse_args()

    client = boto3.client(
        "sqs",
        region_name="us-east-1",
        endpoint_url=args.endpoint_url,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=Config(
            connect_timeout=3,
            read_timeout=5,
            retries={"mode": "standard", "total_max_attempts": 2},
            max_pool_connections=max(10, args.threads),
        ),
    )
    # Base64-like text, as our task bodies are on the wire.
    alphabet = (string.ascii_letters + string.digits + "+/").encode()
    body = bytes(alphabet[n % len(alphabet)] for n in range(args.body_bytes)).decode()

    started = time.monotonic()
    measure_from = started + args.warmup
    measure_until = measure_from + args.duration
    latencies: list[list[float]] = [[] for _ in range(args.threads)]
    errors = [0] * args.threads

    def publish(index: int) -> None:
        mine = latencies[index]
        while (sent_at := time.monotonic()) < measure_until:
            try:
                client.send_message(QueueUrl=args.queue_url, MessageBody=body)
            except Exception:
                if sent_at >= measure_from:
                    errors[index] += 1
                continue
            if sent_at >= measure_from:
                mine.append(time.monotonic() - sent_at)

    threads = [threading.Thread(target=publish, args=(n,)) for n in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Calls that began inside the window count; the window is the duration asked for.
    all_latencies = [value for mine in latencies for value in mine]
    print(
        json.dumps(
            {
                "messages": len(all_latencies),
                "duration_s": args.duration,
                "per_second": round(len(all_latencies) / args.duration, 1),
                "p50_ms": round(percentile(all_latencies, 0.50) * 1000, 2) if all_latencies else None,
                "p95_ms": round(percentile(all_latencies, 0.95) * 1000, 2) if all_latencies else None,
                "p99_ms": round(percentile(all_latencies, 0.99) * 1000, 2) if all_latencies else None,
                "max_ms": round(max(all_latencies) * 1000, 2) if all_latencies else None,
                "errors": sum(errors),
                "body_bytes": args.body_bytes,
            }
        )
    )


if __name__ == "__main__":
    main()
