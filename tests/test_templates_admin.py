"""The templates' admin through the Django test client against the real database: the preview view
(rendered with the declared examples, problems by part, who may ask), the editor's add and change
forms (writes through mail/templating/versions.py, problems on the form), and the Publish and
Restore buttons with their audit entries. The browser's side is tests/test_templates_browser.py."""

import json
import threading

import pytest
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.auth.models import Permission
from django.db import connection, transaction
from django.test import Client

from mail.models import Team
from mail.templating import versions
from mail.templating.models import Template
from mail.templating.rendering import Content
from mail.templating.variables import declared

from .support import wait_until

PREVIEW = "/admin/templating/template/preview/"
PREVIEW_FRAME = "/admin/templating/template/preview/frame/"
GREETING = [{"name": "first_name", "type": "string", "required": True, "example": "Ada"}]


@pytest.fixture
def team(db):
    return Team.objects.create(name="bookings")


@pytest.fixture
def template(team):
    content = Content(subject="Hello {{ first_name }}", html="<p>Hello {{ first_name }}</p>", text="Hello {{ first_name }}")
    return versions.create(team.pk, "welcome", "Welcome", content, declared(GREETING), publish=False)


def fields(subject="Hi {{ first_name }}", html="<p>Hi {{ first_name }}</p>", text="", variables=GREETING) -> dict:
    return {"subject": subject, "html": html, "text": text, "variables": json.dumps(variables)}


