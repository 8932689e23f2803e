// A second real IPFS node for Hygieia's tests: Helia 7 on Node 22, loopback only.
//
// Started by tests/support/helia_node.py (which installs this directory's pinned
// package-lock.json into a cache with `npm ci`); run by hand with
//
//   node helia_node.mjs --repo DIR [--port 0]
//
// It prints one JSON line on stdout once it is ready:
//   {"ready": true, "gateway": "http://127.0.0.1:P", "peerId": "12D3…", "multiaddrs": ["/ip4/127.0.0.1/tcp/Q/p2p/12D3…"]}
//
// The libp2p side (TCP on 127.0.0.1 only, noise, yamux + mplex for js-ipfs 0.66,
// identify, bitswap) has no bootstrap, no peer discovery, no delegated routing, no
// mDNS/UPnP (createHeliaLight + withLibp2pLight add none of them), and a connection
// gater that refuses to dial anything but loopback: no traffic leaves 127.0.0.1.
//
// The HTTP server on 127.0.0.1 serves:
//   Trustless Gateway (github.com/ipfs/specs, src/http-gateways/trustless-gateway.md)
//     GET|HEAD /ipfs/{cid}?format=raw   (or Accept: application/vnd.ipld.raw)  one block
//     GET|HEAD /ipfs/{cid}?format=car   (or Accept: application/vnd.ipld.car)  CARv1
//       dag-scope=all|entity|block (entity = all for a UnixFS file), car-order=dfs|unk
//       (always dfs), car-dups=y|n (default n), car-version=1; entity-bytes → 501.
//     Gateway reads come from the local blockstore only and never from the network:
//     the tests ask "what does this node hold?", so a missing root answers 404 and a
//     missing child cuts the CAR short (as the spec allows), instead of the node
//     quietly fetching it over bitswap. Other formats answer 406 (trustless only).
//     Every gateway response carries `Access-Control-Allow-Origin: *` and OPTIONS
//     answers CORS preflights, as public gateways do (the web app reads it from Chromium).
//   Control API (JSON; for tests only)
//     GET    /control/id                 {peerId, multiaddrs}
//     GET    /control/peers              {peers: [{peerId, multiaddr}]}
//     POST   /control/dial               body {"multiaddr": "/ip4/127.0.0.1/tcp/P/p2p/ID"}
//     POST   /control/pin?cid=C&timeout=S  fetch the whole DAG over bitswap and pin it;
//                                        answers when complete: {cid, blocks}; 504 on timeout.
//                                        Pinning a pinned CID re-walks it and refetches
//                                        missing blocks (repair).
//     GET    /control/pins               {pins: [cid…]}
//     GET    /control/pins/C             {cid, pinned}
//     DELETE /control/pins/C             unpin (blocks stay until deleted)
//     GET    /control/blocks/C           {cid, has, size}   (404 with has=false)
//     DELETE /control/blocks/C           delete the block from disk even if pinned: {cid, deleted}
//     POST   /control/blocks?codec=raw|dag-pb[&cid=C]  body = block bytes; stores it
//                                        under its sha2-256 CIDv1 ({cid}); with cid=C it is
//                                        stored under C *unchecked* (to plant a corrupt block)
//     POST   /control/stop               stop the node and exit
//
// The CAR writer and DAG walk are written by hand (about 40 lines) rather than taken
// from @helia/car: the walk must read the local blockstore only, stop at the first
// missing block, honour dups, and respect HTTP back-pressure block by block.

import { once } from 'node:events'
import http from 'node:http'
import { parseArgs } from 'node:util'
import { withBitswap } from '@helia/bitswap'
import { withLibp2pLight } from '@helia/libp2p'
import * as dagCbor from '@ipld/dag-cbor'
import * as dagPb from '@ipld/dag-pb'
import { identify } from '@libp2p/identify'
import { mplex } from '@libp2p/mplex'
import { noise } from '@libp2p/noise'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { FsBlockstore } from 'blockstore-fs'
import { FsDatastore } from 'datastore-fs'
import { createHeliaLight } from 'helia'
import { base36 } from 'multiformats/bases/base36'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'

