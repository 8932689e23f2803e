// Records views: list with filters, upload (drag and drop, metadata, progress),
// one record (inline view, download, delete).
import { spaced } from './contacts.js';
import { deleteRecord, inlineKind, loadRecords, openRecord, uploadRecord } from './records.js';
import { session } from './session.js';
import {
  initSharing,
  openShareDialog,
  renderSharing,
  resetSharing,
  selectionBox,
  updateSelection,
} from './share-ui.js';
import { openSharedRecord } from './sharing.js';
import {
  $,
  clearFlash,
  confirmDialog,
  el,
  flash,
  formatBytes,
  invalid,
  saveBlob,
  showView,
} from './ui.js';

let ctx = null; // {api, go, message, idle}
let current = null; // the record shown in view-record
let objectUrl = null;
let uploadAbort = null;
let chosenFile = null;

function busy() {
  return ctx.idle()?.busy() ?? (() => {});
}

// ---- list and filters ----

export async function renderRecords(api) {
  await loadRecords(api);
  fillFilterOptions();
  applyFilters();
  updateSelection();
}

/** Forget every record shown, opened or chosen for upload (on lock and log-out). */
export function resetRecordsView() {
  leaveRecord();
  resetSharing();
  $('records-list').replaceChildren();
  $('records-count').textContent = '';
  $('rec-title').textContent = '';
  $('rec-meta').replaceChildren();
  clearUploadForm();
}

function fillFilterOptions() {
  const keep = (sel, values) => {
    const v = sel.value;
    sel.replaceChildren(sel.options[0]);
    for (const x of [...values].sort((a, b) => a.localeCompare(b))) {
      sel.append(el('option', { value: x, text: x }));
    }
    sel.value = values.has(v) ? v : '';
  };
  const types = new Set();
  const tags = new Set();
  for (const r of session.records) {
    if (r.meta?.type) types.add(r.meta.type);
    for (const t of r.meta?.tags ?? []) tags.add(t);
  }
  keep($('f-type'), types);
  keep($('f-tag'), tags);
}

function matches(r, { text, type, tag, from, to }) {
  const m = r.meta;
  if (!m) return !text && !type && !tag && !from && !to;
  if (type && m.type !== type) return false;
  if (tag && !(m.tags ?? []).includes(tag)) return false;
  if (from && (!m.date || m.date < from)) return false;
  if (to && (!m.date || m.date > to)) return false;
  if (text) {
    const hay = [m.title, m.type, m.provider, m.filename, ...(m.tags ?? [])]
      .join('\n')
      .toLowerCase();
    return text
      .toLowerCase()
      .split(/\s+/)
      .filter(Boolean)
      .every((w) => hay.includes(w));
  }
  return true;
}

function applyFilters() {
  const f = {
    text: $('f-text').value.trim(),
    type: $('f-type').value,
    tag: $('f-tag').value,
    from: $('f-from').value,
    to: $('f-to').value,
  };
  const sorted = [...session.records].sort(
    (a, b) =>
      (b.meta?.date ?? '').localeCompare(a.meta?.date ?? '') ||
      String(b.created_at).localeCompare(String(a.created_at)),
  );
  const shown = sorted.filter((r) => matches(r, f));
  $('records-list').replaceChildren(...shown.map(recordItem));
  $('records-empty').hidden = session.records.length !== 0;
  $('records-count').textContent = session.records.length
    ? `${shown.length} of ${session.records.length} record${session.records.length === 1 ? '' : 's'}`
    : '';
}

const UNBOUND_SHORT = 'Unbound (legacy) record';
const UNBOUND_LONG =
  'Sealed before records named their id: its content matches its metadata, but nothing proves it is the record listed under this id.';

/** "2/2 copies": stores holding a good copy of the record, of the stores the server keeps. */
function copiesText(r) {
  return r.copies ? `${r.copies.ok}/${r.copies.total} copies` : '';
}

