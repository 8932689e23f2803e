"""Sessions (protocol §11): every live session of an account, with its client, user agent,
address and times; revoke one, or all but the one asking. Only one's own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, update

from hygieia.client import account as acct
from hygieia.client.sdk import ApiError, HygieiaClient
from hygieia.db.models import AuditEvent, AuthSession
from hygieia.services.audit import MAX_USER_AGENT, clean_user_agent, client_kind
from tests.support.accounts import TEST_KDF
from tests.support.live import LiveApp

PASSWORD = "sessions test password 1"
WEB_UA = "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0 Safari/537.36"


def _login(live: LiveApp, email: str, *, kind: str = "cli", ua: str | None = None) -> str:
    api = HygieiaClient(live.url, client_kind=kind, user_agent=ua)
    return acct.login(api, email, PASSWORD).token


def _as(live: LiveApp, token: str, *, kind: str = "cli", ua: str | None = None) -> HygieiaClient:
    return HygieiaClient(live.url, token=token, client_kind=kind, user_agent=ua)


@pytest.fixture
def ann(live: LiveApp) -> tuple[str, str]:
    """Ann logged in twice: from the CLI and from a browser (the web app's header)."""
    acct.signup(live.client(), "ann@example.org", PASSWORD, kdf=TEST_KDF)
    return _login(live, "ann@example.org"), _login(live, "ann@example.org", kind="web", ua=WEB_UA)


def test_cli_and_web_sessions_see_each_other(live: LiveApp, ann: tuple[str, str]) -> None:
    cli, web = ann
    from_cli = _as(live, cli).sessions()
    from_web = _as(live, web, kind="web", ua=WEB_UA).sessions()
    assert {s.id for s in from_cli} == {s.id for s in from_web} and len(from_cli) == 2
    by_kind = {s.client: s for s in from_cli}
    assert set(by_kind) == {"cli", "web"}
    assert by_kind["web"].user_agent == WEB_UA
    assert by_kind["cli"].user_agent is not None
    assert by_kind["cli"].user_agent.startswith("hygieia-cli/")
    assert by_kind["cli"].address == by_kind["web"].address == "127.0.0.1"
    for s in from_cli:
        assert s.created_at and s.last_used_at
    # "current" marks the asker, in each list.
    assert [s.client for s in from_cli if s.current] == ["cli"]
    assert [s.client for s in from_web if s.current] == ["web"]


def test_revoking_one_logs_it_out_on_its_next_request(live: LiveApp, ann: tuple[str, str]) -> None:
    cli, web = ann
    web_api = _as(live, web, kind="web")
    assert web_api.me().email == "ann@example.org"
    target = next(s for s in _as(live, cli).sessions() if s.client == "web")
    _as(live, cli).revoke_session(target.id)
    with pytest.raises(ApiError) as err:
        web_api.me()
    assert (err.value.status, err.value.code) == (401, "token_revoked")
    # The listing hot path refuses it too.
    with pytest.raises(ApiError) as err:
        web_api.list_records()
    assert err.value.status == 401
    left = _as(live, cli).sessions()
    assert [(s.client, s.current) for s in left] == [("cli", True)]
    # Revoking it again: it is no longer a live session of Ann's.
    with pytest.raises(ApiError) as err:
        _as(live, cli).revoke_session(target.id)
    assert (err.value.status, err.value.code) == (404, "not_found")
    trail = _as(live, cli).audit_page(kinds=["auth.session_revoked"]).events
    assert [(e.event, e.detail.session_id, e.client) for e in trail] == [
        ("auth.session_revoked", target.id, "cli")
    ]


def test_revoke_others(live: LiveApp, ann: tuple[str, str]) -> None:
    cli, web = ann
    third = _login(live, "ann@example.org")
    assert len(_as(live, web).sessions()) == 3
    assert _as(live, web, kind="web").revoke_other_sessions() == 2
    for token in (cli, third):
        with pytest.raises(ApiError) as err:
            _as(live, token).me()
        assert err.value.status == 401
    assert [s.client for s in _as(live, web).sessions()] == ["web"]
    events = _as(live, web).audit_page(kinds=["auth.session_revoked"]).events
    assert len(events) == 2 and {e.client for e in events} == {"web"}
    assert _as(live, web).revoke_other_sessions() == 0


def test_another_accounts_sessions_are_invisible_and_untouchable(
    live: LiveApp, ann: tuple[str, str]
) -> None:
    cli, _ = ann
    acct.signup(live.client(), "bob@example.org", PASSWORD, kdf=TEST_KDF)
    bob = _login(live, "bob@example.org")
    ann_ids = {s.id for s in _as(live, cli).sessions()}
    bob_sessions = _as(live, bob).sessions()
    assert len(bob_sessions) == 1 and not ann_ids & {s.id for s in bob_sessions}
    for sid in ann_ids:
        with pytest.raises(ApiError) as err:
            _as(live, bob).revoke_session(sid)
        assert (err.value.status, err.value.code) == (404, "not_found")  # not 403
    assert {s.id for s in _as(live, cli).sessions()} == ann_ids
    assert _as(live, bob).revoke_other_sessions() == 0
    assert _as(live, cli).me().email == "ann@example.org"
    # An unknown id and a junk id answer the same 404.
    for sid in ("0b5c9a8e-2f4a-4c1e-9d2b-7a6e5f4d3c2b", "not-a-session"):
        r = httpx.delete(
            f"{live.url}/api/v1/auth/sessions/{sid}", headers={"authorization": f"Bearer {bob}"}
        )
        assert (r.status_code, r.json()["code"]) == (404, "not_found")


def test_recovery_grants_and_ended_sessions_are_not_listed(live: LiveApp) -> None:
    signed = acct.signup(live.client(), "cy@example.org", PASSWORD, kdf=TEST_KDF)
    token = _login(live, "cy@example.org")
    old = _login(live, "cy@example.org")
    _as(live, old).logout()
    acct.recover(
        live.client(), "cy@example.org", signed.recovery_code, PASSWORD + "x", kdf=TEST_KDF
    )
    with pytest.raises(ApiError):  # recovery ended every earlier session
        _as(live, token).sessions()
    fresh = acct.login(live.client(), "cy@example.org", PASSWORD + "x").token
    listed = _as(live, fresh).sessions()
    with live.engine.connect() as conn:
        kinds = set(conn.scalars(select(AuthSession.kind)))
    assert "recovery" in kinds
    # The session the recovery opened and this login; no grant, nothing revoked.
    assert len(listed) == 2 and sum(s.current for s in listed) == 1


def test_last_use_is_written_at_most_once_a_minute(live: LiveApp, ann: tuple[str, str]) -> None:
    cli, _ = ann
    api = _as(live, cli)
    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    with live.engine.begin() as conn:
        conn.execute(update(AuthSession).values(last_used_at=long_ago))

    def last_used() -> datetime:
        with live.engine.connect() as conn:
            me = next(s for s in api.sessions() if s.current)
            value = conn.scalar(select(AuthSession.last_used_at).where(AuthSession.id == me.id))
        assert value is not None
        return value

    api.list_records()  # the Core hot path records the use too
    first = last_used()
    assert first > long_ago + timedelta(minutes=4)
    api.me()
    api.list_records()
    assert last_used() == first  # within the minute: not written again


def test_client_header_and_user_agent_are_cleaned(live: LiveApp, ann: tuple[str, str]) -> None:
    assert [client_kind(h) for h in ("cli", "CLI/1.2", " web ", "gui", "", None)] == [
        "cli",
        "cli",
        "web",
        "other",
        "other",
        "other",
    ]
    long = "A\x00B\tC\u00e9 " + "x" * 500
    cleaned = clean_user_agent(long)
    assert cleaned is not None and len(cleaned) == MAX_USER_AGENT
    assert cleaned.startswith("A B C x")
    assert clean_user_agent("\x01\x02") is None
    # Over HTTP: an unknown kind is "other"; a long, odd user agent is cut and cleaned.
    token = _login(live, "ann@example.org", kind="evil<script>", ua="Z" * 1000 + "\t!")
    mine = next(s for s in _as(live, token).sessions() if s.current)
    assert mine.client == "other" and mine.user_agent == "Z" * MAX_USER_AGENT
    with live.engine.connect() as conn:
        login = conn.execute(
            select(AuditEvent.client, AuditEvent.user_agent)
            .where(AuditEvent.event == "auth.login")
            .order_by(AuditEvent.id.desc())
        ).first()
    assert login == ("other", "Z" * MAX_USER_AGENT)
