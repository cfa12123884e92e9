"""The log line's format, one formatter for the app's and gunicorn's lines: JSON (the default, for
CloudWatch and any log search) or, for a person at a terminal (`make run`), one readable line:

    14:07:36 INFO  mail.delivery  message sent  message_id=6c0e... provider=sendgrid outcome=sent

LOG_FORMAT chooses: "json" or "text". It is read from the environment here as well as by the
settings, because gunicorn builds its formatter from mailer_project/gunicorn_logging.json."""

import logging
import os

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

FORMATS = ("json", "text")
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"
JSON_NAMES = {"asctime": "time", "levelname": "level", "name": "logger", "process": "pid"}
# What a record carries beyond the standard attributes: the `extra` of a log call.
STANDARD_ATTRIBUTES = frozenset(RESERVED_ATTRS) | {"taskName", "color_message"}


class TextFormatter(logging.Formatter):
    def __init__(self):
        super().__init__("%(asctime)s %(levelname)-5s %(name)s  %(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = [
            f"{key}={value}" for key, value in record.__dict__.items() if key not in STANDARD_ATTRIBUTES and value is not None
        ]
        if not extra:
            return line
        head, newline, traceback = line.partition("\n")
        return f"{head}  {' '.join(extra)}{newline}{traceback}"


def formatter(style: str | None = None) -> logging.Formatter:
    """For logging's dictConfig ("()": "mailer_project.log_format.formatter")."""
    style = style or os.environ.get("LOG_FORMAT", "json")
    if style == "text":
        return TextFormatter()
    return JsonFormatter(JSON_FIELDS, rename_fields=JSON_NAMES)
