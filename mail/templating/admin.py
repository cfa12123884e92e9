"""The templates' admin: an editor for a template's draft with a live preview, its published
versions with a Restore button each, and a Publish button.

Every write goes through versions.py (create, edit, publish, restore), which holds the template's
lock; this module checks who may act, writes the admin's log entry (who, when) and tells the
operator what happened, as mail/admin_actions.py does for messages. The preview is a view of its
own (staff, CSRF-checked) that renders the unsaved form with the declared examples
(admin_forms.preview); mail/static/mail/template_preview.js calls it as the operator types.

The HTML is shown in a sandboxed iframe as a document of its own (preview_frame_view, posted into
the frame), not through srcdoc: a srcdoc document inherits the admin page's Content-Security-
Policy, which refuses inline styles, and a mail's styles are inline; the preview would show the
mail unstyled. Its own policy allows inline styles and nothing else: no script (and the CSP's
`sandbox`, besides the iframe's), no request out of it (a remote image would tell a third party
the operator looked), framed only by the admin."""

from __future__ import annotations

from csp.constants import NONE, SELF, UNSAFE_INLINE
from csp.decorators import csp
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.clickjacking import xframe_options_sameorigin

from ..exceptions import NothingToPublish, TemplateInvalid, TemplateNotFound
from . import versions
from .admin_forms import TemplateAddForm, TemplateEditForm, as_typed, editing_version, preview
from .models import Template

CONTENT = ("subject", "html", "text", "inline_css", "variables")
PREVIEW_FRAME_CSP = {
    "default-src": [NONE],
    "style-src": [UNSAFE_INLINE],
    "img-src": ["data:"],
    "font-src": ["data:"],
    "sandbox": True,
    "base-uri": [NONE],
    "form-action": [NONE],
    "frame-ancestors": [SELF],
}


