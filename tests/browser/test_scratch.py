"""Decrypted files left in the origin-private file system are swept (review finding 14).

Uploads and downloads go through scratch files in OPFS (web/src/scratch.js); a record
being viewed is one, in plaintext. A tab that crashes or is closed leaves its files
behind: the next start of the app and every log-out delete them, while another open
tab's files (its folder marked alive by a Web Lock) are left alone.

The sweeping itself was already in place when the review's finding was filed (these
tests pass on that code too, the sweeps being quick); they pin it down. The start and
log-out now wait for the sweep before the page reports ready or shows the log-in form,
so nothing the app does next can race it, and a session that expires sweeps as well.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser import flows

pytestmark = pytest.mark.browser

PW = "scratch sweeping passphrase 7 ✓"

# A folder as a tab leaves it: hygieia-scratch/<tab>/<prefix>-<random>, holding plaintext.
LEAVE_BEHIND = """async ([tab, text]) => {
  const top = await navigator.storage.getDirectory();
  const root = await top.getDirectoryHandle('hygieia-scratch', { create: true });
  const dir = await root.getDirectoryHandle(tab, { create: true });
  for (const name of ['get-0123456789abcdef01234567', 'up-0123456789abcdef01234567']) {
    const w = await (await dir.getFileHandle(name, { create: true })).createWritable();
    await w.write(text);
    await w.close();
  }
}"""
LIST = """async () => {
  const top = await navigator.storage.getDirectory();
  let root;
  try { root = await top.getDirectoryHandle('hygieia-scratch'); } catch { return []; }
  const out = [];
  for await (const [name, dir] of root.entries()) {
    for await (const file of dir.keys()) out.push(`${name}/${file}`);
    if (!out.some((p) => p.startsWith(`${name}/`))) out.push(`${name}/`);
  }
  return out.sort();
}"""
# What a live tab holds: the Web Lock that marks its folder as in use.
HOLD = """(tab) => new Promise((held) => {
  navigator.locks.request(`hygieia-scratch-${tab}`, () => {
    held();
    return new Promise(() => {});
  });
})"""


def leftovers(web: Any) -> list[str]:
    return [p for p in web.page.evaluate(LIST) if not p.endswith("/")]


def test_a_dead_tabs_plaintext_is_swept_at_start_and_a_live_tabs_is_kept(
    web: Any, browser: Any
) -> None:
    """A crashed or closed tab's plaintext is gone once the app has started again."""
    web.goto()
    web.page.evaluate(LEAVE_BEHIND, ["deadbeefdeadbeef", "Blood count: plaintext"])
    # A second tab of the same origin, still open, with a transfer of its own.
    other = web.page.context.new_page()
    other.goto(web.base_url + "/")
    other.wait_for_selector("body[data-ready=true]")
    other.evaluate(HOLD, "a11ea11ea11ea11e")
    other.evaluate(LEAVE_BEHIND, ["a11ea11ea11ea11e", "still being viewed"])

    web.goto()  # the app starts again (a reload: the old tab's lock went with it)
    assert leftovers(web) == [
        "a11ea11ea11ea11e/get-0123456789abcdef01234567",
        "a11ea11ea11ea11e/up-0123456789abcdef01234567",
    ]
    other.close()  # the other tab goes away (as a crash would): its lock is released
    web.goto()
    assert leftovers(web) == []


def test_logout_sweeps_leftovers(web: Any) -> None:
    """Log-out deletes every leftover before it shows the log-in form."""
    web.goto()
    flows.signup(web, "scratch@example.org", PW)
    web.page.evaluate(LEAVE_BEHIND, ["0badc0de0badc0de", "Discharge letter: plaintext"])
    assert len(leftovers(web)) == 2
    flows.logout(web)
    assert leftovers(web) == []
