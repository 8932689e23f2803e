"""``hygieia sessions`` and ``hygieia audit`` against a real server: a CLI session and a
web-style session (the SDK with the web app's client header) see each other, ``sessions
rm`` logs the other out on its next request, ``audit --json --since`` reads the trail."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from hygieia.client import account as acct
from hygieia.client import activity
from hygieia.client.sdk import ApiError, HygieiaClient
from tests.support.cli import Cli

PASSWORD = "cli sessions password 1"
EMAIL = "cs@example.org"
WEB_UA = "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0"


def _web_session(cli: Cli) -> HygieiaClient:
    web = HygieiaClient(cli.server, client_kind="web", user_agent=WEB_UA)
    web.token = acct.login(web, EMAIL, PASSWORD).token
    return web


def test_cli_and_web_sessions_see_each_other_and_rm_logs_out(cli: Cli) -> None:
    cli.new_account(EMAIL, PASSWORD)
    web = _web_session(cli)
    listed = json.loads(cli.run("sessions", "--json").stdout)
    assert json.loads(cli.run("sessions", "ls", "--json").stdout) == listed
    assert sorted(s["client"] for s in listed) == ["cli", "web"]
    mine = next(s for s in listed if s["current"])
    other = next(s for s in listed if not s["current"])
    assert mine["client"] == "cli" and mine["user_agent"].startswith("hygieia-cli/")
    assert other["user_agent"] == WEB_UA and other["address"] == "127.0.0.1"
    # The web session sees the CLI's, marked as not its own.
    seen = {s.id: s for s in web.sessions()}
    assert set(seen) == {mine["id"], other["id"]} and seen[other["id"]].current
    table = cli.run("sessions").stdout  # piped: one tab-separated row per session
    rows = [line.split("\t") for line in table.splitlines()]
    assert sorted(r[0] for r in rows) == ["", "*"] and {r[1] for r in rows} == set(seen)

    out = cli.run("sessions", "rm", other["id"]).stdout
    assert other["id"] in out
    with pytest.raises(ApiError) as err:
        web.me()
    assert (err.value.status, err.value.code) == (401, "token_revoked")
    assert [s["id"] for s in json.loads(cli.run("sessions", "--json").stdout)] == [mine["id"]]
    # Another's id or an ended one: refused, nothing printed as done.
    again = cli.run("sessions", "rm", other["id"], check=False)
    assert again.returncode != 0 and "not_found" in again.stderr


def test_rm_others(cli: Cli) -> None:
    cli.new_account(EMAIL, PASSWORD)
    webs = [_web_session(cli), _web_session(cli)]
    assert "ended 2 other session(s)" in cli.run("sessions", "rm-others").stdout
    for web in webs:
        with pytest.raises(ApiError):
            web.me()
    assert len(json.loads(cli.run("sessions", "--json").stdout)) == 1


def test_audit_json_since_and_kind(cli: Cli) -> None:
    cli.new_account(EMAIL, PASSWORD)
    web = _web_session(cli)
    with pytest.raises(ApiError):
        acct.login(HygieiaClient(cli.server), EMAIL, "not the password")
    web_id = next(s.id for s in web.sessions() if s.current)
    cli.run("sessions", "rm", web_id)

    events = json.loads(cli.run("audit", "--json", "--since", "1d").stdout)
    kinds = [e["event"] for e in events]
    assert kinds == [
        "auth.session_revoked",
        "auth.login_failed",
        "auth.login",
        "auth.login",
        "account.signup",
    ]
    revoked = events[0]
    assert revoked["session_id"] == web_id and revoked["client"] == "cli"
    assert revoked["description"] == activity.describe("auth.session_revoked") != revoked["event"]
    assert [e["client"] for e in events] == ["cli", "cli", "web", "cli", "cli"]
    assert events[2]["user_agent"] == WEB_UA
    assert all(e["address"] == "127.0.0.1" for e in events)
    # --since: a date in the future leaves nothing; one in the past keeps everything.
    tomorrow = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    assert json.loads(cli.run("audit", "--json", "--since", tomorrow).stdout) == []
    assert len(json.loads(cli.run("audit", "--json", "--since", "2020-01-01").stdout)) == 5
    # --kind: a family.
    fam = json.loads(cli.run("audit", "--json", "--kind", "auth.login").stdout)
    assert [e["event"] for e in fam] == ["auth.login", "auth.login"]
    fam = json.loads(cli.run("audit", "--json", "--kind", "account", "--kind", "auth").stdout)
    assert len(fam) == 5
    # The table: descriptions, not kinds.
    table = cli.run("audit").stdout
    assert activity.describe("auth.login_failed") in table
    # Bad input is refused where it enters.
    for bad in (["--since", "yesterday"], ["--kind", "Record!"]):
        r = cli.run("audit", *bad, check=False)
        assert r.returncode == 2, (bad, r.stdout, r.stderr)


def test_parse_since() -> None:
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert activity.parse_since("7d", now=now) == "2026-11-13T12:00:00+00:00"
    assert activity.parse_since("12h", now=now) == "2026-11-20T00:00:00+00:00"
    assert activity.parse_since("2w", now=now) == "2026-11-06T12:00:00+00:00"
    assert activity.parse_since("2026-11-01") == "2026-11-01T00:00:00+00:00"
    assert activity.parse_since("2026-11-01T09:00+01:00") == "2026-11-01T09:00:00+01:00"
    for bad in ("yesterday", "7x", "2026-11-01T09:00", ""):
        with pytest.raises(ValueError):
            activity.parse_since(bad)
