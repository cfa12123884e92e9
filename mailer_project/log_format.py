"""The log line's format, one formatter for the app's and gunicorn's lines: JSON (the default, for
CloudWatch and any log search) or, for a person at a terminal (`make run`), one readable line:

    14:07:36 INFO  mail.delivery  message sent  message_id=6c0e... provider=sendgrid outcome=sent

LOG_FORMAT chooses: "json" or "text". It is read from the environment here as well as by the
settings, because gunicorn builds its formatter from mailer_project/gunicorn_logging.json."""

import logging
import os
import re

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

FORMATS = ("json", "text")
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"
JSON_NAMES = {"asctime": "time", "levelname": "level", "name": "logger", "process": "pid"}
# What a record carries beyond the standard attributes: the `extra` of a log call.
STANDARD_ATTRIBUTES = frozenset(RESERVED_ATTRS) | {"taskName", "color_message"}


# Secrets never reach a log line, whoever wrote it: a query-string parameter named like one (a
# client that put its key in the URL is refused with 401, but gunicorn's access line and Django's
# request warning would both carry the URL), and anything shaped like an API key
# (djangorestframework-api-key's "<8-character prefix>.<32-character secret>") wherever it appears.
# A value ends where a URL's parameter, a quoted string or a JSON string does.
SECRET_PARAMETER = re.compile(r"(?i)((?:^|[?&;\s])(?:api[_-]?key|key|token|access[_-]?token|secret|password)=)[^&;\s\"'\\<>]*")
API_KEY_SHAPED = re.compile(r"\b[A-Za-z0-9]{8}\.[A-Za-z0-9]{32}\b")
REDACTED = "[redacted]"


def redact(line: str) -> str:
    return API_KEY_SHAPED.sub(REDACTED, SECRET_PARAMETER.sub(rf"\1{REDACTED}", line))


class TextFormatter(logging.Formatter):
    def __init__(self):
        super().__init__("%(asctime)s %(levelname)-5s %(name)s  %(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = [
            f"{key}={value}" for key, value in record.__dict__.items() if key not in STANDARD_ATTRIBUTES and value is not None
        ]
        if not extra:
            return redact(line)
        head, newline, traceback = line.partition("\n")
        return redact(f"{head}  {' '.join(extra)}{newline}{traceback}")


class RedactingJsonFormatter(JsonFormatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def formatter(style: str | None = None) -> logging.Formatter:
    """For logging's dictConfig ("()": "mailer_project.log_format.formatter")."""
    style = style or os.environ.get("LOG_FORMAT", "json")
    if style == "text":
        return TextFormatter()
    return RedactingJsonFormatter(JSON_FIELDS, rename_fields=JSON_NAMES)


class HostRefusedAsWarning(logging.Filter):
    """For django.security.DisallowedHost: a request naming a host we do not serve is the
    client's mistake, answered 400, not an error of ours. Django logs it at ERROR with a
    traceback, which anyone could use to page the operator; it is kept at WARNING, one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True
