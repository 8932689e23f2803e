// The OpenPGP.js configuration of the key profile, protocol §2. Every call into
// OpenPGP.js from our code passes PGP_CONFIG so nothing depends on library defaults.
import { enums } from 'openpgp';

/**
 * Stands in for OpenPGP.js's Compressed Data packet and refuses to be read.
 *
 * The record format has no compression (protocol §3), but OpenPGP.js inflates a
 * Compressed Data packet while it parses a decrypted message, before any signature
 * is checked: a small forgery costs a reader seconds of CPU or its memory. The
 * library offers no switch to refuse the packet, but `additionalAllowedPackets`
 * replaces the class it builds for a tag, so with this one in the config parsing a
 * tag-8 packet fails before a byte is inflated, inside the encryption as well as
 * outside (a parse failure of a data packet is always fatal, and
 * `ignoreMalformedPackets` stays off).
 */
class RefusedCompressedDataPacket {
  static get tag() {
    return enums.packet.compressedData;
  }

  async read() {
    throw new Error('compressed packets are refused');
  }
}

export const PGP_CONFIG = Object.freeze({
  v6Keys: false,
  // SEIPDv1 only: keys advertise just the MDC feature, messages are SEIPDv1.
  aeadProtect: false,
  preferredSymmetricAlgorithm: enums.symmetric.aes256,
  preferredHashAlgorithm: enums.hash.sha256,
  preferredCompressionAlgorithm: enums.compression.uncompressed,
  s2kType: enums.s2k.iterated,
  // The vault key is 256 random bits, so the S2K need not be slow (protocol §2).
  s2kIterationCountByte: 96,
  // Readers refuse compression outright (see RefusedCompressedDataPacket); the
  // size cap is a second fence should a future OpenPGP.js ignore the override.
  additionalAllowedPackets: [RefusedCompressedDataPacket],
  ignoreMalformedPackets: false,
  maxDecompressedMessageSize: 0,
});

/** Config for `key export`: a human passphrase, so the slowest iterated S2K. */
export const EXPORT_CONFIG = Object.freeze({ ...PGP_CONFIG, s2kIterationCountByte: 255 });
