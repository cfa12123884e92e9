"""The operator's view of callbacks: endpoints (why one was disabled), every delivery and
attempt, a replay of chosen deliveries, and a replay of everything that failed in a time window."""

from datetime import timedelta

from django import forms
from django.contrib import admin
from django.template.response import TemplateResponse
from django.utils import timezone

from . import endpoints, outbox
from .models import Attempt, Delivery, Endpoint


class ReplayWindowForm(forms.Form):
    since = forms.DateTimeField(help_text="UTC, e.g. 2026-12-02 08:00")
    until = forms.DateTimeField(help_text="UTC")


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    list_display = ["url", "api_key", "enabled", "disabled_reason", "failing_since", "created_at"]
    list_filter = ["enabled"]
    search_fields = ["url", "description", "api_key__name", "api_key__prefix"]
    # The sealed secrets are never shown, even encrypted.
    fields = ["api_key", "url", "description", "event_types", "enabled", "disabled_reason", "failing_since", "created_at"]
    readonly_fields = ["api_key", "url", "event_types", "disabled_reason", "failing_since", "created_at"]
    actions = ["replay_failed_in_window"]

    def has_add_permission(self, request):
        return False  # a client's own, through the API

    def save_model(self, request, obj, form, change):
        # Through endpoints.update, as the API's PATCH: re-enabling clears why it was disabled
        # and since when it failed, or the next failure would disable it again at once.
        was = Endpoint.objects.get(pk=obj.pk)
        changes = {name: form.cleaned_data[name] for name in form.changed_data}
        obj.enabled = was.enabled
        endpoints.update(obj, **changes)

    @admin.action(description="Replay every failed delivery in a time window", permissions=["change"])
    def replay_failed_in_window(self, request, queryset):
        now = timezone.now()
        form = ReplayWindowForm(
            request.POST if "apply" in request.POST else None, initial={"since": now - timedelta(days=1), "until": now}
        )
        if form.is_valid():
            count = outbox.replay_failed(queryset, form.cleaned_data["since"], form.cleaned_data["until"])
            for endpoint in queryset:
                self.log_change(
                    request,
                    endpoint,
                    f"Replayed failed deliveries from {form.cleaned_data['since']} to {form.cleaned_data['until']}",
                )
            self.message_user(request, f"Replayed {count} failed deliveries.")
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Replay failed deliveries",
            "form": form,
            "endpoints": queryset,
        }
        return TemplateResponse(request, "callbacks/replay_window.html", context)


class AttemptInline(admin.TabularInline):
    model = Attempt
    extra = 0
    can_delete = False
    readonly_fields = ["number", "started_at", "outcome", "status_code", "latency_ms", "error", "response_excerpt"]
    fields = readonly_fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["created_at", "event_type", "endpoint", "status", "attempts", "next_attempt_at", "last_error"]
    list_filter = ["status", "event_type", "created_at"]
    search_fields = ["event_id", "message__id", "endpoint__url"]
    readonly_fields = [
        "endpoint",
        "message",
        "event_id",
        "event_type",
        "status",
        "attempts",
        "next_attempt_at",
        "queued_at",
        "last_error",
        "created_at",
        "payload",
    ]
    inlines = [AttemptInline]
    actions = ["replay"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Replay the selected deliveries", permissions=["change"])
    def replay(self, request, queryset):
        count = outbox.replay(queryset)
        for delivery in queryset:
            self.log_change(request, delivery, "Replayed")
        self.message_user(request, f"Replayed {count} deliveries.")
