"""gunicorn's gevent and gthread workers, answering the requests gunicorn itself refuses (a request line too
long: 414, too many or too large header fields: 431, an unreadable request: 400, ...) in the
service's JSON error shape (mail/api/errors.py) instead of gunicorn's HTML page.

gunicorn decides the status, logs the refusal and writes its access-log line (its worker's
handle_error); this worker lets it, catches the HTML answer it writes,
and sends the same status with a JSON body instead. Use: --worker-class
mailer_project.gunicorn_worker.JsonErrorsGeventWorker (or JsonErrorsThreadWorker: WEB_SERVER_MODEL)."""

import json

from gunicorn import util
from gunicorn.workers.ggevent import GeventWorker
from gunicorn.workers.gthread import ThreadWorker

from mail.api.error_shape import error_body

# The sentence for each status gunicorn answers itself; it never echoes the refused request.
SENTENCES = {
    400: ("bad_request", "The request could not be read as HTTP."),
    403: ("permission_denied", "Request forbidden."),
    414: ("request_line_too_long", "The request line (method, path and query) is too long."),
    417: ("expectation_failed", "The Expect header is not supported."),
    431: ("header_fields_too_large", "Too many header fields, or one too large."),
    500: ("internal_error", "Internal error; it has been logged."),
    501: ("not_implemented", "This transfer coding is not supported."),
}


class _CapturedAnswer:
    """The client's socket, but what is sent on it is kept instead (everything else passes)."""

    def __init__(self, sock):
        self._sock = sock
        self.sent = b""

    def sendall(self, data: bytes) -> None:
        self.sent += data

    def __getattr__(self, name):
        return getattr(self._sock, name)


def json_answer(html_answer: bytes) -> bytes:
    """The same status line as gunicorn's answer, with a JSON body in the service's shape."""
    status_line = html_answer.split(b"\r\n", 1)[0].decode("latin-1")  # "HTTP/1.1 414 URI Too Long"
    _, status, reason = status_line.split(" ", 2)
    error_type, sentence = SENTENCES.get(int(status), ("bad_request", reason + "."))
    body = json.dumps(error_body(error_type, sentence)).encode()
    head = f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode("latin-1") + body


class JsonErrors:
    """Mixed into a gunicorn worker class, before it."""

    def handle_error(self, req, client, addr, exc):
        captured = _CapturedAnswer(client)
        super().handle_error(req, captured, addr, exc)
        if not captured.sent:
            return
        try:
            util.write_nonblock(client, json_answer(captured.sent))
        except Exception:
            self.log.debug("Failed to send error message.")


class JsonErrorsGeventWorker(JsonErrors, GeventWorker):
    pass


class JsonErrorsThreadWorker(JsonErrors, ThreadWorker):
    pass
