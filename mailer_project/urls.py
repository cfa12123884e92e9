from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("mail.api.urls")),
]

handler400 = "mail.api.errors.bad_request"
handler403 = "mail.api.errors.permission_denied"
handler404 = "mail.api.errors.not_found"
handler500 = "mail.api.errors.server_error"
