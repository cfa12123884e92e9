"""The operator's view. Records that would lie if edited are read-only; what an operator does
(requeue, cancel, discard) is written to Django's admin log with who and when. The message
buttons and actions are in mail/admin_actions.py, the overview page in mail/admin_overview.py."""

import json

from django.contrib import admin
from django.db.models import Count
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from . import admin_overview, operator, routing
from .admin_actions import MessageActions, may_operate, requeue_each
from .admin_keys import RevokingAPIKeyAdmin  # noqa: F401  (registered on import: revoking a key cancels its pending mail)
from .models import DeadLetter, Erasure, Message, MessageEvent, ProviderSetting, Suppression


def message_link(message_id) -> str:
    """A link to the message's own admin page, or a dash."""
    if message_id is None:
        return "—"
    return format_html('<a href="{}">{}</a>', reverse("admin:mail_message_change", args=[message_id]), message_id)


class ReadOnlyAdmin(admin.ModelAdmin):
    """View only: no add, edit or delete buttons. Records of what happened are not edited, and
    deleting one would erase the audit trail; the actions are how an operator acts."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_operate_permission(self, request):
        """Requeue, cancel, discard: the model's change permission (mail/admin_actions.py)."""
        return may_operate(self, request)


class MessageEventInline(admin.TabularInline):
    model = MessageEvent
    extra = 0
    can_delete = False
    readonly_fields = ["type", "provider", "status_code", "recipient", "detail", "occurred_at", "created_at"]
    fields = readonly_fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Message)
class MessageAdmin(MessageActions, ReadOnlyAdmin):
    list_display = [
        "id",
        "team",
        "status",
        "sandbox",
        "subject",
        "from_email",
        "recipient_count",
        "provider",
        "attempts",
        "created_at",
    ]
    list_select_related = ["team"]
    list_filter = ["status", "sandbox", "provider", "team", "created_at"]
    search_fields = ["id", "recipients", "subject"]
    inlines = [MessageEventInline]
    actions = ["requeue", "cancel"]

    @admin.action(description="Requeue selected failed messages with fresh retries", permissions=["operate"])
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
        css = {"all": ["mail/admin.css"]}  # a stylesheet, not inline styles: the admin's CSP allows it

    @admin.display(description="message")
    def message_link(self, obj):
        return message_link(obj.message_id)

    @admin.display(description="reason")
    def reason_start(self, obj):
        return obj.reason[:120]

    @admin.display(description="payload")
    def payload_view(self, obj):
        content = json.dumps(obj.task_args, indent=2, ensure_ascii=False) if obj.task_args is not None else obj.raw_body
        return format_html('<pre class="payload">{}</pre>', content[:200_000])

    @admin.action(description="Requeue the messages of the selected dead letters", permissions=["operate"])
    def requeue(self, request, queryset):
        requeue_each(
            self, request, queryset.select_related("message"), lambda dead_letter: dead_letter.message, "Requeued its message"
        )

    @admin.action(description="Discard the selected dead letters", permissions=["operate"])
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
        extra_context = {**(extra_context or {}), "health": routing.provider_health()}
        return super().changelist_view(request, extra_context)


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    """Addresses the API refuses a team's mail to. Deleting one lets mail to it through again (after
    the recipient fixed their mailbox, or a complaint made in error); the admin's history keeps who."""

    list_display = ["address", "team", "reason", "provider", "message_link", "created_at"]
    list_select_related = ["team"]
    list_filter = ["reason", "team", "provider", "created_at"]
    search_fields = ["address"]
    readonly_fields = ["address", "team", "reason", "provider", "message_link", "detail", "created_at"]
    fields = readonly_fields

    @admin.display(description="message")
    def message_link(self, obj):
        return message_link(obj.message_id)

    def has_add_permission(self, request, obj=None):
        return False  # added by the providers' bounce and complaint events, or by the team's API

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Erasure)
class ErasureAdmin(ReadOnlyAdmin):
    """Erasures the teams asked for, for audit: who asked, when, and when it was done, but never
    whose: the SHA-256 of the address lets an auditor check a given address was erased."""

    list_display = [
        "id",
        "team",
        "status",
        "messages_erased",
        "suppression_erased",
        "requested_by",
        "requested_at",
        "finished_at",
    ]
    list_select_related = ["team"]
    list_filter = ["status", "team"]
    search_fields = ["=address_sha256"]
    fields = [
        "id",
        "team",
        "status",
        "address_sha256",
        "erase_suppression",
        "messages_erased",
        "suppression_erased",
        "requested_by",
        "requested_at",
        "finished_at",
    ]
    readonly_fields = fields


admin_overview.add_to(admin.site)
