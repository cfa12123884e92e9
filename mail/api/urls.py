"""The service's HTTP routes other than the admin's."""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import AllowAny

from . import callbacks, erasures, messages, probes, suppressions, templates, webhooks

# A template by its id or its alias (a slug).
TEMPLATE = r"(?P<template>[A-Za-z0-9_-]{1,100})"
UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

urlpatterns = [
    # With or without a trailing slash: a redirect would turn a client's POST into a GET. \Z, not $:
    # $ also matches before a final newline.
    re_path(r"^api/v1/messages/?\Z", messages.MessageCollectionView.as_view(), name="message-list"),
    re_path(r"^api/v1/messages/batch/?\Z", messages.MessageBatchView.as_view(), name="message-batch"),
    re_path(rf"^api/v1/messages/(?P<message_id>{UUID})/?\Z", messages.MessageDetailView.as_view(), name="message-detail"),
    re_path(r"^api/v1/suppressions/?\Z", suppressions.SuppressionCollectionView.as_view(), name="suppression-list"),
    # Any address (percent-encoded); the view validates it, so a bad one is a 400, not a 404.
    re_path(
        r"^api/v1/suppressions/(?P<address>[^/]+)/?\Z", suppressions.SuppressionDetailView.as_view(), name="suppression-detail"
    ),
    re_path(r"^api/v1/erasures/?\Z", erasures.ErasureCollectionView.as_view(), name="erasure-list"),
    re_path(rf"^api/v1/erasures/(?P<erasure_id>{UUID})/?\Z", erasures.ErasureDetailView.as_view(), name="erasure-detail"),
    re_path(r"^api/v1/webhooks/?\Z", callbacks.EndpointCollectionView.as_view(), name="webhook-list"),
    re_path(rf"^api/v1/webhooks/(?P<endpoint_id>{UUID})/?\Z", callbacks.EndpointDetailView.as_view(), name="webhook-detail"),
    re_path(rf"^api/v1/webhooks/(?P<endpoint_id>{UUID})/rotate-secret/?\Z", callbacks.RotateSecretView.as_view()),
    re_path(rf"^api/v1/webhooks/(?P<endpoint_id>{UUID})/deliveries/?\Z", callbacks.DeliveryCollectionView.as_view()),
    re_path(
        rf"^api/v1/webhooks/(?P<endpoint_id>{UUID})/deliveries/(?P<delivery_id>{UUID})/replay/?\Z",
        callbacks.ReplayView.as_view(),
    ),
    re_path(r"^api/v1/templates/?\Z", templates.TemplateCollectionView.as_view(), name="template-list"),
    re_path(rf"^api/v1/templates/{TEMPLATE}/?\Z", templates.TemplateDetailView.as_view(), name="template-detail"),
    re_path(rf"^api/v1/templates/{TEMPLATE}/versions/?\Z", templates.VersionCollectionView.as_view()),
    re_path(
        rf"^api/v1/templates/{TEMPLATE}/versions/(?P<version>[0-9]{{1,10}}|draft)/?\Z", templates.VersionDetailView.as_view()
    ),
    re_path(rf"^api/v1/templates/{TEMPLATE}/versions/(?P<version>[0-9]{{1,10}})/restore/?\Z", templates.RestoreView.as_view()),
    re_path(rf"^api/v1/templates/{TEMPLATE}/publish/?\Z", templates.PublishView.as_view()),
    re_path(rf"^api/v1/templates/{TEMPLATE}/render/?\Z", templates.RenderView.as_view()),
    path("api/schema/", SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[AllowAny]), name="schema"),
    # Its init script at ?script, not inline, so the page's Content-Security-Policy allows no
    # inline script (mailer_project/content_security.py).
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(
            url_name="schema",
            template_name="mail/swagger_ui.html",
            authentication_classes=[],
            permission_classes=[AllowAny],
        ),
        name="docs",
    ),
    path("webhooks/<str:provider>", webhooks.provider_webhook, name="provider-webhook"),
    # Also answered before the Host header is checked (probes.HostIndependentProbes).
    path("healthz", probes.healthz),
    path("readyz", probes.readyz),
    path("metrics", probes.metrics),
]
