// The OpenPGP.js configuration of the key profile, protocol §2. Every call into
// OpenPGP.js from our code passes PGP_CONFIG so nothing depends on library defaults.
import { enums } from 'openpgp';

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
});

/** Config for `key export`: a human passphrase, so the slowest iterated S2K. */
export const EXPORT_CONFIG = Object.freeze({ ...PGP_CONFIG, s2kIterationCountByte: 255 });
