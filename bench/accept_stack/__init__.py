"""The common accept stack issue 21 compares the API against: what a Django team writes when it
needs "an endpoint that queues mail", without Mailer.

A DRF APIView with a Serializer for the same body as bench/accept.py posts, authenticated by DRF's
TokenAuthentication in PostgreSQL (the API, too, looks its key up in PostgreSQL on every request),
whose valid requests become a Celery task's .delay() on the same SQS queue, answered 202 with the
task's id. Nothing of the message is written to the database: that is the difference, the API
keeps a record of each message it accepts. Served by gunicorn with the API's model, workers and
connections (bench/accept.py starts it)."""
