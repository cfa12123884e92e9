"""Finding messages (GET /api/v1/messages): every filter, cursors both ways, bad input refused with
a 400 that names it, and every filter answered from an index on 100,000 rows (EXPLAIN: no
sequential scan of the messages table)."""

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from devtools import synthetic_messages
from mail import keys, search
from mail.models import Message, Scope, Team

URL = "/api/v1/messages"


@pytest.fixture
def teams(api_key):
    return api_key[0].profile.team, Team.objects.create(name="other")


@pytest.fixture
def rows(api_key, teams):
    """40 rows: 36 of the key's team (created a second apart, row 1 newest), 4 of another team."""
    mine, other = teams
    with connection.cursor() as cursor:
        synthetic_messages.insert(
            cursor, api_key=api_key[0].pk, team=mine.pk, other_team=other.pk, newest=timezone.now(), count=40
        )
    return Message.objects.filter(team=mine)


def listed(api_client, **params):
    response = api_client.get(URL, params)
    assert response.status_code == 200, response.content
    return response.json()


def ids(page):
    return [item["id"] for item in page["data"]]


def newest_first(queryset):
    return [str(pk) for pk in queryset.order_by("-created_at", "-id").values_list("id", flat=True)]


def test_the_list_is_the_teams_newest_first_in_pages(api_client, rows):
    first = listed(api_client, limit=10)
    assert ids(first) == newest_first(rows)[:10] and first["has_more"] is True
    assert {"recipients", "tags", "metadata", "status", "subject"} <= first["data"][0].keys()
    assert "events" not in first["data"][0]
    everything = listed(api_client, limit=100)
    assert ids(everything) == newest_first(rows) and everything["has_more"] is False
    assert listed(api_client)["data"].__len__() == 20  # the default limit


def test_after_and_before_walk_the_pages_both_ways(api_client, rows):
    pages = [listed(api_client, limit=15)]
    while pages[-1]["has_more"]:
        pages.append(listed(api_client, limit=15, after=pages[-1]["next_cursor"]))
    assert [len(page["data"]) for page in pages] == [15, 15, 6]
    assert sum((ids(page) for page in pages), []) == newest_first(rows)
    back = listed(api_client, limit=15, before=pages[2]["previous_cursor"])
    assert ids(back) == ids(pages[1]) and back["has_more"] is True
    assert listed(api_client, limit=15, before=pages[1]["previous_cursor"])["has_more"] is False
    empty = listed(api_client, after=pages[2]["next_cursor"])
    assert empty == {"data": [], "has_more": False, "next_cursor": None, "previous_cursor": None}


@pytest.mark.parametrize(
    ("params", "matches"),
    [
        ({"status": "bounced"}, lambda m: m.status == "bounced"),
        ({"recipient": "COPY7@Example.com"}, lambda m: "copy7@example.com" in m.recipient_addresses),
        ({"tag": "kind1"}, lambda m: "kind1" in m.tags),
        ({"metadata": "shard:3"}, lambda m: m.metadata["shard"] == "3"),
        ({"metadata": "order_id:12"}, lambda m: m.metadata["order_id"] == "12"),
        ({"provider": "mailgun"}, lambda m: m.provider == "mailgun"),
        ({"status": "sent", "provider": "ses"}, lambda m: m.status == "sent" and m.provider == "ses"),
    ],
)
def test_each_filter(api_client, rows, params, matches):
    expected = [str(m.id) for m in rows.order_by("-created_at", "-id") if matches(m)]
    assert expected, "the data must hold a match"
    assert ids(listed(api_client, limit=100, **params)) == expected


def test_time_ranges(api_client, rows):
    ordered = list(rows.order_by("-created_at", "-id"))
    start, end = ordered[20].created_at, ordered[10].created_at
    found = ids(listed(api_client, limit=100, created_after=start.isoformat(), created_before=end.isoformat()))
    assert found == [str(m.id) for m in ordered[11:21]]
    since, until = ordered[30].created_at, ordered[5].created_at
    found = ids(listed(api_client, limit=100, sent_after=since.isoformat(), sent_before=until.isoformat()))
    expected = [str(m.id) for m in ordered if m.sent_at and since <= m.sent_at < until]
    assert found == expected and 0 < len(expected) < 30