@admin.register(Template)
class TemplateAdmin(admin.ModelAdmin):
    list_display = ["alias", "name", "team", "published_version", "updated_at"]
    list_select_related = ["team", "published"]
    list_filter = ["team"]
    search_fields = ["alias", "name"]

    class Media:
        css = {"all": ["mail/admin.css", "mail/template_editor.css"]}
        js = ["mail/template_preview.js"]  # a file: the admin's CSP allows no inline script

    @admin.display(description="published version", ordering="published__number")
    def published_version(self, obj):
        return obj.published.number if obj.published else "—"

    def get_fieldsets(self, request, obj=None):
        if obj is not None and not self.has_change_permission(request, obj):  # view only: the sources as text
            return [(None, {"fields": ["team", "alias", "name"]}), ("Draft", {"fields": [f"{f}_source" for f in CONTENT]})]
        return [
            (None, {"fields": ["team", "alias", "name"]}),
            ("Draft" if obj else "Content", {"fields": list(CONTENT)}),
        ]

    def get_readonly_fields(self, request, obj=None):
        return ["team", "alias"] if obj else []  # sends name it by alias: it is not renamed

    @admin.display(description="subject")
    def subject_source(self, obj):
        return self._source(obj, "subject")

    @admin.display(description="HTML")
    def html_source(self, obj):
        return self._source(obj, "html")

    @admin.display(description="text")
    def text_source(self, obj):
        return self._source(obj, "text")

    @admin.display(description="inline CSS")
    def inline_css_source(self, obj):
        return self._source(obj, "inline_css")

    @admin.display(description="variables")
    def variables_source(self, obj):
        return self._source(obj, "variables")

    def _source(self, obj, part: str):
        version = editing_version(obj)
        if version is None:
            return "—"
        value = as_typed(version.variables) if part == "variables" else getattr(version, part)
        return format_html('<pre class="template-source">{}</pre>', "yes" if value is True else "no" if value is False else value)

    def get_form(self, request, obj=None, change=False, **kwargs):
        base = TemplateEditForm if obj is not None else TemplateAddForm
        found = getattr(request, "template_problems_on_save", None)
        kwargs["form"] = type(base.__name__, (base,), {"problems_on_save": found})
        return super().get_form(request, obj, change, **kwargs)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except TemplateInvalid as exc:
            # versions.py refused on writing what the form had found valid (another operator
            # took the alias meanwhile): the page again, with the problems on their fields.
            request.template_problems_on_save = exc.problems
            return super().changeform_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        if change:
            versions.edit(obj, obj.name, form.changes())
            return
        content, variables = form.content(), form.cleaned_data["variables"]
        created = versions.create(obj.team_id, obj.alias, obj.name, content, variables, publish=False)
        obj.pk, obj.created_at, obj.updated_at = created.pk, created.created_at, created.updated_at
        obj._state.adding = False

    def add_view(self, request, form_url="", extra_context=None):
        return super().add_view(request, form_url, {**(extra_context or {}), **self._editor(request, None)})

    def change_view(self, request, object_id, form_url="", extra_context=None):
        template = self.get_object(request, unquote(object_id))
        if template is not None:
            extra_context = {**(extra_context or {}), **self._editor(request, template)}
        return super().change_view(request, object_id, form_url, extra_context)

    def _editor(self, request, template: Template | None) -> dict:
        """What the page shows beside the form: the preview's address, and for a template its
        draft's state, its published versions and the buttons the operator may use."""
        may_act = template is None or self.has_change_permission(request, template)
        shown = {
            "may_act": may_act,
            "preview_url": reverse("admin:templating_template_preview") if may_act else None,
            "preview_frame_url": reverse("admin:templating_template_preview_frame"),
        }
        if template is None:
            return shown
        editing = editing_version(template)
        return {
            **shown,
            "has_draft": editing is not None and editing.is_draft,
            "published_number": template.published.number if template.published else None,
            "published_versions": template.versions.filter(number__isnull=False).order_by("-number"),
        }

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("preview/", view(self.preview_view), name="templating_template_preview"),
            path(
                "preview/frame/",
                view(csp(PREVIEW_FRAME_CSP)(xframe_options_sameorigin(self.preview_frame_view))),
                name="templating_template_preview_frame",
            ),
            path("<path:object_id>/publish/", view(self.publish_view), name="templating_template_publish"),
            path("<path:object_id>/restore/<int:number>/", view(self.restore_view), name="templating_template_restore"),
            *super().get_urls(),
        ]

    def preview_view(self, request):
        """The form's subject, HTML, text and variables rendered with the declared examples, as
        JSON: for staff who may add or change templates, POST with the CSRF token only."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self._may_edit(request):
            return JsonResponse({"problems": {"__all__": ["You may not edit templates."]}}, status=403)
        # Problems are an answer too (the operator is mid-typing), not a failed request: 200.
        return JsonResponse(preview(request.POST))

    def preview_frame_view(self, request):
        """The same render's HTML part as a document for the preview's iframe, under
        PREVIEW_FRAME_CSP; the page shows the problems, so a render that fails is an empty page."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self._may_edit(request):
            raise PermissionDenied
        rendered = preview(request.POST).get("rendered")
        return HttpResponse(rendered["html"] if rendered else "", content_type="text/html; charset=utf-8")

    def _may_edit(self, request) -> bool:
        return self.has_add_permission(request) or self.has_change_permission(request)

    def publish_view(self, request, object_id):
        return self._act(request, object_id, self._publish)

    def restore_view(self, request, object_id, number):
        return self._act(request, object_id, lambda request, template: self._restore(request, template, number))

    def _act(self, request, object_id, act):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        template = self.get_object(request, unquote(object_id))
        if template is None:
            self.message_user(request, "There is no such template.", messages.WARNING)
            return HttpResponseRedirect(reverse("admin:templating_template_changelist"))
        if not self.has_change_permission(request, template):
            raise PermissionDenied
        act(request, template)
        return HttpResponseRedirect(reverse("admin:templating_template_change", args=[template.pk]))

    def _publish(self, request, template: Template) -> None:
        try:
            version = versions.publish(template)
        except NothingToPublish:
            self.message_user(
                request,
                "Nothing to publish: there is no saved draft (nothing was saved since the last publish, "
                "or another operator has just published it).",
                messages.WARNING,
            )
            return
        self.log_change(request, template, f"Published version {version.number}")
        self.message_user(request, f"Published version {version.number}: sends use it from now on.", messages.SUCCESS)

    def _restore(self, request, template: Template, number: int) -> None:
        try:
            versions.restore(template, number)
        except TemplateNotFound:
            self.message_user(request, f"There is no version {number} to restore.", messages.WARNING)
            return
        self.log_change(request, template, f"Restored version {number}")
        self.message_user(request, f"Restored version {number}: sends use it from now on.", messages.SUCCESS)
