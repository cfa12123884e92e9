"""What an operator does to messages in the admin: requeue a failed one and cancel a pending one,
from the message's own page (a button) or for a selection of the list (an action).

The rules are the core's and are not repeated here: requeue is mail/operator.py's (once-only,
its `requeued` event), cancel is mail/accepting.py's (the same function the API's cancel calls,
its `canceled` event). This module checks who may act, writes the admin's log entry (who, when)
and tells the operator what happened. Acting needs the model's *change* permission: the records
themselves stay read-only, and a staff user who may only view them may not act on them."""

from __future__ import annotations

from collections import Counter

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse

from . import accepting, operator
from .exceptions import NotCancelable, QueueUnavailable
from .models import Message

REQUEUE_SKIPPED = (
    "already queued again or sent, or no dead letter holds the content yet, or its large body has expired from S3 (after 15 days)"
)


def may_operate(model_admin: admin.ModelAdmin, request) -> bool:
    """The model's change permission, which the read-only admins never use for editing."""
    opts = model_admin.opts
    return request.user.has_perm(f"{opts.app_label}.{get_permission_codename('change', opts)}")


def why_not_cancelable(message: Message) -> str:
    """In the operator's words, why accepting.cancel would refuse this message."""
    if message.status == Message.Status.SENDING:
        return "a worker is sending it"
    if message.status in accepting.CANCELABLE:
        return "a worker has already tried it and it waits for its next attempt"
    if message.status == Message.Status.CANCELED:
        return "already canceled"
    if message.status == Message.Status.FAILED:
        return "it has failed (requeue it, or leave it failed)"
    return f"already sent ({message.status})"


def requeue_each(model_admin, request, items, message_of, log_text) -> None:
    """Requeue the message of each item, telling the operator what happened to each kind."""
    done = skipped = 0
    for item in items:
        message = message_of(item)
        try:
            requeued = message is not None and operator.requeue(message, request.user.get_username())
        except QueueUnavailable:
            model_admin.message_user(request, "The queue is unavailable; nothing more was requeued. Try again.", messages.ERROR)
            break
        if requeued:
            model_admin.log_change(request, item, log_text)
            done += 1
        else:
            skipped += 1
    model_admin.message_user(request, f"Requeued {done} message(s).", messages.SUCCESS)
    if skipped:
        model_admin.message_user(request, f"{skipped} skipped: {REQUEUE_SKIPPED}.", messages.WARNING)


def cancel_each(model_admin, request, selected) -> None:
    """Cancel each message, then say how many were canceled and why the others were not."""
    canceled, refused = 0, Counter()
    for message in selected:
        try:
            accepting.cancel(message, detail=f"by {request.user.get_username()}")
        except NotCancelable:
            refused[why_not_cancelable(message)] += 1  # cancel has read the message again
            continue
        model_admin.log_change(request, message, "Canceled")
        canceled += 1
    model_admin.message_user(request, f"Canceled {canceled} message(s).", messages.SUCCESS)
    if refused:
        reasons = "; ".join(f"{n} {reason}" for reason, n in sorted(refused.items(), key=lambda item: (-item[1], item[0])))
        model_admin.message_user(request, f"{refused.total()} could not be canceled: {reasons}.", messages.WARNING)


class MessageActions:
    """For MessageAdmin: the Requeue and Cancel buttons of a message's page (POST only, behind
    the admin's login and CSRF check), and the Cancel action of the list. Who may act is the
    admin's has_operate_permission (may_operate)."""

    def get_urls(self):
        return [
            path("<path:object_id>/requeue/", self.admin_site.admin_view(self.requeue_view), name="mail_message_requeue"),
            path("<path:object_id>/cancel/", self.admin_site.admin_view(self.cancel_view), name="mail_message_cancel"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        message = self.get_object(request, unquote(object_id))
        if message is not None:
            extra_context = {**(extra_context or {}), "operator_actions": self.offers(request, message)}
        return super().change_view(request, object_id, form_url, extra_context)

    def offers(self, request, message: Message) -> dict:
        """Which buttons the page shows, and why one that is missing is."""
        if not self.has_operate_permission(request):
            return {"allowed": False}
        requeueable, cancelable = operator.requeueable(message), accepting.cancelable(message)
        return {
            "allowed": True,
            "requeue": requeueable,
            "requeue_note": "Cannot be requeued yet: no dead letter holds its content (the dead-letter drainer records "
            "it shortly after SQS moves the task)."
            if message.status == Message.Status.FAILED and not requeueable
            else "",
            "cancel": cancelable,
            "cancel_note": "" if cancelable else f"Cannot be canceled: {why_not_cancelable(message)}.",
        }

    def requeue_view(self, request, object_id):
        return self._act(request, object_id, self._requeue)

    def cancel_view(self, request, object_id):
        return self._act(request, object_id, self._cancel)

    @admin.action(description="Cancel selected pending (queued or scheduled) messages", permissions=["operate"])
    def cancel(self, request, queryset):
        cancel_each(self, request, queryset)

    def _act(self, request, object_id, act):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_operate_permission(request):
            raise PermissionDenied
        message = self.get_object(request, unquote(object_id))
        if message is None:
            self.message_user(request, "There is no such message.", messages.WARNING)
            return HttpResponseRedirect(reverse("admin:mail_message_changelist"))
        act(request, message)
        return HttpResponseRedirect(reverse("admin:mail_message_change", args=[message.pk]))

    def _requeue(self, request, message: Message) -> None:
        try:
            requeued = operator.requeue(message, request.user.get_username())
        except QueueUnavailable:
            self.message_user(request, "The queue is unavailable; the message was not requeued. Try again.", messages.ERROR)
            return
        if requeued:
            self.log_change(request, message, "Requeued")
            self.message_user(request, "Requeued: it goes to the first provider again, with fresh retries.", messages.SUCCESS)
        else:
            self.message_user(request, f"Not requeued: {REQUEUE_SKIPPED}.", messages.WARNING)

    def _cancel(self, request, message: Message) -> None:
        try:
            accepting.cancel(message, detail=f"by {request.user.get_username()}")
        except NotCancelable:
            self.message_user(request, f"Not canceled: {why_not_cancelable(message)}.", messages.WARNING)
            return
        self.log_change(request, message, "Canceled")
        self.message_user(request, "Canceled: it will not be sent.", messages.SUCCESS)
