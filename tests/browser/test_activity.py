"""Settings → Sessions and the Activity page in Chromium against a real server, with the
CLI logged in to the same account: the page lists the CLI's session beside its own,
ends it (the CLI's next request is refused), and shows the trail, filtered and paged."""

from __future__ import annotations

import json
from pathlib import Path

from hygieia.client import account as acct
from hygieia.client import activity
from hygieia.client.sdk import HygieiaClient
from tests.browser import flows
from tests.support.browser import PageHandle
from tests.support.cli import Cli

PW = "activity page password 1"


def test_sessions_and_activity(web: PageHandle, server: str, tmp_path: Path) -> None:
    email = f"act-{tmp_path.name[-12:]}@example.org".lower()
    web.goto()
    flows.signup(web, email, PW)  # the page refuses the suite's cheap KDF: signed up here
    cli = Cli(server=server, home=tmp_path / "cli", data_dir=tmp_path / "unused")
    cli.run("login", email, password=PW)
    cli_session = next(s for s in json.loads(cli.run("sessions", "--json").stdout) if s["current"])
    p = web.page

    # Settings → Sessions: the CLI's session and this one, marked.
    p.locator("#nav").get_by_role("button", name="Settings").click()
    p.wait_for_selector("#sessions-list li >> nth=1")
    items = p.locator("#sessions-list li")
    assert items.count() == 2
    cli_item = p.locator(f'#sessions-list li[data-session-id="{cli_session["id"]}"]')
    assert cli_item.get_attribute("data-client") == "cli"
    assert "Command line (hygieia-cli/" in cli_item.inner_text()
    here = p.locator('#sessions-list li[data-current="true"]')
    assert here.get_attribute("data-client") == "web"
    assert "This session" in here.inner_text() and "Web browser" in here.inner_text()
    assert here.get_by_role("button").count() == 0  # this one ends with "Log out"
    web.shot("settings-sessions")

    # End the CLI's session: gone from the list, and the CLI is refused next time.
    cli_item.get_by_role("button", name="End session").click()
    gone = f'#sessions-list li[data-session-id="{cli_session["id"]}"]'
    p.wait_for_selector(gone, state="detached")
    assert "Session ended" in flows.flash_text(web)
    assert p.locator("#sessions-list li").count() == 1
    assert p.locator("#sessions-others").is_hidden()
    refused = cli.run("whoami", check=False)
    assert refused.returncode != 0 and "token_revoked" in refused.stderr

    # Enough events for more than one page (records.listed: one per listing).
    api = HygieiaClient(server)
    api.token = acct.login(api, email, PW).token
    for _ in range(55):
        api.list_records()
    total = len(list(api.audit_all()))
    assert total > 60

    # The Activity page: newest first, what/where/which client, a page at a time.
    p.locator("#nav").get_by_role("button", name="Activity").click()
    p.wait_for_selector("body[data-activity=ready]")
    rows = p.locator("#activity-list li")
    assert rows.count() == 50
    first = rows.first
    assert first.get_attribute("data-event") == "records.listed"
    assert activity.describe("records.listed") in first.inner_text()
    assert "127.0.0.1" in first.inner_text() and "Command line" in first.inner_text()
    assert p.locator("#activity-more").is_visible()
    p.locator("#activity-more").click()
    p.wait_for_function(f"() => document.querySelectorAll('#activity-list li').length === {total}")
    assert p.locator("#activity-more").is_hidden()
    ids = [int(x) for x in rows.evaluate_all("els => els.map(e => e.dataset.eventId)")]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == total
    revoked = p.locator('#activity-list li[data-event="auth.session_revoked"]')
    assert revoked.count() == 1
    assert activity.describe("auth.session_revoked") in revoked.inner_text()
    assert "Web browser" in revoked.inner_text()
    web.shot("activity")

    # Filtered by family: sign-in events only, the CLI's login among them.
    p.locator("#activity-kind").select_option("auth")
    p.wait_for_function(
        "() => [...document.querySelectorAll('#activity-list li')]"
        ".every(e => e.dataset.event.startsWith('auth.'))"
    )
    kinds = rows.evaluate_all("els => els.map(e => e.dataset.event)")
    assert kinds == ["auth.login", "auth.session_revoked", "auth.login", "auth.login"]
    assert p.locator("#activity-more").is_hidden()
    p.locator("#activity-kind").select_option("account")
    p.wait_for_function("() => document.querySelectorAll('#activity-list li').length === 1")
    assert rows.first.get_attribute("data-event") == "account.signup"
