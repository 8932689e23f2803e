// Small DOM helpers: views, busy indicator, messages, downloads, confirm dialog.

export const $ = (id) => document.getElementById(id);

const VIEWS = [
  'auth',
  'offline',
  'recovery-code',
  'locked',
  'records',
  'upload',
  'record',
  'settings',
  'shared',
  'emergency',
  'link',
  'activity',
];

export function showView(name, { focus = true } = {}) {
  for (const v of VIEWS) $(`view-${v}`).hidden = v !== name;
  document.body.dataset.view = name;
  if (focus) {
    const h1 = $(`view-${name}`).querySelector('h1');
    if (h1) {
      h1.tabIndex = -1;
      h1.focus({ preventScroll: false });
    }
  }
}

let busyCount = 0;
/** Run `fn` with the busy indicator showing `text`; buttons in `form` disabled. */
export async function withBusy(text, fn, form) {
  busyCount += 1;
  $('busy-text').textContent = text;
  $('busy').hidden = false;
  const buttons = form ? [...form.querySelectorAll('button')] : [];
  for (const b of buttons) b.disabled = true;
  // Let the indicator paint before CPU-heavy work (Argon2id) starts.
  await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
  try {
    return await fn();
  } finally {
    busyCount -= 1;
    if (busyCount === 0) $('busy').hidden = true;
    for (const b of buttons) b.disabled = false;
  }
}

export function flash(message, { ok = false } = {}) {
  const box = $('flash');
  box.textContent = message;
  box.classList.toggle('ok', ok);
  box.setAttribute('role', ok ? 'status' : 'alert');
  box.hidden = !message;
}

export function clearFlash() {
  flash('');
}

/** Mark a field invalid with a message shown in the flash area; focus it. */
export function invalid(input, message) {
  input.setAttribute('aria-invalid', 'true');
  input.addEventListener('input', () => input.removeAttribute('aria-invalid'), { once: true });
  flash(message);
  input.focus();
  return false;
}

export function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename || 'download';
  a.rel = 'noopener';
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

export function confirmDialog({ title, text, ok = 'Delete' }) {
  const dlg = $('confirm');
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = ok;
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok'), { once: true });
    dlg.returnValue = '';
    dlg.showModal();
  });
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : v);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

export function formatBytes(n) {
  if (n == null) return '';
  const units = ['B', 'KB', 'MB', 'GB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i += 1;
  }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}
