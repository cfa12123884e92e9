"""Many message rows at once, for the list's index test (tests/test_search.py) and its benchmark
(bench/list_messages.py): one INSERT ... SELECT over generate_series, so a million rows take
seconds, not the hours the API would. Every tenth row is the second team's; statuses, providers,
tags, metadata and recipients cycle so each filter has common and rare values."""

INSERT = """
INSERT INTO mail_message (
    id, api_key_id, team_id, status, from_email, recipients, recipient_addresses, tags, metadata,
    recipient_count, subject, provider, provider_message_id, attempts, step, last_error,
    created_at, updated_at, sent_at, sandbox, template_alias
)
SELECT
    gen_random_uuid(), %(api_key)s,
    CASE WHEN i %% 10 = 0 THEN %(other_team)s ELSE %(team)s END,
    (ARRAY['queued', 'sent', 'delivered', 'bounced', 'failed'])[1 + i %% 5],
    'shop@example.com',
    'user' || i || '@example.com, copy' || (i %% 1000) || '@example.com',
    jsonb_build_array('user' || i || '@example.com', 'copy' || (i %% 1000) || '@example.com'),
    jsonb_build_array('tag' || (i %% 100), 'kind' || (i %% 3)),
    jsonb_build_object('order_id', i::text, 'shard', (i %% 20)::text),
    2, 'Receipt ' || i,
    (ARRAY['sendgrid', 'mailgun', 'ses'])[1 + i %% 3], '', 1, 1, '',
    %(newest)s - make_interval(secs => i),
    %(newest)s - make_interval(secs => i),
    CASE WHEN i %% 5 <> 0 THEN %(newest)s - make_interval(secs => i - 1) END,
    false, ''
FROM generate_series(%(first)s, %(last)s) AS i
"""


def insert(cursor, *, api_key: str, team: int, other_team: int, newest, count: int, first: int = 1) -> None:
    """Rows numbered first..first+count-1, the n-th created n seconds before `newest`."""
    cursor.execute(
        INSERT,
        {"api_key": api_key, "team": team, "other_team": other_team, "newest": newest, "first": first, "last": first + count - 1},
    )
