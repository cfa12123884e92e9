"""The admin's overview page, /admin/overview/: the last day's accepted, sent and failed messages
per provider as small charts, the queues' depths and each provider's circuit, on one page for an
operator who has just been paged. What it reads is mail/overview.py's; the charts' geometry is
mail/admin_chart.py's."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path

from . import overview
from .admin_chart import panel
from .models import Message

TEMPLATE = "admin/mail/overview.html"
INDEX_TEMPLATE = "admin/mail/index.html"


def add_to(site: admin.AdminSite) -> None:
    """Serve the overview at <admin>/overview/ on this site and link it from the site's index.

    Django builds its default site from settings (AdminConfig.default_site); adding the page to
    that site's own URLs, rather than swapping the site class, leaves the settings and the
    project's URLs as they are. Called once, when the admin modules are discovered."""
    site_urls = site.get_urls

    def get_urls():
        return [path("overview/", site.admin_view(lambda request: overview_view(site, request)), name="overview"), *site_urls()]

    site.get_urls = get_urls
    site.index_template = INDEX_TEMPLATE


def overview_view(site: admin.AdminSite, request):
    """Whoever may view messages may see their counts; nothing here acts."""
    opts = Message._meta
    if not request.user.has_perm(f"{opts.app_label}.{get_permission_codename('view', opts)}"):
        raise PermissionDenied
    activity = overview.activity()
    panels = [panel("Accepted (all providers)", "accepted", activity.hours, {"accepted": activity.accepted})]
    panels += [panel(provider, provider, activity.hours, series) for provider, series in activity.by_provider.items()]
    depths = overview.queue_depths()
    roles = {settings.SQS_QUEUE_NAME: "delivery", settings.SQS_DLQ_NAME: "dead letters"}
    context = {
        **site.each_context(request),
        "title": "Overview",
        "since": activity.since,
        "panels": panels,
        "queues": [{"name": name, "role": roles.get(name, ""), "states": states} for name, states in depths.items()],
        "health": overview.circuits(),
    }
    return TemplateResponse(request, TEMPLATE, context)
