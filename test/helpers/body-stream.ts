import { createHash } from 'node:crypto';
import type { Readable, Writable } from 'node:stream';
import { patternBytes } from './local-server.js';

/** The size of each chunk a pattern body is cut into (the tunnel's largest DATA frame). */
export const PATTERN_CHUNK_BYTES = 64 * 1024;
const BLOCK_BYTES = 1024 * 1024;

/** What one side of a transfer saw: how many bytes, and their sha256 (hex). */
export interface BodyDigest {
  bytes: number;
  sha256: string;
}

/**
 * A deterministic body of `totalBytes`, as fresh 64 KiB chunks made on demand, so a 1 GiB body
 * never sits in memory. The chunks are cut from one 1 MiB xorshift block, and each is stamped
 * with its index, so a dropped, repeated or reordered chunk changes the hash.
 */
export function* patternChunks(totalBytes: number, seed: number): Generator<Buffer> {
  const block = patternBytes(BLOCK_BYTES, seed);
  for (let index = 0, offset = 0; offset < totalBytes; index += 1, offset += PATTERN_CHUNK_BYTES) {
    const size = Math.min(PATTERN_CHUNK_BYTES, totalBytes - offset);
    const start = offset % BLOCK_BYTES;
    const chunk = Buffer.from(block.subarray(start, start + size));
    if (size >= 4) chunk.writeUInt32LE(index, 0);
    yield chunk;
  }
}

/** Resolves true on 'drain', false if the stream closes first (the peer went away). */
export function waitForDrain(stream: Writable): Promise<boolean> {
  return new Promise((resolve) => {
    const finish = (drained: boolean): void => {
      stream.off('drain', onDrain);
      stream.off('close', onClose);
      resolve(drained);
    };
    const onDrain = (): void => finish(true);
    const onClose = (): void => finish(false);
    stream.on('drain', onDrain);
    stream.on('close', onClose);
  });
}

/**
 * Writes `chunks` to `destination` with backpressure (waits for 'drain' whenever `write`
 * returns false), then ends it. Hashes what it wrote; rejects if the destination closes early.
 */
export async function writeChunks(destination: Writable, chunks: Iterable<Buffer>): Promise<BodyDigest> {
  const hash = createHash('sha256');
  let bytes = 0;
  for (const chunk of chunks) {
    if (destination.destroyed) throw new Error(`the destination closed after ${bytes} bytes`);
    hash.update(chunk);
    bytes += chunk.length;
    if (!destination.write(chunk) && !(await waitForDrain(destination))) {
      throw new Error(`the destination closed after ${bytes} bytes`);
    }
  }
  destination.end();
  return { bytes, sha256: hash.digest('hex') };
}

/** Reads `source` to its end, hashing as it goes and keeping nothing. */
export async function digestStream(source: Readable): Promise<BodyDigest> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of source) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { bytes, sha256: hash.digest('hex') };
}
