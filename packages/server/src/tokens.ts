import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { SUBDOMAIN_PATTERN, TunnelError } from '@tunnel/protocol';

/** A name an entry may hold: an exact label, `prefix-*`, or `*` for any free name. */
const NamePattern = z.string().refine(
  (pattern) => pattern === '*' || SUBDOMAIN_PATTERN.test(pattern) || (pattern.endsWith('-*') && SUBDOMAIN_PATTERN.test(pattern.slice(0, -2))),
  'must be a DNS label, a label followed by "-*", or "*"',
);

const TokenEntry = z.object({
  token: z.string().min(16, 'must be at least 16 characters').max(1024),
  names: z.array(NamePattern).min(1),
  maxTunnels: z.number().int().positive().default(5),
  maxStreams: z.number().int().positive().default(1000),
});

/** The tokens file: `{"tokens": [{"token": "…", "names": ["alice", "alice-*"], "maxTunnels": 5, "maxStreams": 200}]}`. */
export const TokensFile = z.object({ tokens: z.array(TokenEntry).min(1) }).strict();

/** One agent identity: what it may hold and how much. The token itself is kept only as a hash. */
export interface Grant {
  /** A short, non-secret id for logs: the entry's position in the file. */
  readonly id: string;
  readonly names: readonly string[];
  readonly maxTunnels: number;
  readonly maxStreams: number;
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** Whether `name` fits `pattern` (exact, `prefix-*`, or `*`). */
export function nameMatches(pattern: string, name: string): boolean {
  if (pattern === '*') return true;
  if (pattern.endsWith('-*')) return name.startsWith(pattern.slice(0, -1)) && name.length > pattern.length - 1;
  return pattern === name;
}

/**
 * Who may open tunnels, read from a tokens file. Tokens are compared in constant time (as
 * SHA-256 digests, against every entry), never logged, and not kept in clear.
 */
export class TokenPolicy {
  readonly #entries: Array<{ digest: Buffer; grant: Grant }>;

  constructor(file: z.infer<typeof TokensFile>) {
    this.#entries = file.tokens.map((entry, index) => ({
      digest: digest(entry.token),
      grant: { id: `tokens[${index}]`, names: entry.names, maxTunnels: entry.maxTunnels, maxStreams: entry.maxStreams },
    }));
  }

  /** The grant for a token, or null. Every entry is compared, so timing says nothing. */
  authorize(token: string | undefined): Grant | null {
    const presented = digest(token ?? '');
    let found: Grant | null = null;
    for (const entry of this.#entries) {
      if (timingSafeEqual(entry.digest, presented) && token !== undefined) found = entry.grant;
    }
    return found;
  }

  /**
   * Whether `grant` may hold `name`: one of its patterns fits, and no other entry claims the
   * name by an exact or prefix pattern that `grant` does not share. `*` claims nothing.
   */
  mayHold(grant: Grant, name: string): boolean {
    if (!grant.names.some((pattern) => nameMatches(pattern, name))) return false;
    return !this.#entries.some(({ grant: other }) =>
      other !== grant && other.names.some((pattern) => pattern !== '*' && nameMatches(pattern, name) && !grant.names.includes(pattern)));
  }
}

/** Reads and validates a tokens file; errors name the entry and key at fault. */
export function loadTokens(path: string): TokenPolicy {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new TunnelError('CONFIG_INVALID', `Cannot read the tokens file ${path}: ${(cause as Error).message}.`, { cause });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new TunnelError('CONFIG_INVALID', `The tokens file ${path} is not valid JSON: ${(cause as Error).message}.`, { cause });
  }
  const result = TokensFile.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const where = issue.path.reduce<string>((text, key) => (typeof key === 'number' ? `${text}[${key}]` : text ? `${text}.${String(key)}` : String(key)), '');
    throw new TunnelError('CONFIG_INVALID', `The tokens file ${path} is invalid at ${where || '(root)'}: ${issue.message}.`);
  }
  return new TokenPolicy(result.data);
}
