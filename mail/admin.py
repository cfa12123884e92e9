"""The operator's view. Records that would lie if edited are read-only; what an operator does
(requeue, discard) is written to Django's admin log with who and when."""

import json

from django.contrib import admin, messages
from django.db.models import Count
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from . import operator, routing
from .admin_keys import RevokingAPIKeyAdmin  # noqa: F401  (registered on import: revoking a key cancels its pending mail)
from .exceptions import QueueUnavailable
from .models import DeadLetter, Message, MessageEvent, ProviderSetting, Suppression


def message_link(message_id) -> str:
    """A link to the message's own admin page, or a dash."""
    if message_id is None:
        return "—"
    return format_html('<a href="{}">{}</a>', reverse("admin:mail_message_change", args=[message_id]), message_id)


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
        model_admin.message_user(
            request,
            f"{skipped} skipped: already queued again or sent, or no dead letter holds the content yet, or its "
            "large body has expired from S3 (after 15 days).",
            messages.WARNING,
        )


class ReadOnlyAdmin(admin.ModelAdmin):
    """View only: no add, edit or delete buttons. Records of what happened are not edited, and
    deleting one would erase the audit trail; the actions are how an operator acts."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class MessageEventInline(admin.TabularInline):
    model = MessageEvent
    extra = 0
    can_delete = False
    readonly_fields = ["type", "provider", "status_code", "recipient", "detail", "occurred_at", "created_at"]
    fields = readonly_fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = ["id", "status", "subject", "from_email", "recipient_count", "provider", "attempts", "created_at"]
    list_filter = ["status", "provider", "created_at"]
    search_fields = ["id", "recipients", "subject"]
    inlines = [MessageEventInline]
    actions = ["requeue"]

    @admin.action(description="Requeue selected failed messages with fresh retries")
    def requeue(self, request, queryset):
        requeue_each(self, request, queryset, lambda message: message, "Requeued")

    def changelist_view(self, request, extra_context=None):
        # The 3 a.m. question first: how many messages in each state, last hour and last day.
        now = timezone.now()
        counts = {}
        for label, since in (("last hour", now - timezone.timedelta(hours=1)), ("last day", now - timezone.timedelta(days=1))):
            rows = Message.objects.filter(created_at__gte=since).values("status").annotate(n=Count("id"))
            counts[label] = ", ".join(f"{row['status']} {row['n']}" for row in rows.order_by("status")) or "none"
        extra_context = {
            **(extra_context or {}),
            "title": f"Messages — last hour: {counts['last hour']} · last day: {counts['last day']}",
        }
        return super().changelist_view(request, extra_context)


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin):
    list_display = ["first_seen_at", "status", "message_link", "reason_start", "receive_count", "task_name"]
    list_filter = ["status", "first_seen_at"]
    search_fields = ["sqs_message_id", "message__id", "reason"]
    readonly_fields = ["payload_view"]
    actions = ["requeue", "discard"]

    class Media:
        css = {"all": ["mail/admin.css"]}

    @admin.display(description="message")
    def message_link(self, obj):
        return message_link(obj.message_id)

    @admin.display(description="reason")
    def reason_start(self, obj):
        return obj.reason[:120]

    @admin.display(description="payload")
    def payload_view(self, obj):
        content = json.dumps(obj.task_args, indent=2, ensure_ascii=False) if obj.task_args is not None else obj.raw_body
        return format_html("<pre class='payload'>{}</pre>", content[:200_000])  # styled by mail/admin.css

    @admin.action(description="Requeue the messages of the selected dead letters")
    def requeue(self, request, queryset):
        requeue_each(
            self, request, queryset.select_related("message"), lambda dead_letter: dead_letter.message, "Requeued its message"
        )

    @admin.action(description="Discard the selected dead letters")
    def discard(self, request, queryset):
        done = 0
        for dead_letter in queryset:
            if operator.discard(dead_letter, request.user.get_username()):
                self.log_change(request, dead_letter, "Discarded")
                done += 1
        self.message_user(request, f"Discarded {done} dead letter(s).")


@admin.register(ProviderSetting)
class ProviderSettingAdmin(admin.ModelAdmin):
    """Switch a provider off or reorder them; workers follow within seconds, no restart.
    Every change is in the admin's history (who, when)."""

    list_display = ["name", "enabled", "priority", "updated_at"]
    list_editable = ["enabled", "priority"]

    def changelist_view(self, request, extra_context=None):
        # Beside the switches, what the workers' circuit breakers think of each provider now.
        health = routing.provider_health()
        extra_context = {
            **(extra_context or {}),
            "provider_health": health["providers"],
            "health_shared": health["shared"],
            "health_enabled": health["enabled"],
        }
        return super().changelist_view(request, extra_context)


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    """Addresses the API refuses mail to. Deleting one lets mail to it through again (after the
    recipient fixed their mailbox, or a complaint made in error); the admin's history keeps who."""

    list_display = ["address", "reason", "provider", "message_link", "created_at"]
    list_filter = ["reason", "provider", "created_at"]
    search_fields = ["address"]
    readonly_fields = ["address", "reason", "provider", "message_link", "detail", "created_at"]
    fields = readonly_fields

    @admin.display(description="message")
    def message_link(self, obj):
        return message_link(obj.message_id)

    def has_add_permission(self, request, obj=None):
        return False  # added by the providers' bounce and complaint events

    def has_change_permission(self, request, obj=None):
        return False
