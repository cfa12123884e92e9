"""The common stack issue 10 compares against: what a Django team would write without Mailer.

django-anymail's SendGrid backend, called through Django's send_mail from a plain Celery task,
on the same SQS-compatible server and provider simulator as Mailer's own processor. Celery's
defaults are kept where a team would keep them; only what any SQS deployment sets (the
broker, its region, the same long-poll options as Mailer's) is set here."""
