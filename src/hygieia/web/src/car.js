// The whole vault as one CARv1 (protocol §6; the browser side of `hygieia export car`):
// roots = every record's CID, blocks = every record's UnixFS blocks, importable by any
// IPFS node (`ipfs dag import`) and by `hygieia kit restore`.
//
// The server sends ciphertext only (GET /records/{id}/content); the page rebuilds the
// blocks with the same importer and parameters as the upload's CID (crypto/cid.js),
// checks that each record's root is the record's CID, and streams the archive into a
// scratch file (scratch.js), so memory stays flat at any vault size. A record whose
// content does not rebuild to its CID stops the export: nothing is saved.
import { CarWriter } from '@ipld/car/writer';
import { CID } from 'multiformats/cid';
import * as c from './crypto/index.js';
import { responseChunks } from './records.js';
import { scratchFile } from './scratch.js';

export class CarExportError extends Error {
  constructor(message) {
    super(message);
    this.name = 'CarExportError';
  }
}

/**
 * Write the CAR of `records` (RecordPublic, as listed) into a scratch file. Returns
 * {file, release}; onProgress(fraction) over the records' ciphertext bytes.
 */
export async function exportVaultCar(api, records, { onProgress = () => {}, signal } = {}) {
  const roots = records.map((r) => CID.parse(r.cid));
  const { writer, out } = CarWriter.create(roots);
  const sink = await scratchFile('car');
  // The archive's bytes go to the file as the writer makes them (its puts wait for this).
  const drained = (async () => {
    for await (const bytes of out) await sink.write(bytes);
  })();
  drained.catch(() => {});
  const total = records.reduce((a, r) => a + r.size, 0) || 1;
  let done = 0;
  const seen = new Set(); // a block two records share is written once
  const store = {
    async put(cid, bytes) {
      const key = cid.toString();
      if (!seen.has(key)) {
        seen.add(key);
        await writer.put({ cid: CID.asCID(cid) ?? CID.decode(cid.bytes), bytes });
      }
      return cid;
    },
  };
  try {
    for (const r of records) {
      if (signal?.aborted) throw new DOMException('export cancelled', 'AbortError');
      const path = `/records/${encodeURIComponent(r.id)}/content`;
      const res = await api.raw('GET', path, { signal });
      async function* counted() {
        for await (const chunk of responseChunks(res)) {
          done += chunk.length;
          onProgress(Math.min(1, done / total));
          yield chunk;
        }
      }
      const cid = await c.contentBlocks(counted(), store);
      if (!c.sameCid(cid, r.cid)) {
        throw new CarExportError(`record ${r.id}: its content does not match its CID`);
      }
    }
    await writer.close();
    await drained;
    const file = await sink.close();
    return { file, release: sink.remove };
  } catch (err) {
    await writer.close().catch(() => {});
    await drained.catch(() => {});
    await sink.remove();
    throw err;
  }
}
