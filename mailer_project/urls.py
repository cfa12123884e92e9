from django.contrib import admin
from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny

from mail import views

urlpatterns = [
    path("admin/", admin.site.urls),
    re_path(r"^api/v1/messages/?$", views.MessageCollectionView.as_view(), name="message-list"),
    re_path(r"^api/v1/messages/batch/?$", views.MessageBatchView.as_view(), name="message-batch"),
    re_path(
        r"^api/v1/messages/(?P<message_id>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})/?$",
        views.MessageDetailView.as_view(),
        name="message-detail",
    ),
    path("api/schema/", SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[AllowAny]), name="schema"),
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(url_name="schema", authentication_classes=[], permission_classes=[AllowAny]),
        name="docs",
    ),
    path("webhooks/sendgrid", views.sendgrid_webhook, name="webhook-sendgrid"),
    path("webhooks/mailgun", views.mailgun_webhook, name="webhook-mailgun"),
    path("healthz", views.healthz),
    path("readyz", views.readyz),
    path("metrics", views.metrics),
]

handler400 = "mail.errors.bad_request"
handler403 = "mail.errors.permission_denied"
handler404 = "mail.errors.not_found"
handler500 = "mail.errors.server_error"