const RAW = 0x55
const DAG_PB = 0x70
const DAG_CBOR = 0x71
const IDENTITY = 0x00
const RAW_TYPE = 'application/vnd.ipld.raw'
const CAR_TYPE = 'application/vnd.ipld.car'
const CORS = {
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Allow-Methods': 'GET, HEAD, OPTIONS',
  'Access-Control-Allow-Headers': 'Content-Type, Range, User-Agent, X-Requested-With, Accept',
  'Access-Control-Expose-Headers':
    'Content-Length, Content-Range, Content-Type, Etag, X-Ipfs-Path, X-Ipfs-Roots'
}

const { values: args } = parseArgs({
  options: { repo: { type: 'string' }, port: { type: 'string', default: '0' } }
})
if (args.repo == null) {
  console.error('usage: helia_node.mjs --repo DIR [--port N]')
  process.exit(2)
}

const isLoopback = (ma) => /^\/(ip4\/127\.\d+\.\d+\.\d+|ip6\/::1)\//.test(ma.toString())

const blockstore = new FsBlockstore(`${args.repo}/blocks`)
const datastore = new FsDatastore(`${args.repo}/datastore`)
const helia = withBitswap(
  withLibp2pLight(createHeliaLight({ blockstore, datastore }), {
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    // js-ipfs 0.66 speaks mplex only, and opens one stream per block: mplex's default
    // limit (5 new inbound streams/s) would drop the connection mid-transfer.
    streamMuxers: [yamux(), mplex({ disconnectThreshold: 10_000 })],
    peerDiscovery: [],
    connectionGater: {
      denyDialMultiaddr: async (ma) => !isLoopback(ma),
      denyInboundConnection: async (maConn) => !isLoopback(maConn.remoteAddr)
    },
    services: { identify: identify() }
  })
)
await helia.start()

const listenAddrs = helia.libp2p.getMultiaddrs().map((ma) => ma.toString())
if (listenAddrs.length === 0 || !helia.libp2p.getMultiaddrs().every(isLoopback)) {
  console.error(`refusing to run: non-loopback listen addresses ${JSON.stringify(listenAddrs)}`)
  await helia.stop()
  process.exit(1)
}

// ---------------------------------------------------------------- helpers

class HttpError extends Error {
  constructor (status, code, message) {
    super(message)
    this.status = status
    this.code = code
  }
}

function parseCid (text) {
  try {
    return text.startsWith('k') ? CID.parse(text, base36) : CID.parse(text)
  } catch {
    throw new HttpError(400, 'invalid_cid', `not a CID: ${text.slice(0, 100)}`)
  }
}

/** Blockstores (interface-blockstore 7) yield a block as chunks: one block is ≤ 2 MiB. */
async function collect (chunks) {
  const parts = []
  for await (const chunk of chunks) parts.push(chunk)
  return Buffer.concat(parts)
}

/** The block's bytes from the local disk only (identity CIDs carry their bytes), or null. */
async function localBlock (cid) {
  if (cid.multihash.code === IDENTITY) return cid.multihash.digest
  if (!await blockstore.has(cid)) return null
  try {
    return await collect(blockstore.get(cid))
  } catch (err) {
    if (err.name === 'NotFoundError') return null // deleted in between
    throw err
  }
}

function linksOf (cid, bytes) {
  if (cid.code === DAG_PB) return dagPb.decode(bytes).Links.map((link) => link.Hash)
  if (cid.code === DAG_CBOR) {
    const found = []
    const visit = (value) => {
      const asCid = CID.asCID(value)
      if (asCid != null) found.push(asCid)
      else if (Array.isArray(value)) value.forEach(visit)
      else if (value != null && typeof value === 'object' && !(value instanceof Uint8Array)) Object.values(value).forEach(visit)
    }
    visit(dagCbor.decode(bytes))
    return found
  }
  return [] // raw and anything else: a leaf
}

