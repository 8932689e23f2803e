"""Page-driving helpers shared by the browser tests (what a person would do)."""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.support.browser import PageHandle


def signup(web: PageHandle, email: str, password: str, *, shots: bool = False) -> str:
    """Create an account through the UI; return the recovery code it showed."""
    page = web.page
    page.get_by_role("tab", name="Create account").click()
    page.get_by_label("Email").and_(page.locator("#signup-email")).fill(email)
    page.locator("#signup-password").fill(password)
    page.locator("#signup-password2").fill(password)
    if shots:
        web.shot("signup")
    page.get_by_role("button", name="Create account").click()
    page.wait_for_selector("#view-recovery-code:not([hidden])")
    code = page.locator("#rc-code").inner_text().strip()
    assert page.locator("#rc-continue").is_disabled()
    if shots:
        web.shot("recovery-code")
    page.get_by_label("I have saved my recovery code").check()
    page.get_by_role("button", name="Create my account").click()
    list_ready(web)
    return code


def submit_login(web: PageHandle, email: str, password: str) -> None:
    """Fill in and send the login form, without waiting for any outcome."""
    page = web.page
    page.get_by_role("tab", name="Log in").click()
    page.locator("#login-email").fill(email)
    page.locator("#login-password").fill(password)
    page.locator("#form-login").get_by_role("button", name="Log in").click()


def login(web: PageHandle, email: str, password: str) -> None:
    submit_login(web, email, password)
    list_ready(web)


def logout(web: PageHandle) -> None:
    web.page.get_by_role("button", name="Log out").click()
    web.page.wait_for_selector("#view-auth:not([hidden])")


def flash_text(web: PageHandle) -> str:
    web.page.wait_for_selector("#flash:not([hidden])")
    return web.page.locator("#flash").inner_text()


def json_bodies(web: PageHandle, path: str) -> list[dict[str, Any]]:
    out = []
    for r in web.requests:
        if r.url.split("?")[0].endswith(path) and r.body:
            out.append(json.loads(r.body))
    return out


def forms(secret: bytes | str) -> list[bytes]:
    """Encodings under which a secret could travel: raw, hex, base64 (std and url)."""
    raw = secret.encode() if isinstance(secret, str) else secret
    out = [raw, raw.hex().encode(), raw.hex().upper().encode()]
    if len(raw) >= 8:
        out += [base64.b64encode(raw).rstrip(b"="), base64.urlsafe_b64encode(raw).rstrip(b"=")]
    if isinstance(secret, str):
        from urllib.parse import quote, quote_plus

        out += [
            quote(secret).encode(),
            quote_plus(secret).encode(),
            json.dumps(secret)[1:-1].encode(),
        ]
    return out


def assert_never_sent(web: PageHandle, secrets: dict[str, bytes | str]) -> None:
    """No captured request (URL, headers or body) carries any of the secrets."""
    assert web.requests, "no requests were captured"
    for r in web.requests:
        blob = b"\n".join(
            [r.url.encode(), *(f"{k}: {v}".encode() for k, v in r.headers.items()), r.body]
        )
        for name, secret in secrets.items():
            for form in forms(secret):
                assert form not in blob, f"{name} was sent in {r.method} {r.url}"


# ---- records ----------------------------------------------------------------------

WATCH_PROGRESS = """() => {
  const bar = document.getElementById('up-progress');
  window.__hygProgress = [];
  new MutationObserver(() => window.__hygProgress.push(Number(bar.value)))
    .observe(bar, { attributes: true, attributeFilter: ['value'] });
}"""

DROP_FILE = """({ target, name, type, b64 }) => {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  const data = new DataTransfer();
  data.items.add(new File([bytes], name, { type }));
  const zone = document.getElementById(target);
  for (const kind of ['dragenter', 'dragover', 'drop']) {
    const init = { dataTransfer: data, bubbles: true, cancelable: true };
    zone.dispatchEvent(new DragEvent(kind, init));
  }
}"""


def drop_file(web: PageHandle, target: str, name: str, media_type: str, data: bytes) -> None:
    """Drag and drop a file onto the element with id ``target`` (as a person would)."""
    web.page.evaluate(
        DROP_FILE,
        {
            "target": target,
            "name": name,
            "type": media_type,
            "b64": base64.b64encode(data).decode(),
        },
    )


def open_upload(web: PageHandle) -> None:
    web.page.locator("#view-records").get_by_role("button", name="Upload").click()
    web.page.wait_for_selector("#view-upload:not([hidden])")


def fill_upload_form(
    web: PageHandle,
    *,
    title: str,
    record_type: str = "",
    date: str = "",
    provider: str = "",
    tags: str = "",
) -> None:
    page = web.page
    page.get_by_label("Title").fill(title)
    page.locator("#up-type").fill(record_type)
    page.locator("#up-date").fill(date)
    page.get_by_label("Provider").fill(provider)
    page.get_by_label("Tags").fill(tags)


def submit_upload(web: PageHandle, *, timeout_ms: float = 60_000) -> dict[str, Any]:
    """Click "Encrypt and upload"; return the server's RecordPublic; check the progress.

    (For a very large upload DevTools may drop the answer's body from its cache: the
    record's id then comes from the list the page shows.)"""
    page = web.page
    page.evaluate(WATCH_PROGRESS)
    before = set(shown_ids(web))  # the (hidden) list still shows what was there
    with page.expect_response(
        lambda r: r.url.endswith("/api/v1/records") and r.request.method == "POST",
        timeout=timeout_ms,
    ) as resp:
        page.get_by_role("button", name="Encrypt and upload").click()
    assert resp.value.status == 201
    try:
        record = resp.value.json()
    except Exception:  # evicted from the DevTools cache
        record = None
    page.wait_for_selector("#view-records:not([hidden])", timeout=timeout_ms)
    list_ready(web)
    assert "Uploaded" in flash_text(web)  # shown once the list is rendered again
    if record is None:
        (new_id,) = set(shown_ids(web)) - before
        record = {"id": new_id}
    seen = page.evaluate("() => window.__hygProgress")
    assert seen and max(seen) == 100, seen
    steps = [v for v in seen if v]  # the bar is reset to 0 when the form is cleared
    assert steps == sorted(steps), seen
    return dict(record)


def list_ready(web: PageHandle) -> None:
    """Wait until the records view shows and its list has been rendered again."""
    web.page.wait_for_selector("#view-records:not([hidden])")
    web.page.wait_for_selector("body:not([data-loading])", state="attached")


def go_records(web: PageHandle) -> None:
    web.page.locator("#nav").get_by_role("button", name="Records").click()
    list_ready(web)


def record_item(web: PageHandle, record_id: str) -> Any:
    return web.page.locator(f'li.record[data-record-id="{record_id}"]')


def shown_ids(web: PageHandle) -> list[str]:
    return [
        str(x)
        for x in web.page.locator("#records-list li.record").evaluate_all(
            "els => els.map(e => e.dataset.recordId)"
        )
    ]


def download_record(web: PageHandle, record_id: str, *, timeout_ms: float = 60_000) -> bytes:
    """Download from the list; return the saved file's bytes."""
    page = web.page
    with page.expect_download(timeout=timeout_ms) as dl:
        record_item(web, record_id).get_by_role("button", name="Download").click()
    path = dl.value.path()
    with open(path, "rb") as fh:
        return fh.read()
