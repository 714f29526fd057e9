// Deterministic bodies for the 1 GiB rows, shared by bench/run.mjs and bench/local-server.mjs,
// so each side can produce or check the same bytes without either holding the whole body.
// The same scheme as test/helpers/body-stream.ts: one 1 MiB xorshift32 block, cut into 64 KiB
// chunks, each stamped with its index so a dropped, repeated or reordered chunk changes the hash.
import { createHash } from 'node:crypto';

export const PATTERN_CHUNK_BYTES = 64 * 1024;
const BLOCK_BYTES = 1024 * 1024;

function xorshiftBlock(seed) {
  const block = Buffer.allocUnsafe(BLOCK_BYTES);
  let state = seed >>> 0 || 1;
  for (let i = 0; i < BLOCK_BYTES; i += 4) {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    block.writeUInt32LE(state, i);
  }
  return block;
}

/** Yields `totalBytes` of deterministic bytes as fresh 64 KiB chunks. */
export function* patternChunks(totalBytes, seed) {
  const block = xorshiftBlock(seed);
  for (let index = 0, offset = 0; offset < totalBytes; index += 1, offset += PATTERN_CHUNK_BYTES) {
    const size = Math.min(PATTERN_CHUNK_BYTES, totalBytes - offset);
    const start = offset % BLOCK_BYTES;
    const chunk = Buffer.from(block.subarray(start, start + size));
    if (size >= 4) chunk.writeUInt32LE(index, 0);
    yield chunk;
  }
}

/** The sha256 (hex) of the pattern body, computed chunk by chunk. */
export function patternDigest(totalBytes, seed) {
  const hash = createHash('sha256');
  for (const chunk of patternChunks(totalBytes, seed)) hash.update(chunk);
  return hash.digest('hex');
}

/**
 * Writes the pattern body to `destination` with backpressure (waits for 'drain' when `write`
 * returns false) and hashes it; resolves with { bytes, sha256, completed }, where completed is
 * false if the destination closed first. Does not end the destination.
 */
export async function writePattern(destination, totalBytes, seed) {
  const hash = createHash('sha256');
  let bytes = 0;
  for (const chunk of patternChunks(totalBytes, seed)) {
    if (destination.destroyed) return { bytes, sha256: hash.digest('hex'), completed: false };
    hash.update(chunk);
    bytes += chunk.length;
    if (!destination.write(chunk)) {
      const drained = await new Promise((resolve) => {
        const done = (value) => () => {
          destination.off('drain', onDrain);
          destination.off('close', onClose);
          resolve(value);
        };
        const onDrain = done(true);
        const onClose = done(false);
        destination.on('drain', onDrain);
        destination.on('close', onClose);
      });
      if (!drained) return { bytes, sha256: hash.digest('hex'), completed: false };
    }
  }
  return { bytes, sha256: hash.digest('hex'), completed: true };
}