function recordItem(r) {
  const m = r.meta;
  const title = m
    ? m.title || m.filename || 'Untitled'
    : r.refused
      ? 'Refused record'
      : 'Unreadable record';
  const sub = el('div', { class: 'record-sub' });
  if (m) {
    if (m.date) sub.append(el('span', { text: m.date }));
    if (m.type) sub.append(el('span', { text: m.type }));
    if (m.provider) sub.append(el('span', { text: m.provider }));
    sub.append(el('span', { text: formatBytes(m.size) }));
    if (r.copies) sub.append(el('span', { class: 'copies', text: copiesText(r) }));
    for (const t of m.tags ?? []) sub.append(el('span', { class: 'tag', text: t }));
    if (!r.bound) {
      sub.append(el('span', { class: 'unbound', text: UNBOUND_SHORT, title: UNBOUND_LONG }));
    }
  } else {
    sub.append(
      el('span', {
        text: r.refused
          ? `Refused: ${r.refused}.`
          : 'Its metadata could not be decrypted or verified.',
      }),
    );
  }
  return el(
    'li',
    { class: 'record', 'data-record-id': r.id },
    el('button', {
      type: 'button',
      class: 'record-open',
      text: title,
      disabled: !m,
      onclick: () => showRecord(r),
    }),
    el(
      'div',
      { class: 'record-actions' },
      selectionBox(r),
      el('button', {
        type: 'button',
        class: 'btn btn-ghost',
        text: 'Share',
        disabled: !m,
        'aria-label': `Share ${title}`,
        onclick: () => openShareDialog([r]),
      }),
      el('button', {
        type: 'button',
        class: 'btn btn-ghost',
        text: 'Download',
        disabled: !m,
        'aria-label': `Download ${title}`,
        onclick: () => download(r),
      }),
      el('button', {
        type: 'button',
        class: 'btn btn-ghost online-only',
        text: 'Delete',
        'aria-label': `Delete ${title}`,
        onclick: () => remove(r),
      }),
    ),
    sub,
  );
}

// ---- one record ----

let opened = null; // {record, promise of {blob, release}, saved}: the plaintext shown/saved

function revokeViewer() {
  $('rec-viewer').replaceChildren();
  if (objectUrl) URL.revokeObjectURL(objectUrl);
  objectUrl = null;
  const was = opened;
  opened = null;
  if (!was) return;
  // A save in progress still reads the file: give it time before the plaintext goes.
  const release = () => was.promise.then(({ release: r }) => r()).catch(() => {});
  if (was.saved) setTimeout(release, 60_000);
  else release();
}

function progress(wrap, bar, label, text) {
  $(wrap).hidden = false;
  $(label).textContent = text;
  $(bar).value = 0;
  return (fraction) => {
    $(bar).value = Math.round(fraction * 100);
  };
}

/** The verified plaintext of `r`, downloaded and opened once per visit of the record. */
function fetchPlain(r) {
  if (opened?.record === r) return opened.promise;
  const done = busy();
  const onProgress = progress(
    'rec-progress-wrap',
    'rec-progress',
    'rec-progress-label',
    'Downloading and decrypting…',
  );
  const open = r.shared ? openSharedRecord : openRecord;
  const promise = open(ctx.api, r, { onProgress }).finally(() => {
    $('rec-progress-wrap').hidden = true;
    done();
  });
  opened = { record: r, promise, saved: false };
  promise.catch(() => {
    if (opened?.promise === promise) opened = null;
  });
  return promise;
}

/** The record the record view shows (null when it shows none). */
export function currentRecord() {
  return current;
}

