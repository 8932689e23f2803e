// The app's service worker: keeps the app shell (page, scripts, style, icon) so the
// app starts when the server can't be reached, for its offline mode (protocol §6).
//
// Network first: while the server answers, every shell file comes from it (and the
// copy kept here is refreshed); only when the network fails is the kept copy served.
// API answers (/api/) are never intercepted or kept, nor is anything from another
// origin (the IPFS gateway's blocks are checked by the page itself). Served as
// /app/sw.js with `Service-Worker-Allowed: /`, registered with scope `/`.

/* global __BUILD__ */
// One cache per build (build.py defines __BUILD__ from the sources' digest): a new
// build is a new worker, which caches the new shell and drops the old caches.
const CACHE = `hygieia-shell-${__BUILD__}`;
const SHELL = ['/', '/css/app.css', '/favicon.svg'];
const INDEX = '/';

async function precache() {
  const cache = await caches.open(CACHE);
  const res = await fetch('/app/shell.json', { cache: 'no-store' });
  if (!res.ok) throw new Error(`shell manifest: HTTP ${res.status}`);
  const files = await res.json();
  await cache.addAll([...SHELL, ...files.map((f) => `/app/${f}`)]);
}

self.addEventListener('install', (event) => {
  event.waitUntil(precache().then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name.startsWith('hygieia-shell-') && name !== CACHE) await caches.delete(name);
      }
      await self.clients.claim();
    })(),
  );
});

function isShell(request) {
  const url = new URL(request.url);
  return (
    request.method === 'GET' &&
    url.origin === self.location.origin &&
    !url.pathname.startsWith('/api/')
  );
}

async function networkFirst(request) {
  const navigate = request.mode === 'navigate';
  const key = navigate ? INDEX : request;
  try {
    const res = await fetch(request);
    if (res.ok && res.type === 'basic') {
      const copy = res.clone();
      caches
        .open(CACHE)
        .then((cache) => cache.put(key, copy))
        .catch(() => {});
    }
    return res;
  } catch (err) {
    const hit = await caches.match(key, { ignoreSearch: true });
    if (hit) return hit;
    throw err;
  }
}

self.addEventListener('fetch', (event) => {
  if (isShell(event.request)) event.respondWith(networkFirst(event.request));
});
