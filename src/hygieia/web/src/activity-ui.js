// Sessions and the activity trail in the page (protocol §11): Settings → Sessions (every
// live session of the account, "this session" marked, end one or all others) and the
// Activity page (the owner's audit trail, filtered by family, a page at a time). What
// each event kind means comes from the one table the CLI reads too.
import table from '../../client/audit_kinds.json';
import { $, el, flash, withBusy } from './ui.js';

let ctx = null;
const PAGE = 50;
let next = null; // the `before` cursor of the next page, null when there is none

/** What an event kind means; a kind this page doesn't know is shown as it is. */
export function describe(kind) {
  return table.kinds[kind] ?? kind;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : '';
}

function clientLabel(kind, userAgent) {
  if (!kind) return ''; // no client caused it (maintenance, another account's doing)
  const name = { cli: 'Command line', web: 'Web browser' }[kind] ?? 'Other client';
  return userAgent ? `${name} (${userAgent})` : name;
}

// ---- Settings → Sessions ----

export async function renderSessions() {
  const sessions = await ctx.api.json('GET', '/auth/sessions');
  $('sessions-list').replaceChildren(...sessions.map(sessionItem));
  $('sessions-others').hidden = !sessions.some((s) => !s.current);
}

function sessionItem(s) {
  const text =
    `${clientLabel(s.client, s.user_agent)} · ${s.address || 'unknown address'} · ` +
    `since ${when(s.created_at)} · last used ${when(s.last_used_at) || 'never'}`;
  const li = el(
    'li',
    { class: 'grant', 'data-session-id': s.id, 'data-client': s.client },
    el('span', { class: 'grant-who', text }),
  );
  if (s.current) {
    li.dataset.current = 'true';
    li.append(el('strong', { class: 'session-current', text: 'This session' }));
  } else {
    li.append(
      el('button', {
        type: 'button',
        class: 'btn btn-danger',
        text: 'End session',
        onclick: () =>
          act('Ending the session…', () =>
            ctx.api.json('DELETE', `/auth/sessions/${encodeURIComponent(s.id)}`),
          ).then((ok) => ok && flash('Session ended: it is logged out.', { ok: true })),
      }),
    );
  }
  return li;
}

async function act(busyText, fn) {
  try {
    await withBusy(busyText, fn);
    await renderSessions();
    return true;
  } catch (err) {
    flash(ctx.message(err));
    return false;
  }
}

async function revokeOthers() {
  let n = 0;
  const ok = await act('Ending the other sessions…', async () => {
    n = (await ctx.api.json('POST', '/auth/sessions/revoke-others')).revoked;
  });
  if (ok) flash(`${n} other session(s) ended.`, { ok: true });
}

// ---- the Activity page ----

function activityItem(e) {
  const who = e.detail?.recipient || e.detail?.contact;
  const what = describe(e.event) + (who ? ` · ${who}` : '');
  return el(
    'li',
    { class: 'activity-event', 'data-event': e.event, 'data-event-id': String(e.id) },
    el('time', { datetime: e.at, text: when(e.at) }),
    el('span', { class: 'activity-what', text: what }),
    el('span', { class: 'activity-where', text: e.address || '' }),
    el('span', { class: 'activity-client', text: clientLabel(e.client, e.user_agent) }),
  );
}

/** The trail from the newest event (reset) or the next page after what is shown. */
export async function renderActivity({ reset = true } = {}) {
  const kind = $('activity-kind').value;
  const params = new URLSearchParams({ limit: String(PAGE) });
  if (kind) params.set('kind', kind);
  if (!reset && next !== null) params.set('before', String(next));
  document.body.dataset.activity = 'loading';
  try {
    const page = await ctx.api.json('GET', `/audit?${params}`);
    const items = page.events.map(activityItem);
    if (reset) $('activity-list').replaceChildren(...items);
    else $('activity-list').append(...items);
    next = page.next;
    $('activity-more').hidden = next === null;
    $('activity-empty').hidden = $('activity-list').children.length > 0;
  } finally {
    document.body.dataset.activity = 'ready';
  }
}

export function initActivity({ api, message }) {
  ctx = { api, message };
  const select = $('activity-kind');
  select.append(
    ...Object.entries(table.families).map(([value, text]) => el('option', { value, text })),
  );
  const load = (reset) =>
    renderActivity({ reset }).catch((err) =>
      flash(`Activity could not be loaded: ${message(err)}`),
    );
  select.addEventListener('change', () => load(true));
  $('activity-more').addEventListener('click', () => load(false));
  $('sessions-others').addEventListener('click', revokeOthers);
}