def notices(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def logged(template, message) -> int:
    return LogEntry.objects.filter(object_id=str(template.pk), change_message=message).count()


def test_preview_renders_the_parts_with_the_declared_examples_and_escapes_them_in_html(operator):
    variables = [{"name": "first_name", "type": "string", "example": "<script>alert(1)</script>"}]
    response = operator.post(PREVIEW, fields(text="Hi {{ first_name }}", variables=variables))

    assert response.status_code == 200
    assert response.json() == {
        "examples": {"first_name": "<script>alert(1)</script>"},
        "rendered": {
            "subject": "Hi <script>alert(1)</script>",  # a header, not HTML: shown as text by the page
            "html": "<p>Hi &lt;script&gt;alert(1)&lt;/script&gt;</p>",
            "text": "Hi <script>alert(1)</script>",
        },
    }


def test_a_variable_with_a_default_is_optional_and_previews_with_its_example(operator):
    variables = [{"name": "city", "type": "string", "default": "Lisbon", "example": "Porto"}]
    response = operator.post(PREVIEW, fields(subject="To {{ city }}", html="{{ city }}", variables=variables))
    assert response.status_code == 200 and response.json()["rendered"]["html"] == "Porto"


def test_the_preview_inlines_the_css_when_the_version_asks(operator):
    html = "<style>p { color: red }</style><p>Hi {{ first_name }}</p>"
    inlined = operator.post(PREVIEW, {**fields(html=html), "inline_css": "on"}).json()["rendered"]["html"]
    assert '<p style="color: red;">Hi Ada</p>' in inlined and "<style>" not in inlined
    assert operator.post(PREVIEW, fields(html=html)).json()["rendered"]["html"] == html.replace("{{ first_name }}", "Ada")


@pytest.mark.parametrize(
    "changes, part, says",
    [
        ({"html": "{{ ''.__class__.__mro__ }}"}, "html", "attributes starting with '_' are not available"),
        ({"html": "{% if first_name %}unclosed"}, "html", "line 1:"),
        ({"subject": "Hi {{ last_name }}"}, "subject", "uses 'last_name', which is not among the declared variables"),
        ({"text": "{% for x in range(10) recursive %}{% endfor %}"}, "text", "recursive loops"),
        ({"html": "{{ first_name.upper_case }}"}, "html", "upper_case"),  # found on rendering, not on checking
        ({"variables": "not json"}, "variables", "Not JSON"),
        ({"variables": [{"name": "first_name", "type": "text"}]}, "variables", "the type is one of string, number"),
        ({"variables": [{"name": "first_name", "type": "string"}]}, "variables", "an example is needed"),
        ({"variables": [{"name": "n", "type": "number", "example": "3"}]}, "variables", "'n': the example: expected a number"),
        ({"variables": [{"name": "n", "type": "number", "required": False, "example": 1}]}, "variables", "needs a default"),
        ({"variables": [{"name": "n", "type": "number", "required": True, "default": 1, "example": 1}]}, "variables", "takes no"),
        ({"variables": [{"name": "loop", "type": "number", "example": 1}]}, "variables", "the template language's own"),
    ],
    ids=[
        "unsafe",
        "syntax",
        "undeclared",
        "recursive",
        "render",
        "json",
        "type",
        "no-example",
        "example-type",
        "no-default",
        "required-default",
        "reserved",
    ],
)
def test_preview_answers_the_problem_naming_its_part(operator, changes, part, says):
    posted = fields(**{k: v for k, v in changes.items() if k != "variables"})
    if "variables" in changes:
        value = changes["variables"]
        posted["variables"] = value if isinstance(value, str) else json.dumps(value)
        posted["subject"] = posted["html"] = "Hi"

    response = operator.post(PREVIEW, posted)

    assert response.status_code == 200 and "rendered" not in response.json()
    problems = response.json()["problems"]
    assert list(problems) == [part] and says in " ".join(problems[part]), problems


def test_a_subject_rendered_with_a_line_break_is_a_problem_of_the_subject(operator):
    variables = [{"name": "first_name", "type": "string", "example": "Ada\r\nBcc: all@example.com"}]
    response = operator.post(PREVIEW, fields(subject="Hi {{ first_name }}", variables=variables))
    assert response.status_code == 200
    assert response.json()["problems"] == {"subject": ["the rendered subject contains a line break or control character"]}


def test_preview_is_for_staff_who_may_edit_templates_posting_with_the_csrf_token(operator, django_user_model, client):
    assert operator.get(PREVIEW).status_code == 405

    # Not staff: the admin's login page, not a preview.
    outsider = Client()
    outsider.force_login(django_user_model.objects.create_user("customer", "c@example.com", "pw"))
    response = outsider.post(PREVIEW, fields())
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")

    # Staff who may only view templates.
    viewer = django_user_model.objects.create_user("viewer", "v@example.com", "pw", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename="view_template"))
    client.force_login(viewer)
    response = client.post(PREVIEW, fields())
    assert response.status_code == 403 and response.json() == {"problems": {"__all__": ["You may not edit templates."]}}

    # An operator's browser that does not send the CSRF token (another site's form) is refused.
    checked = Client(enforce_csrf_checks=True)
    checked.force_login(django_user_model.objects.get(username="ops"))
    assert checked.post(PREVIEW, fields()).status_code == 403


def test_the_preview_frame_is_the_html_alone_under_a_policy_of_its_own(operator):
    """The iframe's document: the mail's inline styles apply, nothing runs or loads, only the
    admin may frame it; a source with problems is an empty page (the page shows the problems)."""
    response = operator.post(PREVIEW_FRAME, fields(html='<p style="color: red">Hi {{ first_name }}</p>'))

    assert response.status_code == 200 and response["Content-Type"] == "text/html; charset=utf-8"
    assert response.content.decode() == '<p style="color: red">Hi Ada</p>'
    policy = {part.strip() for part in response["Content-Security-Policy"].split(";")}
    assert policy == {
        "default-src 'none'",
        "style-src 'unsafe-inline'",
        "img-src data:",
        "font-src data:",
        "sandbox",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'self'",
    }
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    # The editor's own page keeps the admin's policy: no inline style, no framing.
    page = operator.get("/admin/templating/template/add/")
    assert "frame-ancestors 'none'" in page["Content-Security-Policy"] and page["X-Frame-Options"] == "DENY"

    broken = operator.post(PREVIEW_FRAME, fields(html="{{ ''.__class__ }}"))
    assert broken.status_code == 200 and broken.content == b""
    assert operator.get(PREVIEW_FRAME).status_code == 405


