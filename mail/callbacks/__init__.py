"""Status callbacks to the clients' own endpoints (docs/api.md "Callbacks").

A message event that a client may want is recorded here, in the same transaction as the event
(`outbox.record`), as one Delivery row per endpoint that wants it; its own Celery task on its own
SQS queue (`task.py`) delivers it (`delivering.py`) through a sender that refuses private
addresses (`destination.py`, `sender.py`), signed the Standard Webhooks way (`signing.py`). The
delivery path and mail/status.py know only `outbox.record`."""
