"""The one place where an SES answer or a botocore failure becomes a classified ProviderError
(what providers/http.py is for the HTTP providers): retry SES, hand the message to the next
provider, or open SES's circuit while sending is paused."""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
)

from ..base import MessageRejected, ProviderError, ProviderLevelError, TransientError

NAME = "ses"
MAX_REASON_CHARS = 500

# SES will take the same request later: throttled (its sending rate), or its own trouble.
TRANSIENT_CODES = frozenset(
    {
        "TooManyRequestsException",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeoutException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalServerError",
        "InternalServiceError",
    }
)
# Refused for what the mail is (content, a recipient SES will not send to): another provider's
# rules may accept it, and SES itself is up.
MESSAGE_CODES = frozenset({"MessageRejected", "BadRequestException"})
# Paused sending, for the account or the configuration set: an operator's or AWS's decision that
# lasts. Every message would meet it, so SES's circuit opens (for SES_PAUSED_CIRCUIT_SECONDS)
# and this message goes to the next provider at once (mail/routing.py reads retry_after).
PAUSED_CODES = frozenset({"SendingPausedException"})
# Everything else is about our account or configuration, not this message, and does not pass
# with a retry: MailFromDomainNotVerifiedException, AccountSuspendedException, NotFoundException
# (a configuration set or identity that does not exist), LimitExceededException (the daily
# quota), AccessDenied*, UnrecognizedClient, expired or invalid tokens.


def classify(exc: Exception, paused_circuit_seconds: float) -> ProviderError:
    """The ProviderError for a failed SendEmail call."""
    if isinstance(exc, ClientError):
        return _for_answer(exc, paused_circuit_seconds)
    if isinstance(exc, ParamValidationError):
        # botocore refused to build the request from this message: SES's model does not take it.
        return MessageRejected(NAME, f"not a request SES's model accepts: {_cut(exc)}")
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return ProviderLevelError(NAME, f"no AWS credentials (the task role): {_cut(exc)}")
    if isinstance(exc, (ConnectionError, HTTPClientError)):
        # Connect and read timeouts, connection refused or closed, a broken response: SES may or
        # may not have the mail; like a timeout of an HTTP provider, worth another try.
        return TransientError(NAME, f"request failed: {_cut(exc)}")
    if isinstance(exc, BotoCoreError):
        return ProviderLevelError(NAME, f"request could not be made: {_cut(exc)}")
    raise TypeError(f"not an SES failure: {exc!r}")


def _for_answer(exc: ClientError, paused_circuit_seconds: float) -> ProviderError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    reason = _cut(f"{code}: {error.get('Message', '')}".strip())
    if code in TRANSIENT_CODES or (isinstance(status, int) and status >= 500):
        return TransientError(NAME, reason, status_code=status)
    if code in PAUSED_CODES:
        return ProviderLevelError(NAME, reason, status_code=status, retry_after=paused_circuit_seconds)
    if code in MESSAGE_CODES:
        return MessageRejected(NAME, reason, status_code=status)
    return ProviderLevelError(NAME, reason, status_code=status)


def _cut(value) -> str:
    return str(value)[:MAX_REASON_CHARS]
