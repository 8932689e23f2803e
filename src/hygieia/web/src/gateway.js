// Record content from an IPFS trustless gateway, verified block by block in the page
// (protocol §6; the browser side of `hygieia offline get`).
//
// Written by hand, small on purpose: @helia/verified-fetch does the same but brings
// libp2p and ~37 dependencies into the bundle (research/availability.md §2), and the
// page needs only one shape of DAG (UnixFS files, protocol §3). Every block is fetched
// raw (`GET {gw}/ipfs/{cid}?format=raw`, Accept application/vnd.ipld.raw), hashed, and
// compared with its CID's multihash before it is decoded or its bytes are passed on;
// the DAG is walked depth-first, children fetched a few at a time ahead of use, so
// memory stays at a few blocks whatever the record's size. Wrong codecs or hashes,
// oversized blocks, links that don't add up to the sizes their parent declares, and a
// file longer or shorter than the record are refused.
import * as dagPb from '@ipld/dag-pb';
import { UnixFS } from 'ipfs-unixfs';
import { CID } from 'multiformats/cid';
import * as raw from 'multiformats/codecs/raw';
import { sha256 } from 'multiformats/hashes/sha2';
import { equalBytes } from './crypto/bytes.js';

// The 2 MiB block cap of bitswap and Helia: Hygieia's leaves are 1 MiB.
export const MAX_BLOCK_BYTES = 2 * 1024 * 1024;
const MAX_DEPTH = 16;
const PREFETCH = 4; // children fetched ahead of the one being read, per level
const STORAGE_KEY = 'hygieia.gateway.v1';
const ORIGINS_KEY = 'hygieia.gateway-origins.v1';
export const DEFAULT_GATEWAY = 'https://trustless-gateway.link';

/** The gateway could not be used, or what it served is not the record's content. */
export class GatewayError extends Error {
  /** `code`: 'unreachable' | 'missing' | 'tampered' | 'invalid' | 'refused'. */
  constructor(code, message, options) {
    super(message, options);
    this.name = 'GatewayError';
    this.code = code;
  }
}

// ---- the gateway setting (localStorage: a URL, nothing secret) ----------------------

/** The gateway URL as typed, reduced to its origin and path; throws TypeError if bad. */
export function normalizeGateway(text) {
  const url = new URL(String(text).trim());
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new TypeError('a gateway URL starts with https:// (or http:// for this computer)');
  }
  if (url.username || url.password || url.search || url.hash) {
    throw new TypeError('a gateway URL has no user name, query or fragment');
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

export function getGateway() {
  try {
    return localStorage.getItem(STORAGE_KEY) || DEFAULT_GATEWAY;
  } catch {
    return DEFAULT_GATEWAY;
  }
}

export function setGateway(text) {
  const url = normalizeGateway(text);
  localStorage.setItem(STORAGE_KEY, url);
  return url;
}

/** The origins the server's CSP allows (GET /config), kept for offline use. */
export function rememberAllowedOrigins(origins) {
  if (!Array.isArray(origins)) return;
  try {
    localStorage.setItem(ORIGINS_KEY, JSON.stringify(origins.map(String)));
  } catch {
    /* storage switched off */
  }
}

export function allowedOrigins() {
  try {
    const list = JSON.parse(localStorage.getItem(ORIGINS_KEY) || 'null');
    return Array.isArray(list) ? list : null;
  } catch {
    return null;
  }
}

/** Whether `url`'s origin matches a CSP source `scheme://host[:port|:*]`. */
export function originAllowed(url, origins) {
  const u = new URL(url);
  const port = u.port || (u.protocol === 'https:' ? '443' : '80');
  return origins.some((source) => {
    const m = /^(https?:)\/\/([^/:]+|\[[^\]]+\])(?::(\d+|\*))?$/.exec(source);
    if (!m || m[1] !== u.protocol || m[2].toLowerCase() !== u.hostname.toLowerCase()) return false;
    const want = m[3] ?? (m[1] === 'https:' ? '443' : '80');
    return want === '*' || want === port;
  });
}

// ---- blocks ---------------------------------------------------------------------

function checkCid(cid) {
  if (cid.multihash.code !== sha256.code || cid.multihash.size !== 32) {
    throw new GatewayError('invalid', `Block ${cid} uses a hash this app does not check.`);
  }
  if (cid.code !== raw.code && cid.code !== dagPb.code) {
    throw new GatewayError(
      'invalid',
      `Block ${cid} is not a UnixFS block (codec 0x${cid.code.toString(16)}).`,
    );
  }
}

async function readLimited(res, cid, signal) {
  const declared = Number(res.headers.get('Content-Length'));
  if (declared > MAX_BLOCK_BYTES) {
    throw new GatewayError('invalid', `The gateway sent an oversized block for ${cid}.`);
  }
  const reader = res.body.getReader();
  const parts = [];
  let size = 0;
  try {
    for (;;) {
      if (signal?.aborted) throw new DOMException('download cancelled', 'AbortError');
      const { done, value } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > MAX_BLOCK_BYTES) {
        throw new GatewayError('invalid', `The gateway sent an oversized block for ${cid}.`);
      }
      parts.push(value);
    }
  } catch (err) {
    await reader.cancel().catch(() => {});
    throw err;
  }
  const out = new Uint8Array(size);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** One block from the gateway, hashed and compared with its CID. */