def test_the_preview_frame_is_for_staff_who_may_edit_templates(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("customer", "c@example.com", "pw"))
    response = client.post(PREVIEW_FRAME, fields())
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    viewer = django_user_model.objects.create_user("viewer", "v@example.com", "pw", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename="view_template"))
    client.force_login(viewer)
    assert client.post(PREVIEW_FRAME, fields()).status_code == 403


def test_the_add_form_creates_the_template_and_its_draft_through_versions(operator, team):
    # The admin writes help texts as HTML: one saying "<style>" would swallow the rest of the page.
    assert "<style" not in operator.get("/admin/templating/template/add/").content.decode()
    posted = {
        "team": team.pk,
        "alias": "booking-confirmation",
        "name": "Booking",
        "inline_css": "on",
        **fields(text="Hi {{ first_name }}\r\n"),
    }
    response = operator.post("/admin/templating/template/add/", {**posted, "_continue": "1"})

    template = Template.objects.get(alias="booking-confirmation")
    assert response.status_code == 302 and response["Location"] == f"/admin/templating/template/{template.pk}/change/"
    draft = template.versions.get()
    assert draft.is_draft and template.published is None
    assert (draft.subject, draft.text, draft.inline_css) == ("Hi {{ first_name }}", "Hi {{ first_name }}\n", True)
    assert draft.declared == declared(GREETING)
    assert LogEntry.objects.filter(object_id=str(template.pk), action_flag=ADDITION).count() == 1

    page = operator.get(response["Location"]).content.decode()
    assert 'id="publish-button"' in page and 'id="no-versions"' in page and 'id="template-preview"' in page


def test_the_add_form_shows_a_source_problem_and_a_taken_alias_on_their_fields(operator, team, template):
    posted = {"team": team.pk, "alias": "welcome", "name": "", **fields(html="{{ ''.__class__ }}")}
    response = operator.post("/admin/templating/template/add/", posted)

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "attributes starting with '_'" in " ".join(errors["html"])
    assert "already exists" in " ".join(errors["__all__"])  # the team's aliases are unique
    assert Template.objects.count() == 1


def test_editing_changes_the_draft_or_starts_one_from_the_published_version(operator, template):
    versions.publish(template)
    url = f"/admin/templating/template/{template.pk}/change/"
    page = operator.get(url).content.decode()
    assert "&lt;p&gt;Hello {{ first_name }}&lt;/p&gt;" in page and 'id="publish-note"' in page  # version 1 opened

    # Renaming only leaves the versions alone; a browser's CRLF in an unchanged source is no change.
    unchanged = {
        **fields(subject="Hello {{ first_name }}", html="<p>Hello {{ first_name }}</p>"),
        "text": "Hello {{ first_name }}",
        "inline_css": "on",
    }
    operator.post(url, {**unchanged, "name": "Welcome aboard", "variables": json.dumps(GREETING, indent=2).replace("\n", "\r\n")})
    template.refresh_from_db()
    assert template.name == "Welcome aboard" and template.versions.count() == 1

    response = operator.post(url, {**unchanged, "name": "Welcome aboard", "html": "<h1>Hello {{ first_name }}</h1>"})
    assert response.status_code == 302
    draft = template.versions.get(number__isnull=True)
    assert draft.html == "<h1>Hello {{ first_name }}</h1>" and draft.subject == "Hello {{ first_name }}"
    assert draft.inline_css
    # The variables as typed: a required variable's empty default is not shown.
    assert json.loads(operator.get(url).context["adminform"].form.initial["variables"]) == GREETING
    assert template.published.html == "<p>Hello {{ first_name }}</p>"  # published versions never change

    response = operator.post(url, {**unchanged, "name": "x", "subject": "{{ nope }}"})
    assert response.status_code == 200 and "nope" in " ".join(response.context["adminform"].form.errors["subject"])