export async function showRecord(r) {
  clearFlash();
  if (current !== r) revokeViewer();
  current = r;
  const m = r.meta;
  const shared = Boolean(r.shared); // someone else's: no share, no delete
  $('view-record').dataset.recordId = r.id;
  $('rec-title').textContent = m.title || m.filename || 'Untitled';
  $('rec-share').hidden = shared;
  $('rec-delete').hidden = shared;
  $('rec-remove-shared').hidden = !shared;
  const back = $('view-record').querySelector('[data-go]');
  back.dataset.go = shared ? 'shared' : 'records';
  back.textContent = shared ? 'Back to shared records' : 'Back to records';
  const rows = [
    ...(shared
      ? [
          ['Shared by', `${r.owner.email} (key ${spaced(r.owner.fingerprint)})`],
          ['Shared on', new Date(r.granted_at).toLocaleString()],
        ]
      : []),
    ['Type', m.type],
    ['Date', m.date],
    ['Provider', m.provider],
    ['Tags', (m.tags ?? []).join(', ')],
    ['File', m.filename],
    ['Size', formatBytes(m.size)],
    ['Format', m.media_type],
    ['Content ID', m.cid],
    ['SHA-256', m.sha256],
    ['Copies', copiesText(r)],
  ];
  if (!r.bound) rows.push(['Binding', `${UNBOUND_SHORT}. ${UNBOUND_LONG}`]);
  $('rec-meta').replaceChildren(
    ...rows
      .filter(([, v]) => v)
      .flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: v })]),
  );
  showView('record');
  $('rec-viewer').replaceChildren();
  renderSharing(r);
  const kind = inlineKind(m.media_type);
  if (!kind) {
    $('rec-viewer').append(
      el('p', {
        class: 'hint',
        text: 'This file type cannot be shown here. Use Download to open it.',
      }),
    );
    return;
  }
  try {
    const { blob } = await fetchPlain(r);
    if (current !== r) return;
    if (objectUrl) URL.revokeObjectURL(objectUrl);
    objectUrl = URL.createObjectURL(blob);
    const label = `${$('rec-title').textContent} (decrypted)`;
    $('rec-viewer').replaceChildren(
      el('p', {
        class: 'verified',
        text: session.offline
          ? 'Verified: every block from the gateway matches its content ID; signed by you, digest matches.'
          : shared
            ? `Verified: signed by ${r.owner.email}’s key, content ID and digest match.`
            : 'Verified: signed by you, content ID and digest match.',
      }),
      kind === 'image'
        ? el('img', { src: objectUrl, alt: label, 'data-kind': 'image' })
        : el('iframe', { src: objectUrl, title: label, 'data-kind': 'pdf' }),
    );
  } catch (err) {
    if (current === r) flash(refusal(err));
  }
}

function refusal(err) {
  const text = ctx.message(err);
  if (err?.name === 'GatewayError') return `This record was not opened. ${text}`;
  return err?.name === 'DecryptionError'
    ? `This record failed verification and was not opened. ${text}`
    : text;
}

export async function download(r) {
  clearFlash();
  try {
    if (r !== current) showRecord(r);
    const { blob } = await fetchPlain(r);
    if (opened?.record === r) opened.saved = true;
    saveBlob(blob, r.meta.filename || `${r.meta.title || 'record'}`);
  } catch (err) {
    flash(refusal(err));
  }
}

/** Leaving the record view: stop showing (and keeping) its plaintext. */
export function leaveRecord() {
  current = null;
  delete $('view-record').dataset.recordId;
  revokeViewer();
}

async function remove(r) {
  const title = r.meta?.title || r.meta?.filename || 'this record';
  const ok = await confirmDialog({
    title: 'Delete record?',
    text: `“${title}” will be deleted from your vault. This cannot be undone.`,
  });
  if (!ok) return;
  try {
    await deleteRecord(ctx.api, r);
    if (current === r) leaveRecord();
    await ctx.go('records');
    flash(`Deleted “${title}”.`, { ok: true });
  } catch (err) {
    flash(ctx.message(err));
  }
}

// ---- upload ----

function setChosenFile(file) {
  chosenFile = file;
  const dz = $('dropzone');
  dz.classList.toggle('has-file', Boolean(file));
  $('dropzone-label').textContent = file
    ? `${file.name} — ${formatBytes(file.size)}`
    : 'Drag a file here, or choose one';
  if (file && !$('up-title').value) $('up-title').value = file.name.replace(/\.[^.]+$/, '');
}

function bindDrop(zone, onFile) {
  zone.addEventListener('dragover', (e) => {
    e.preventDefault();
    e.dataTransfer.dropEffect = 'copy';
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    const file = e.dataTransfer.files?.[0];
    if (file) onFile(file);
  });
}