function varint (n) {
  const out = []
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80)
    n = Math.floor(n / 128)
  }
  out.push(n)
  return Uint8Array.from(out)
}

async function write (res, chunk) {
  if (res.destroyed) return false
  if (!res.write(chunk)) {
    await Promise.race([once(res, 'drain'), once(res, 'close')])
  }
  return !res.destroyed
}

function json (res, status, body) {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) })
  res.end(text)
}

async function readBody (req, limit = 4 * 1024 * 1024) {
  const chunks = []
  let size = 0
  for await (const chunk of req) {
    size += chunk.length
    if (size > limit) throw new HttpError(413, 'too_large', `body over ${limit} bytes`)
    chunks.push(chunk)
  }
  return Buffer.concat(chunks)
}

// ---------------------------------------------------------------- gateway

/** "raw", "car" or null, from ?format= (wins) or the Accept header. */
function wantedFormat (url, req) {
  const format = url.searchParams.get('format')
  if (format != null) return format
  const accept = req.headers.accept ?? ''
  for (const part of accept.split(',')) {
    const [type, ...params] = part.trim().split(';').map((s) => s.trim())
    if (type === RAW_TYPE) return 'raw'
    if (type === CAR_TYPE) {
      for (const param of params) {
        const [k, v] = param.split('=')
        if (k === 'version' && url.searchParams.get('car-version') == null) url.searchParams.set('car-version', v)
        if (k === 'order' && url.searchParams.get('car-order') == null) url.searchParams.set('car-order', v)
        if (k === 'dups' && url.searchParams.get('car-dups') == null) url.searchParams.set('car-dups', v)
      }
      return 'car'
    }
  }
  return null
}

async function gateway (req, res, url) {
  if (req.method === 'OPTIONS') {
    res.writeHead(204, { ...CORS, 'Access-Control-Max-Age': '86400' })
    return res.end()
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    throw new HttpError(405, 'method_not_allowed', 'GET, HEAD or OPTIONS only')
  }
  const [cidText, ...rest] = url.pathname.slice('/ipfs/'.length).split('/')
  const cid = parseCid(decodeURIComponent(cidText))
  if (rest.some((segment) => segment !== '')) {
    throw new HttpError(501, 'path_not_supported', 'this test gateway serves /ipfs/{cid} without a path')
  }
  const format = wantedFormat(url, req)
  if (format !== 'raw' && format !== 'car') {
    throw new HttpError(406, 'not_acceptable',
      'trustless gateway: ask for ?format=raw or ?format=car (or Accept application/vnd.ipld.raw|car)')
  }
  const root = await localBlock(cid)
  if (root == null) throw new HttpError(404, 'not_found', `block ${cid} is not in this node's blockstore`)
  const common = {
    ...CORS,
    'Cache-Control': 'public, max-age=29030400, immutable',
    'X-Content-Type-Options': 'nosniff',
    'X-Ipfs-Path': `/ipfs/${cidText}`,
    'X-Ipfs-Roots': cid.toString(),
    Vary: 'Accept'
  }
  if (format === 'raw') {
    res.writeHead(200, {
      ...common,
      'Content-Type': RAW_TYPE,
      'Content-Length': root.length,
      'Content-Disposition': `attachment; filename="${cid}.bin"`,
      Etag: `"${cid}.raw"`
    })
    return res.end(req.method === 'HEAD' ? undefined : root)
  }
  const version = url.searchParams.get('car-version') ?? '1'
  if (version !== '1') throw new HttpError(400, 'car_version', 'only CARv1 is served')
  if (url.searchParams.get('entity-bytes') != null) {
    throw new HttpError(501, 'entity_bytes_not_supported', 'entity-bytes is not supported by this test gateway')
  }
  const scope = url.searchParams.get('dag-scope') ?? 'all'
  if (!['all', 'entity', 'block'].includes(scope)) throw new HttpError(400, 'dag_scope', `bad dag-scope ${scope}`)
  const dups = url.searchParams.get('car-dups') === 'y' ? 'y' : 'n'
  res.writeHead(200, {
    ...common,
    'Content-Type': `${CAR_TYPE}; version=1; order=dfs; dups=${dups}`,
    'Content-Disposition': `attachment; filename="${cid}.car"`,
    Etag: `"${cid}.car.${scope}.${dups}"`
  })
  if (req.method === 'HEAD') return res.end()
  await writeCar(res, cid, root, { scope, dups: dups === 'y' })
  res.end()
}