def test_publish_makes_version_one_once_and_is_audited(operator, template):
    url = f"/admin/templating/template/{template.pk}/publish/"
    response = operator.post(url, follow=True)

    assert notices(response) == ["Published version 1: sends use it from now on."]
    template.refresh_from_db()
    assert template.published.number == 1 and logged(template, "Published version 1") == 1
    page = response.content.decode()
    assert 'id="version-1"' in page and "in use" in page and 'id="publish-button"' not in page

    response = operator.post(url, follow=True)  # another tab: nothing left to publish
    assert notices(response)[0].startswith("Nothing to publish: there is no saved draft")
    assert template.versions.count() == 1 and operator.get(url).status_code == 405


def test_restore_makes_an_earlier_version_the_one_sends_use_and_is_audited(operator, template):
    versions.publish(template)
    versions.edit(template, None, {"subject": "Welcome, {{ first_name }}"})
    versions.publish(template)
    page = operator.get(f"/admin/templating/template/{template.pk}/change/").content.decode()
    assert 'id="restore-1"' in page and 'id="restore-2"' not in page

    response = operator.post(f"/admin/templating/template/{template.pk}/restore/1/", follow=True)
    assert notices(response) == ["Restored version 1: sends use it from now on."]
    template.refresh_from_db()
    assert template.published.number == 1 and logged(template, "Restored version 1") == 1
    assert 'id="restore-2"' in response.content.decode()

    response = operator.post(f"/admin/templating/template/{template.pk}/restore/9/", follow=True)
    assert notices(response) == ["There is no version 9 to restore."]


def test_staff_who_may_only_view_templates_may_not_publish_or_restore(client, django_user_model, template):
    viewer = django_user_model.objects.create_user("viewer", "v@example.com", "pw", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename="view_template"))
    client.force_login(viewer)
    response = client.get(f"/admin/templating/template/{template.pk}/change/")
    page = response.content.decode()
    assert response.status_code == 200 and 'id="publish-button"' not in page and 'id="template-preview"' not in page
    assert '<pre class="template-source">&lt;p&gt;Hello {{ first_name }}&lt;/p&gt;</pre>' in page  # the draft, as text
    assert 'name="html"' not in page
    assert client.post(f"/admin/templating/template/{template.pk}/publish/").status_code == 403
    assert client.post(f"/admin/templating/template/{template.pk}/restore/1/").status_code == 403
    template.refresh_from_db()
    assert template.published is None


def test_the_list_finds_templates_by_alias_or_name_and_shows_the_published_version(operator, template):
    versions.publish(template)
    for query in ("welc", "Welcome"):
        page = operator.get("/admin/templating/template/", {"q": query}).content.decode()
        assert f"/admin/templating/template/{template.pk}/change/" in page
    assert operator.get("/admin/templating/template/", {"team__id__exact": template.team_id}).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_an_alias_another_operator_takes_while_the_form_is_saved_is_shown_on_the_form(operator, team):
    """The form found the alias free, but another operator's insert, not yet committed, holds it:
    versions.create then fails on the unique index, and the page shows why (no 500)."""
    theirs_inserted, commit_theirs = threading.Event(), threading.Event()

    def another_operator():
        with transaction.atomic():
            Template.objects.create(team=team, alias="welcome", name="theirs")
            theirs_inserted.set()
            commit_theirs.wait(30)
        connection.close()

    def waiting_on_the_index() -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT%'")
            return cursor.fetchone()[0] > 0

    answer = {}

    def save_ours():
        posted = {"team": team.pk, "alias": "welcome", "name": "ours", **fields()}
        answer["response"] = operator.post("/admin/templating/template/add/", posted)
        connection.close()

    theirs = threading.Thread(target=another_operator)
    theirs.start()
    assert theirs_inserted.wait(30)
    ours = threading.Thread(target=save_ours)
    ours.start()
    wait_until(waiting_on_the_index, timeout=30, what="our insert to wait on theirs")
    commit_theirs.set()
    theirs.join(30)
    ours.join(30)

    response = answer["response"]
    assert response.status_code == 200
    errors = " ".join(response.context["adminform"].form.errors.get("alias", []))
    assert "The team already has a template with the alias 'welcome'." in errors
    assert list(Template.objects.values_list("name", flat=True)) == ["theirs"]
