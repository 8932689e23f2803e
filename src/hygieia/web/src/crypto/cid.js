// The record's content CID (protocol §3): UnixFS, CIDv1, raw leaves, 1 MiB chunks,
// balanced layout, 1024 links — ipfs-unixfs-importer's 'unixfs-v1-2025' profile.
import { importByteStream } from 'ipfs-unixfs-importer';
import { CID } from 'multiformats/cid';

// Blocks are only hashed, never kept: the importer needs a `put`, and memory stays
// flat whatever the file size.
const discardingStore = { put: async (cid) => cid };

// A fresh object per call: the importer writes into its options.
const options = () => ({
  profile: 'unixfs-v1-2025',
  cidVersion: 1,
  rawLeaves: true,
  reduceSingleLeafToSelf: true,
  blockWriteConcurrency: 4,
});

/** CID (string, base32) of the bytes an (async) iterable of Uint8Array yields. */
export async function contentCid(chunks) {
  const { cid } = await importByteStream(chunks, discardingStore, options());
  return cid.toString();
}

/**
 * The same import, each block handed to `store.put(cid, bytes)` (awaited, so a slow
 * store slows the import): for the whole-vault CAR. Returns the root CID (string).
 */
export async function contentBlocks(chunks, store) {
  const { cid } = await importByteStream(chunks, store, options());
  return cid.toString();
}

/** Compare two CIDs by value (any base/encoding of the same CID is equal). */
export function sameCid(a, b) {
  try {
    return CID.parse(a).equals(CID.parse(b));
  } catch {
    return false;
  }
}
