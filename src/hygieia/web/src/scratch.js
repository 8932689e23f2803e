// Scratch files for large transfers, so the page's memory stays flat whatever the size.
//
// A record must be sealed completely before its upload starts (the `meta` part, sent
// first, carries the content CID), and a download must be verified completely before
// anything is handed to the user. Both need somewhere to keep a whole file that is not
// memory: the Origin Private File System, which Chromium, Firefox and Safari keep on
// disk (in a private window, in memory). A File read back from it is disk-backed, so an
// XHR upload or a blob: URL streams from disk. Where OPFS is missing, Blob parts are
// used (correct, but held by the browser's blob store).
//
// Scratch files are deleted once used, and every leftover is swept on start, lock and
// log-out, so no decrypted record stays on disk in the origin's storage.

const DIR = 'hygieia-scratch';
const LOCK = 'hygieia-scratch-';

function randomHex(n) {
  const b = new Uint8Array(n);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

// Each tab keeps its files in its own folder, marked alive by a Web Lock held for the
// tab's lifetime, so one tab's sweep never deletes another tab's transfer.
const TAB = randomHex(8);
let tabLock = null;

function holdTabLock() {
  if (tabLock || !navigator.locks) return;
  tabLock = new Promise((acquired) => {
    navigator.locks.request(LOCK + TAB, () => {
      acquired();
      return new Promise(() => {}); // released when the tab goes away
    });
  });
}

async function root() {
  const top = await navigator.storage.getDirectory();
  return top.getDirectoryHandle(DIR, { create: true });
}

async function scratchDir() {
  if (!navigator.storage?.getDirectory) return null;
  try {
    holdTabLock();
    await tabLock;
    return await (await root()).getDirectoryHandle(TAB, { create: true });
  } catch {
    return null;
  }
}

function randomName(prefix) {
  return `${prefix}-${randomHex(12)}`;
}

/**
 * A write-once file: `write(bytes)` in order, then `close()` → a Blob/File to read.
 * `remove()` deletes it, after use or instead of `close()`.
 */
export async function scratchFile(prefix) {
  const dir = await scratchDir();
  if (dir) {
    const name = randomName(prefix);
    try {
      const handle = await dir.getFileHandle(name, { create: true });
      const writable = await handle.createWritable();
      return opfsFile(dir, name, handle, writable);
    } catch {
      await dir.removeEntry(name).catch(() => {});
    }
  }
  return memoryFile();
}

function opfsFile(dir, name, handle, writable) {
  let open = true;
  const remove = async () => {
    if (open) {
      open = false;
      await writable.abort().catch(() => {});
    }
    await dir.removeEntry(name).catch(() => {});
  };
  return {
    write: (bytes) => writable.write(bytes),
    async close() {
      open = false;
      await writable.close();
      return handle.getFile();
    },
    remove,
  };
}

function memoryFile() {
  let parts = [];
  return {
    async write(bytes) {
      parts.push(new Blob([bytes]));
    },
    async close() {
      const blob = new Blob(parts);
      parts = [];
      return blob;
    },
    async remove() {
      parts = [];
    },
  };
}

/**
 * Delete this tab's scratch files (on lock and log-out) and those of tabs that are
 * gone (leftovers of a closed or crashed tab).
 */
export async function sweepScratch() {
  if (!navigator.storage?.getDirectory) return;
  try {
    const dir = await root();
    const held = navigator.locks ? (await navigator.locks.query()).held.map((l) => l.name) : [];
    for await (const name of dir.keys()) {
      if (name === TAB || !held.includes(LOCK + name)) {
        await dir.removeEntry(name, { recursive: true }).catch(() => {});
      }
    }
  } catch {
    /* nothing there, or a file still being read: the next sweep gets it */
  }
}
