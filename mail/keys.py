"""Revoking an API key: the key stops authenticating, and the mail it still has waiting (scheduled,
or queued and not yet taken by a worker) is canceled, since revocation usually means the key
leaked or its client is gone, and mail sent in its name is what the operator wants stopped.
Canceled rather than held: the client's own cancel already guarantees that the worker drops the
task (mail/accepting.py cancel), each message's history says why, and the client can send again
with a new key; a hold would need a release path nothing else uses.

Every revocation goes through revoke(): the admin's form and action (mail/admin_keys.py) call it."""

from . import accepting
from .exceptions import NotCancelable
from .models import Message

REVOKED_DETAIL = "the API key was revoked"


def revoke(api_key) -> int:
    """Revoke the key and cancel its pending mail; how many were canceled. Again on a revoked key,
    it cancels what an earlier, interrupted call left (or a request in flight at the revocation
    accepted)."""
    type(api_key).objects.filter(pk=api_key.pk).update(revoked=True)
    api_key.revoked = True
    return cancel_pending(api_key)


def cancel_pending(api_key) -> int:
    """Cancel the key's messages no worker has claimed; those claimed meanwhile go their way."""
    canceled = 0
    pending = Message.objects.filter(api_key=api_key, status__in=(Message.Status.SCHEDULED, Message.Status.QUEUED), attempts=0)
    for message in pending.iterator():
        try:
            accepting.cancel(message, detail=REVOKED_DETAIL)
        except NotCancelable:
            continue
        canceled += 1
    return canceled
