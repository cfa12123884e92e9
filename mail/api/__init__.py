"""The HTTP side: the public API (messages), the providers' webhooks, the probes, and what they
share (validation, idempotency, authentication and rate limits, the one error shape). Views parse,
call one use case of mail/, and answer; domain errors become HTTP answers in errors.py alone."""