/** CARv1, depth-first from the root; stops (a short CAR) at the first block this node lacks. */
async function writeCar (res, root, rootBytes, { scope, dups }) {
  const header = dagCbor.encode({ roots: [root], version: 1 })
  if (!await write(res, Buffer.concat([varint(header.length), header]))) return
  const seen = new Set()
  const stack = [root]
  while (stack.length > 0) {
    const cid = stack.pop()
    const key = cid.toString()
    if (!dups && seen.has(key)) continue
    seen.add(key)
    const bytes = cid === root ? rootBytes : await localBlock(cid)
    if (bytes == null) return // a missing child: the CAR ends here, as the spec allows
    const section = Buffer.concat([varint(cid.bytes.length + bytes.length), cid.bytes, bytes])
    if (!await write(res, section)) return
    if (scope === 'block') return
    stack.push(...linksOf(cid, bytes).reverse())
  }
}

// ---------------------------------------------------------------- control

/** Walk the whole DAG through Helia's networked blockstore (bitswap for what is missing). */
async function fetchAll (cid, signal) {
  let blocks = 0
  const stack = [cid]
  while (stack.length > 0) {
    const next = stack.pop()
    const bytes = await collect(helia.blockstore.get(next, { signal }))
    blocks++
    stack.push(...linksOf(next, bytes).reverse())
  }
  return blocks
}

async function pin (cid, timeoutSeconds) {
  const signal = AbortSignal.timeout(timeoutSeconds * 1000)
  try {
    if (await isPinned(cid)) return { cid: cid.toString(), blocks: await fetchAll(cid, signal), already: true }
    let blocks = 0
    for await (const _ of helia.pins.add(cid, { signal })) blocks++ // eslint-disable-line no-unused-vars
    return { cid: cid.toString(), blocks, already: false }
  } catch (err) {
    if (signal.aborted) throw new HttpError(504, 'timeout', `pinning ${cid} did not finish in ${timeoutSeconds} s`)
    throw err
  }
}

async function isPinned (cid) {
  try {
    await helia.pins.get(cid)
    return true
  } catch (err) {
    if (err.name === 'NotFoundError') return false
    throw err
  }
}

