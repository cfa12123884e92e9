from django.contrib import admin

from .models import Message, MessageEvent


class MessageEventInline(admin.TabularInline):
    model = MessageEvent
    extra = 0
    can_delete = False
    readonly_fields = ["type", "provider", "status_code", "detail", "created_at"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["id", "status", "subject", "from_email", "recipient_count", "provider", "attempts", "created_at"]
    list_filter = ["status", "provider", "created_at"]
    search_fields = ["id", "recipients", "subject"]
    inlines = [MessageEventInline]
    # Editing a message's record would make it disagree with what was sent.
    readonly_fields = [field.name for field in Message._meta.fields]

    def has_add_permission(self, request):
        return False
