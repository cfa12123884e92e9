"""The service's domain errors: what a use case refuses, in its own terms. No Django here; the API
maps each to an HTTP answer in one place (mail/api/errors.py), the worker and the admin act on
them directly.

An error about one message of a batch carries the message's `position` as a field, set where the
batch is accepted (`at`), so the API can name the message at fault."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


class MessageRefused(Exception):
    """A message the service does not accept; nothing of it is kept."""

    position: int | None = None  # its index, when it is one of a batch's messages
    field: str | None = None  # the request's field it is about, when the refusal names its parts

    def at(self, position: int) -> MessageRefused:
        """The same refusal, naming the message's position in its batch."""
        return self._copy(position=position)

    def under(self, field: str) -> MessageRefused:
        """The same refusal, about this field of the request (a send's `template`)."""
        return self._copy(field=field)

    def _copy(self, **changes) -> MessageRefused:
        located = type(self).__new__(type(self))
        located.__dict__.update(self.__dict__, **changes)
        located.args = self.args
        return located


class TooLargeForQueue(MessageRefused):
    def __init__(self, size: int, limit: int):
        super().__init__(f"the message needs {size} bytes in the queue; the limit is {limit}")
        self.size = size
        self.limit = limit


@dataclass(frozen=True)
class Suppressed:
    """Why an address is on the suppression list, as the client is told."""

    reason: str  # "hard bounce", "complaint"
    since: date


class RecipientsSuppressed(MessageRefused):
    def __init__(self, by_field: dict[str, list[str]], why: dict[str, Suppressed]):
        self.by_field = by_field  # "to"/"cc"/"bcc" -> the suppressed addresses as the client gave them
        self.why = why  # by lower-case address
        super().__init__(f"suppressed recipients: {', '.join(a for group in by_field.values() for a in group)}")


class StorageUnavailable(MessageRefused):
    """S3 did not answer as it should: try again later. Refuses a message at accept time; makes a
    delivery wait when its body cannot be read."""


class BodyMissing(Exception):
    """The stored body is gone (deleted, or expired by the lifecycle rule): it cannot be sent."""


class QueueUnavailable(Exception):
    """The queue did not take the message: it is not accepted (202 means SQS has it)."""


class NotCancelable(Exception):
    def __init__(self, status: str):
        super().__init__(f"the message is {status}; only a scheduled or queued message no worker has taken can be canceled")
        self.status = status


class DeliveryFailed(Exception):
    """Every provider is exhausted. Raised on the attempt that failed the message and on each
    redelivery of its task, so the task is never acked and the redrive policy moves it to the
    dead-letter queue."""


class Replayed(Exception):
    """A webhook's single-use token seen before: the same signed request sent again."""


class TemplateNotFound(MessageRefused):
    """A send names a template (or a version of one) the team does not have, or one never published."""


class VariablesInvalid(MessageRefused):
    """A send's template variables do not match the declaration: problems by variable name."""

    def __init__(self, problems: dict[str, list[str]]):
        self.problems = problems
        super().__init__(f"template variables: {', '.join(sorted(problems))}")


class RenderFailed(MessageRefused):
    """Rendering a template with a send's values failed (an undefined attribute, a limit, a line
    break in the subject): `part` is subject, html or text."""

    def __init__(self, part: str, reason: str):
        self.part = part
        self.reason = reason
        super().__init__(f"{part}: {reason}")


class TemplateInvalid(Exception):
    """A template's source or declarations that cannot be saved: problems by field."""

    def __init__(self, problems: dict[str, list[str]]):
        self.problems = problems
        super().__init__("; ".join(f"{field}: {' '.join(found)}" for field, found in problems.items()))


class NothingToPublish(Exception):
    """Publish found no draft: another publish took it, or nothing was edited since."""


class DeclarationsInvalid(Exception):
    """A template's variable declarations that break the rules: one sentence per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))
