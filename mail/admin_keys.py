"""The API keys' admin (djangorestframework-api-key's own), with each key's team, scopes and
allowed networks on its page (mail/models.py ApiKeyProfile), the teams' own admin, and revocation
going through mail/keys.py revoke: ticking "revoked" on a key's page, or the list's action, also
cancels the mail the key still has waiting, and says how many."""

from django import forms
from django.contrib import admin, messages
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from . import keys
from .client_address import normalised_networks
from .models import ApiKeyProfile, Scope, Team, default_scopes

admin.site.unregister(APIKey)


class ApiKeyProfileForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=Scope.choices, widget=forms.CheckboxSelectMultiple, initial=default_scopes)
    allowed_networks = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One address or CIDR network (IPv4 or IPv6) per line; empty: usable from anywhere.",
    )

    class Meta:
        model = ApiKeyProfile
        fields = ["team", "scopes", "sandbox", "allowed_networks"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["allowed_networks"] = "\n".join(self.instance.allowed_networks)

    def clean_allowed_networks(self):
        try:
            return normalised_networks(line for line in self.cleaned_data["allowed_networks"].splitlines() if line.strip())
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc


class ApiKeyProfileInline(admin.StackedInline):
    model = ApiKeyProfile
    form = ApiKeyProfileForm
    can_delete = False
    min_num = 1  # a key without a team authenticates nowhere (mail/api/auth.py)
    max_num = 1
    verbose_name = verbose_name_plural = "team, scopes and networks"


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]


@admin.register(APIKey)
class RevokingAPIKeyAdmin(APIKeyModelAdmin):
    actions = ["revoke"]
    inlines = [ApiKeyProfileInline]
    list_display = [*APIKeyModelAdmin.list_display, "team"]
    list_select_related = ["profile__team"]
    list_filter = [*APIKeyModelAdmin.list_filter, "profile__team"]

    @admin.display(description="team", ordering="profile__team__name")
    def team(self, obj):
        profile = getattr(obj, "profile", None)
        return profile.team if profile else "—"

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
