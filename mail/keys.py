"""Making an API key (its team, scopes, expiry and networks), and revoking one: the key stops authenticating, and the mail it still has waiting (scheduled,
or queued and not yet taken by a worker) is canceled, since revocation usually means the key
leaked or its client is gone, and mail sent in its name is what the operator wants stopped.
Canceled rather than held: the client's own cancel already guarantees that the worker drops the
task (mail/accepting.py cancel), each message's history says why, and the client can send again
with a new key; a hold would need a release path nothing else uses.

Every revocation goes through revoke(): the admin's form and action (mail/admin_keys.py) call it."""

from collections.abc import Iterable
from datetime import datetime

from django.db import transaction
from rest_framework_api_key.models import APIKey

from . import accepting
from .callbacks.models import Endpoint
from .client_address import normalised_networks
from .exceptions import NotCancelable
from .models import DEFAULT_TEAM_NAME, ApiKeyProfile, Message, Scope, Team, default_scopes

REVOKED_DETAIL = "the API key was revoked"
SANDBOX_REFUSED_SCOPES = (Scope.SUPPRESSIONS_MANAGE, Scope.ERASURES_MANAGE)


def revoke(api_key) -> int:
    """Revoke the key and cancel its pending mail; how many were canceled. Again on a revoked key,
    it cancels what an earlier, interrupted call left (or a request in flight at the revocation
    accepted)."""
    type(api_key).objects.filter(pk=api_key.pk).update(revoked=True)
    api_key.revoked = True
    # Its callback endpoints stop too: a leaked key's endpoint must not go on hearing of the mail.
    Endpoint.objects.filter(api_key=api_key, enabled=True).update(enabled=False, disabled_reason=REVOKED_DETAIL)
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


def create(
    name: str,
    team: Team | None = None,
    scopes: Iterable[str] | None = None,
    expires: datetime | None = None,
    networks: Iterable[str] = (),
    sandbox: bool = False,
) -> tuple[APIKey, str]:
    """A new key and the secret a client sends (shown once; only its hash is kept), in `team` (the
    default team when None), with `scopes` (default_scopes when None); a sandbox key's mail is
    never sent (providers/sandbox.py). Raises ValueError for an unknown scope or a malformed network."""
    scopes = list(dict.fromkeys(default_scopes() if scopes is None else scopes))
    if sandbox:
        # A sandbox key tests sending; the team's live list and people's data are not its to change.
        scopes = [scope for scope in scopes if scope not in SANDBOX_REFUSED_SCOPES]
    unknown = [scope for scope in scopes if scope not in Scope.values]
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}; the scopes are {', '.join(Scope.values)}")
    networks = normalised_networks(networks)
    with transaction.atomic():
        team = team or Team.objects.get_or_create(name=DEFAULT_TEAM_NAME)[0]
        api_key, secret = APIKey.objects.create_key(name=name, expiry_date=expires)
        ApiKeyProfile.objects.create(api_key=api_key, team=team, scopes=scopes, allowed_networks=networks, sandbox=sandbox)
    return api_key, secret
