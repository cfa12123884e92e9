"""Content-Security-Policy on every answer (django-csp): the strict CONTENT_SECURITY_POLICY by
default, which fits JSON (nothing may load, nothing may frame it), and BROWSER_PAGES_CSP on the
pages made for a browser (the admin, /api/docs/), which load only this service's own scripts,
styles and images. Values and why: settings.py, "Content-Security-Policy"."""

from csp.middleware import CSPMiddleware, PolicyParts
from django.conf import settings


class ContentSecurityPolicy(CSPMiddleware):
    def get_policy_parts(self, request, response, report_only: bool = False) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        browser_page = request.path_info.startswith(settings.BROWSER_PAGES_PREFIXES)
        if not report_only and parts.config is None and browser_page:
            parts.config = settings.BROWSER_PAGES_CSP
        return parts