def test_an_accepted_message_is_found_by_its_recipient_tag_and_metadata(api_client, provisioned_queues):
    body = {
        "from": "shop@example.com",
        "to": "Ann <Ann@Example.com>",
        "bcc": ["audit@example.com"],
        "subject": "s",
        "text": "t",
        "tags": ["receipts"],
        "metadata": {"order_id": "42"},
    }
    message_id = api_client.post(URL, data=json.dumps(body), content_type="application/json").json()["id"]
    for params in (
        {"recipient": "ann@example.com"},
        {"recipient": "AUDIT@example.com"},
        {"tag": "receipts"},
        {"metadata": "order_id:42"},
    ):
        assert ids(listed(api_client, **params)) == [message_id], params
    assert ids(listed(api_client, metadata="order_id:4")) == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("colour=red", "'colour'"),
        ("status=sent&status=queued", "status"),
        ("status=lost", "status"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=99999999999999999999999", "limit"),
        ("limit=ten", "limit"),
        ("after=not-a-cursor", "after"),
        ("after=" + "A" * 500, "after"),
        ("before=WyJ5ZXN0ZXJkYXkiLCIxIl0", "before"),  # ["yesterday","1"]
        ("after=WyIyMDI2LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwiMSJd", "after"),  # a good time, an id that is no UUID
        ("after=WyIyMDI2LTAxLTAxVDAwOjAwOjAwIiwiMDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAwIl0", "after"),  # no zone
        ("recipient=ann%40example.com%0D%0ABcc%3A%20x", "recipient"),
        ("tag=a%00b", "tag"),
        ("metadata=no-colon", "metadata"),
        ("metadata=bad%20key:1", "metadata"),
        ("created_after=yesterday", "created_after"),
        ("created_after=2026-02-01T00:00:00Z&created_before=2026-01-01T00:00:00Z", "created_before"),
        ("provider=" + "x" * 40, "provider"),
    ],
)
def test_bad_input_is_a_400_naming_it(api_client, db, query, field):
    response = api_client.get(f"{URL}?{query}")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["type"] == "validation_error" and field in error["fields"], error


def test_after_and_before_together_are_refused(api_client, rows):
    cursor = listed(api_client, limit=1)["next_cursor"]
    response = api_client.get(URL, {"after": cursor, "before": cursor})
    assert response.status_code == 400 and "before" in response.json()["error"]["fields"]


def test_a_read_only_key_finds_the_teams_messages_sent_by_another_key(api_key, rows, client):
    _, reader = keys.create("reader", api_key[0].profile.team, [Scope.MESSAGES_READ])
    response = client.get(URL, {"limit": 100}, HTTP_AUTHORIZATION=f"Bearer {reader}")
    assert ids(response.json()) == newest_first(rows)
    _, stranger = keys.create("stranger", Team.objects.create(name="third"), [Scope.MESSAGES_READ])
    assert client.get(URL, HTTP_AUTHORIZATION=f"Bearer {stranger}").json()["data"] == []


# --- every filter from an index ------------------------------------------------------------


@pytest.fixture
def many_rows(api_key, teams):
    mine, other = teams
    with connection.cursor() as cursor:
        synthetic_messages.insert(
            cursor, api_key=api_key[0].pk, team=mine.pk, other_team=other.pk, newest=timezone.now(), count=100_000
        )
        cursor.execute("ANALYZE mail_message")
    return mine


def plans(team, limit=20):
    now = timezone.now()
    newest = Message.objects.filter(team=team).order_by("-created_at", "-id").first()
    middle = search.Position(now - timedelta(hours=6), newest.id)
    filters = [
        search.MessageFilters(),
        search.MessageFilters(status="bounced"),
        search.MessageFilters(status="failed", provider="ses"),
        search.MessageFilters(recipient="user777@example.com"),
        search.MessageFilters(recipient="copy7@example.com"),
        search.MessageFilters(tag="tag42"),
        search.MessageFilters(tag="kind1"),
        search.MessageFilters(metadata={"order_id": "4242"}),
        search.MessageFilters(metadata={"shard": "3"}),
        search.MessageFilters(provider="mailgun"),
        search.MessageFilters(created_after=now - timedelta(hours=10), created_before=now - timedelta(hours=9)),
        search.MessageFilters(sent_after=now - timedelta(hours=3), sent_before=now - timedelta(hours=2)),
        search.MessageFilters(sent_after=now - timedelta(minutes=5)),
    ]
    for filters_ in filters:
        queryset = search.messages(team.pk, filters_)
        for after, before in ((None, None), (middle, None), (None, middle)):
            yield filters_, search.page_query(queryset, limit, after, before).explain()


def test_no_filter_scans_the_messages_table_on_100_000_rows(many_rows):
    checked = 0
    for filters, plan in plans(many_rows):
        assert "Seq Scan on mail_message" not in plan, f"{filters}:\n{plan}"
        checked += 1
    assert checked == 39
