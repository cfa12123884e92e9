"""The API keys' admin (djangorestframework-api-key's own), with revocation going through
mail/keys.py revoke: ticking "revoked" on a key's page, or the list's action, also cancels the
mail the key still has waiting, and says how many."""

from django.contrib import admin, messages
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from . import keys

admin.site.unregister(APIKey)


@admin.register(APIKey)
class RevokingAPIKeyAdmin(APIKeyModelAdmin):
    actions = ["revoke"]

    def save_model(self, request, obj, form=None, change=False):
        revoking = change and obj.revoked and "revoked" in form.changed_data
        if revoking:
            obj.revoked = False  # keys.revoke sets it, and cancels what the key has waiting
        super().save_model(request, obj, form, change)
        if revoking:
            self._report(request, obj, keys.revoke(obj))

    @admin.action(description="Revoke the selected keys and cancel their pending mail")
    def revoke(self, request, queryset):
        for key in queryset:
            self._report(request, key, keys.revoke(key))
            self.log_change(request, key, "Revoked")

    def _report(self, request, key, canceled: int) -> None:
        self.message_user(
            request, f"Revoked {key.prefix} ({key.name}): canceled {canceled} pending message(s).", messages.SUCCESS
        )