async function control (req, res, url) {
  const route = `${req.method} ${url.pathname.replace(/^\/control\/(pins|blocks)\/[^/]+$/, '/control/$1/:cid')}`
  const cidParam = () => parseCid(decodeURIComponent(url.pathname.split('/')[3]))
  switch (route) {
    case 'GET /control/id':
      return json(res, 200, { peerId: helia.libp2p.peerId.toString(), multiaddrs: helia.libp2p.getMultiaddrs().map(String) })
    case 'GET /control/peers':
      return json(res, 200, {
        peers: helia.libp2p.getConnections().map((c) => ({ peerId: c.remotePeer.toString(), multiaddr: c.remoteAddr.toString() }))
      })
    case 'POST /control/dial': {
      const body = JSON.parse((await readBody(req)).toString() || '{}')
      const ma = multiaddr(String(body.multiaddr ?? ''))
      if (!isLoopback(ma)) throw new HttpError(400, 'not_loopback', `refusing to dial ${ma}: loopback only`)
      const conn = await helia.libp2p.dial(ma, { signal: AbortSignal.timeout(15_000) })
      return json(res, 200, { peerId: conn.remotePeer.toString(), multiaddr: conn.remoteAddr.toString() })
    }
    case 'POST /control/pin': {
      const cid = parseCid(url.searchParams.get('cid') ?? '')
      const timeout = Number(url.searchParams.get('timeout') ?? '60')
      return json(res, 200, await pin(cid, timeout))
    }
    case 'GET /control/pins': {
      const pins = []
      for await (const entry of helia.pins.ls()) pins.push(entry.cid.toString())
      return json(res, 200, { pins })
    }
    case 'GET /control/pins/:cid': {
      const cid = cidParam()
      return json(res, 200, { cid: cid.toString(), pinned: await isPinned(cid) })
    }
    case 'DELETE /control/pins/:cid': {
      const cid = cidParam()
      if (!await isPinned(cid)) return json(res, 404, { cid: cid.toString(), pinned: false })
      for await (const _ of helia.pins.rm(cid, { signal: AbortSignal.timeout(60_000) })) ; // eslint-disable-line no-unused-vars
      return json(res, 200, { cid: cid.toString(), pinned: false })
    }
    case 'GET /control/blocks/:cid': {
      const cid = cidParam()
      const bytes = await localBlock(cid)
      return json(res, bytes == null ? 404 : 200, { cid: cid.toString(), has: bytes != null, size: bytes?.length ?? null })
    }
    case 'DELETE /control/blocks/:cid': {
      // Straight to the disk store: Helia's own blockstore refuses to delete pinned
      // blocks, and that is exactly what a repair test needs to simulate.
      const cid = cidParam()
      const had = await blockstore.has(cid)
      if (had) await blockstore.delete(cid)
      return json(res, had ? 200 : 404, { cid: cid.toString(), deleted: had })
    }
    case 'POST /control/blocks': {
      const bytes = await readBody(req)
      const codecName = url.searchParams.get('codec') ?? 'raw'
      const codec = { raw: RAW, 'dag-pb': DAG_PB, 'dag-cbor': DAG_CBOR }[codecName]
      if (codec == null) throw new HttpError(400, 'codec', `unknown codec ${codecName}`)
      const given = url.searchParams.get('cid')
      const cid = given != null ? parseCid(given) : CID.createV1(codec, await sha256.digest(bytes))
      await blockstore.put(cid, bytes)
      return json(res, 200, { cid: cid.toString(), size: bytes.length, checked: given == null })
    }
    case 'POST /control/stop':
      json(res, 200, { stopping: true })
      setImmediate(() => shutdown(0))
      return
    default:
      throw new HttpError(404, 'no_route', `no control route ${route}`)
  }
}

// ---------------------------------------------------------------- server

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1')
  const isGateway = url.pathname.startsWith('/ipfs/')
  try {
    if (isGateway) await gateway(req, res, url)
    else if (url.pathname.startsWith('/control/')) await control(req, res, url)
    else throw new HttpError(404, 'no_route', `no route ${url.pathname}`)
  } catch (err) {
    const status = err instanceof HttpError ? err.status : 500
    const code = err instanceof HttpError ? err.code : (err.name ?? 'error')
    if (!(err instanceof HttpError)) console.error(`${req.method} ${req.url}: ${err.stack ?? err}`)
    if (res.headersSent) {
      res.destroy(err)
      return
    }
    const text = `${code}: ${err.message}\n`
    if (isGateway) {
      res.writeHead(status, { ...CORS, 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) })
      res.end(req.method === 'HEAD' ? undefined : text)
    } else {
      json(res, status, { error: code, message: err.message })
    }
  }
})

let stopping = false
async function shutdown (code) {
  if (stopping) return
  stopping = true
  server.close()
  server.closeAllConnections()
  try {
    await helia.stop()
  } finally {
    process.exit(code)
  }
}
process.on('SIGTERM', () => shutdown(0))
process.on('SIGINT', () => shutdown(0))

server.listen(Number(args.port), '127.0.0.1')
await once(server, 'listening')
process.stdout.write(JSON.stringify({
  ready: true,
  gateway: `http://127.0.0.1:${server.address().port}`,
  peerId: helia.libp2p.peerId.toString(),
  multiaddrs: listenAddrs
}) + '\n')
