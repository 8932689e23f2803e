// Entry point of the browser client.
export * as crypto from './crypto/index.js';