export async function fetchBlock(gateway, cid, { signal } = {}) {
  checkCid(cid);
  let res;
  try {
    res = await fetch(`${gateway}/ipfs/${cid}?format=raw`, {
      headers: { Accept: 'application/vnd.ipld.raw' },
      cache: 'no-store',
      credentials: 'omit',
      referrerPolicy: 'no-referrer',
      signal,
    });
  } catch (err) {
    if (err?.name === 'AbortError') throw err;
    throw new GatewayError(
      'unreachable',
      `The IPFS gateway ${gateway} cannot be reached (or this server's policy does not allow it).`,
      { cause: err },
    );
  }
  if (!res.ok) {
    await res.body?.cancel().catch(() => {});
    throw new GatewayError(
      res.status === 404 ? 'missing' : 'refused',
      `The gateway does not have block ${cid} (HTTP ${res.status}): the record cannot be fetched whole.`,
    );
  }
  const bytes = await readLimited(res, cid, signal);
  const digest = await sha256.digest(bytes);
  if (!equalBytes(digest.bytes, cid.multihash.bytes)) {
    throw new GatewayError(
      'tampered',
      `Block ${cid} from the gateway does not match its content ID: tampered or wrong data. Nothing was saved.`,
    );
  }
  return bytes;
}

// ---- the UnixFS DAG -----------------------------------------------------------------

function decodeFileNode(cid, bytes) {
  let node;
  let unixfs;
  try {
    node = dagPb.decode(bytes);
    unixfs = UnixFS.unmarshal(node.Data ?? new Uint8Array(0));
  } catch (err) {
    throw new GatewayError('invalid', `Block ${cid} is not a valid UnixFS node.`, { cause: err });
  }
  if (unixfs.type !== 'file' && unixfs.type !== 'raw') {
    throw new GatewayError('invalid', `Block ${cid} is a UnixFS ${unixfs.type}, not a file.`);
  }
  if (unixfs.blockSizes.length !== node.Links.length) {
    throw new GatewayError('invalid', `Block ${cid} lists sizes that don't match its links.`);
  }
  return {
    links: node.Links.map((l) => l.Hash),
    sizes: unixfs.blockSizes.map(Number),
    data: unixfs.data,
  };
}

/**
 * Fetch `cids` in order, at most PREFETCH ahead of the one being consumed. Yields
 * [cid, bytes]; unconsumed fetches are cancelled when the consumer stops.
 */
async function* prefetched(gateway, cids, signal) {
  const abort = new AbortController();
  const onAbort = () => abort.abort(signal.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  const pending = [];
  let next = 0;
  const fill = () => {
    while (pending.length < PREFETCH && next < cids.length) {
      const cid = cids[next++];
      const p = fetchBlock(gateway, cid, { signal: abort.signal });
      p.catch(() => {}); // seen when awaited; never an unhandled rejection
      pending.push([cid, p]);
    }
  };
  try {
    fill();
    while (pending.length) {
      const [cid, p] = pending.shift();
      const bytes = await p;
      fill();
      yield [cid, bytes];
    }
  } finally {
    abort.abort();
    signal?.removeEventListener('abort', onAbort);
  }
}

/** The file bytes under `cid` (whose block is `bytes`), in order; returns their count. */
async function* fileBytes(gateway, cid, bytes, { depth, expect, signal }) {
  if (cid.code === raw.code) {
    if (expect !== null && bytes.length !== expect) {
      throw new GatewayError(
        'invalid',
        `Block ${cid} has ${bytes.length} bytes, its parent says ${expect}.`,
      );
    }
    if (bytes.length) yield bytes;
    return bytes.length;
  }
  if (depth > MAX_DEPTH) throw new GatewayError('invalid', `The DAG under ${cid} is too deep.`);
  const node = decodeFileNode(cid, bytes);
  const total = (node.data?.length ?? 0) + node.sizes.reduce((a, b) => a + b, 0);
  if (expect !== null && total !== expect) {
    throw new GatewayError(
      'invalid',
      `Block ${cid} holds ${total} bytes, its parent says ${expect}.`,
    );
  }
  if (node.data?.length) yield node.data;
  let i = 0;
  for await (const [child, childBytes] of prefetched(gateway, node.links, signal)) {
    checkCid(child);
    const got = yield* fileBytes(gateway, child, childBytes, {
      depth: depth + 1,
      expect: node.sizes[i],
      signal,
    });
    if (got !== node.sizes[i]) {
      throw new GatewayError('invalid', `Block ${child} is the wrong size.`);
    }
    i += 1;
  }
  return total;
}

/**
 * The content of `cid` from `gateway`, as verified chunks (each block hashed against
 * its CID before its bytes are yielded). `size`: the length the record must have.
 */
export async function* verifiedContent(gateway, cidText, { size, signal } = {}) {
  let cid;
  try {
    cid = CID.parse(cidText).toV1();
  } catch (err) {
    throw new GatewayError('invalid', `Not a content ID: ${cidText}.`, { cause: err });
  }
  const root = await fetchBlock(gateway, cid, { signal });
  const got = yield* fileBytes(gateway, cid, root, { depth: 0, expect: size ?? null, signal });
  if (size !== undefined && got !== size) {
    throw new GatewayError(
      'invalid',
      `The content of ${cid} has ${got} bytes, the record ${size}.`,
    );
  }
}
