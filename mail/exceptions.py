"""HTTP errors of ours that DRF does not have. Kept apart from errors.py, which imports DRF's
views: the parser (loaded while DRF's views module initialises) raises these."""

from rest_framework import exceptions, status


def naming_message(index: int | None, sentence: str) -> str:
    """An error's sentence, led by the message's index when it is one of a batch's."""
    return sentence if index is None else f"Message {index}: {sentence[0].lower()}{sentence[1:]}"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The message is too large."
    default_code = "payload_too_large"


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The message could not be queued; it was not accepted. Retry later."
    default_code = "queue_unavailable"


class TooLateToCancel(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "not_cancelable"


class StorageUnavailable(ServiceUnavailable):
    default_detail = "The message could not be stored for delivery (S3); it was not accepted. Retry later."
    default_code = "storage_unavailable"

class RecipientSuppressed(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "recipient_suppressed"

    def __init__(self, detail: str, fields: dict):
        super().__init__(detail)
        self.fields = fields  # shaped like the request: {"to": ["... is suppressed ..."]}
