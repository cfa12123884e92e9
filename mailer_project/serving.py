"""The WSGI application gunicorn serves (mail/management/commands/serve.py): Django's, with a
deadline for reading the request body.

The API runs gunicorn's gevent workers, so a client that sends its body a byte at a time holds a
greenlet, not one of a few threads, and cannot starve the others. The deadline bounds what it
holds even so: the body must arrive within REQUEST_BODY_TIMEOUT_SECONDS plus a second per
REQUEST_BODY_MIN_BYTES_PER_SECOND of it (mod_reqtimeout's rule), or the answer is 408 and the
connection is closed.

The body is read whole before Django sees the request: authentication may take a pooled database
connection (a key not in the process's cache) and a request holds what it took until it ends,
so a slow upload read lazily would hold one of DATABASE_POOL_SIZE connections for its whole
deadline, and a handful would leave every other request of the process waiting for the pool. Webhooks are the exception: their view refuses a
request by its headers before reading anything, and uses the database only after the body is in.
Slow headers are the load balancer's to absorb: the ALB forwards a request only once its headers
are complete (docs/security.md)."""

from __future__ import annotations

import io
import json
import time

import gevent
from django.conf import settings
from django.core import signals

from mail.api.error_shape import error_body
from mailer_project.wsgi import application as django_application


class BodyTimeout(gevent.Timeout):
    """Not an Exception: Django's handler must not turn it into a 500 on the way out."""


class DeadlineInput:
    """wsgi.input whose reads all end by one deadline, set when the request arrived."""

    def __init__(self, stream, deadline: float):
        self.stream, self.deadline = stream, deadline

    def _within_deadline(self, read, *args):
        with BodyTimeout(max(0.0, self.deadline - time.monotonic())):
            return read(*args)

    def read(self, *args):
        return self._within_deadline(self.stream.read, *args)

    def readline(self, *args):
        return self._within_deadline(self.stream.readline, *args)


class BodyReadDeadline:
    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        length = environ.get("CONTENT_LENGTH") or ""
        if not length.isdigit() or int(length) == 0:
            return self.app(environ, start_response)
        seconds = settings.REQUEST_BODY_TIMEOUT_SECONDS + int(length) / settings.REQUEST_BODY_MIN_BYTES_PER_SECOND
        body = DeadlineInput(environ["wsgi.input"], time.monotonic() + seconds)
        try:
            if environ.get("PATH_INFO", "").startswith("/webhooks/") or int(length) > settings.MAX_REQUEST_BYTES:
                environ["wsgi.input"] = body  # read by the app, if at all, within the same deadline
            else:
                environ["wsgi.input"] = io.BytesIO(body.read(int(length)))
            return self.app(environ, start_response)
        except BodyTimeout:
            # What Django would have done at the end of the request: the database connection goes
            # back to its pool.
            signals.request_finished.send(sender=self.__class__)
            message = f"The request body did not arrive within {seconds:.0f} seconds."
            start_response("408 Request Timeout", [("Content-Type", "application/json"), ("Connection", "close")])
            return [json.dumps(error_body("request_timeout", message)).encode()]


# Django's application as mailer_project/wsgi.py makes it, with its refusal to start without a key.
application = BodyReadDeadline(django_application)
