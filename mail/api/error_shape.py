"""The one JSON error shape (mail/api/errors.py describes it), in a module that needs no Django, so
that gunicorn's own answers (mailer_project/gunicorn_worker.py) take the same shape."""


def error_body(error_type: str, message: str, fields=None) -> dict:
    body = {"type": error_type, "message": message}
    if fields is not None:
        body["fields"] = fields
    return {"error": body}