/** A file dropped on the records list: straight to the upload form with it. */
function startUpload(file) {
  $('form-upload').reset();
  setChosenFile(file);
  ctx.go('upload');
}

function clearUploadForm() {
  $('form-upload').reset();
  setChosenFile(null);
}

function chooseFile() {
  $('up-file').click();
}

/** The form's metadata, trimmed; tags split at commas, without repeats. */
function uploadFields() {
  const tags = $('up-tags')
    .value.split(',')
    .map((t) => t.trim())
    .filter(Boolean);
  return {
    title: $('up-title').value.trim(),
    type: $('up-type').value.trim() || null,
    date: $('up-date').value || null,
    provider: $('up-provider').value.trim() || null,
    tags: [...new Set(tags)],
  };
}

/** Whether the upload can start; if not, say why and where. */
function checkUpload() {
  if (!chosenFile) {
    flash('Choose a file to upload.');
    $('dropzone').focus();
    return false;
  }
  if (!$('up-title').value.trim()) return invalid($('up-title'), 'Give the record a title.');
  const limit = session.config.max_record_bytes;
  if (chosenFile.size > limit * 0.99) {
    flash(`This file is larger than the server accepts (${formatBytes(limit)}).`);
    return false;
  }
  return true;
}

/** One bar for both phases: encrypting fills the first half, uploading the second. */
function showUploadProgress(phase, fraction) {
  const encrypting = phase === 'encrypt';
  $('up-progress-label').textContent = encrypting
    ? 'Encrypting on this device…'
    : 'Uploading encrypted data…';
  $('up-progress').value = Math.round((encrypting ? fraction * 0.5 : 0.5 + fraction * 0.5) * 100);
}

async function submitUpload(event) {
  event.preventDefault();
  clearFlash();
  if (!checkUpload()) return;
  const fields = uploadFields();
  const submit = $('up-submit');
  submit.disabled = true;
  uploadAbort = new AbortController();
  const done = busy();
  $('up-progress-wrap').hidden = false;
  $('up-progress').value = 0;
  try {
    await uploadRecord(ctx.api, chosenFile, fields, {
      signal: uploadAbort.signal,
      onProgress: showUploadProgress,
    });
    clearUploadForm();
    await ctx.go('records');
    flash(`Uploaded “${fields.title}”.`, { ok: true });
  } catch (err) {
    flash(ctx.message(err));
  } finally {
    uploadAbort = null;
    submit.disabled = false;
    $('up-progress-wrap').hidden = true;
    done();
  }
}

function initFilters() {
  for (const id of ['f-text', 'f-type', 'f-tag', 'f-from', 'f-to']) {
    $(id).addEventListener('input', applyFilters);
  }
  // The fields are cleared after the reset event, so filter once they are.
  $('form-filter').addEventListener('reset', () => setTimeout(applyFilters, 0));
  $('form-filter').addEventListener('submit', (e) => e.preventDefault());
}

function initDropZones() {
  const dz = $('dropzone');
  dz.addEventListener('click', chooseFile);
  dz.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      chooseFile();
    }
  });
  $('up-file').addEventListener('change', () => setChosenFile($('up-file').files[0] ?? null));
  bindDrop(dz, setChosenFile);
  bindDrop($('dropzone-list'), startUpload);
  // A file dropped anywhere else must not make the browser navigate to it.
  window.addEventListener('dragover', (e) => e.preventDefault());
  window.addEventListener('drop', (e) => e.preventDefault());
}

function initUploadForm() {
  $('form-upload').addEventListener('submit', submitUpload);
  $('up-cancel').addEventListener('click', () => {
    if (uploadAbort) uploadAbort.abort();
    else ctx.go('records');
  });
}

function initRecordView() {
  $('rec-download').addEventListener('click', () => current && download(current));
  $('rec-delete').addEventListener('click', () => current && remove(current));
}

/** Wire the records views; `context` is {api, go, message, idle} from main.js. */
export function initRecords(context) {
  ctx = context;
  initFilters();
  initDropZones();
  initUploadForm();
  initRecordView();
  initSharing(context);
}
