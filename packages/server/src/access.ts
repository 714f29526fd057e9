import { createHash, timingSafeEqual } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import { TunnelError } from '@tunnel/protocol';

/** The outcome of an access check on a public request. */
export type AccessVerdict = 'allowed' | 'forbidden' | 'unauthorized';

/** Adds one CIDR block (or single address) to `list`; throws CONFIG_INVALID naming it. */
function addBlock(list: BlockList, cidr: string): void {
  const [address = '', prefixText] = cidr.trim().split('/');
  const family = isIP(address);
  const maxPrefix = family === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? maxPrefix : Number(prefixText);
  if (family === 0 || !Number.isInteger(prefix) || prefix < 0 || prefix > maxPrefix || (prefixText !== undefined && !/^\d+$/.test(prefixText))) {
    throw new TunnelError('CONFIG_INVALID', `"${cidr}" is not an address or CIDR block such as 203.0.113.0/24 or 2001:db8::/32.`);
  }
  list.addSubnet(address, prefix, family === 4 ? 'ipv4' : 'ipv6');
}

/** Checks CIDR blocks without keeping them: for validating flags before they are sent. */
export function validateCidrs(cidrs: readonly string[]): void {
  const list = new BlockList();
  for (const cidr of cidrs) addBlock(list, cidr);
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/**
 * Who may use one tunnel's public URL: addresses in the allowed blocks (403 otherwise), then
 * HTTP Basic credentials (401 otherwise). The password is kept only as a digest and compared in
 * constant time.
 */
export class AccessPolicy {
  readonly #allowed: BlockList | null;
  readonly #credentials: Buffer | null;

  constructor(access: { basicAuth?: string | undefined; allowIps?: readonly string[] | undefined }) {
    this.#credentials = access.basicAuth === undefined ? null : digest(access.basicAuth);
    if (access.allowIps && access.allowIps.length > 0) {
      const list = new BlockList();
      for (const cidr of access.allowIps) addBlock(list, cidr);
      this.#allowed = list;
    } else {
      this.#allowed = null;
    }
  }

  /** Whether the tunnel has its own password, which the relay consumes (and does not forward). */
  get usesCredentials(): boolean {
    return this.#credentials !== null;
  }

  /** Whether a request from `remoteAddress` with `authorization` may pass. */
  check(remoteAddress: string | undefined, authorization: string | undefined): AccessVerdict {
    if (this.#allowed && !this.#isAllowed(remoteAddress ?? '')) return 'forbidden';
    if (this.#credentials && !this.#isAuthorized(authorization)) return 'unauthorized';
    return 'allowed';
  }

  #isAllowed(address: string): boolean {
    const unmapped = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
    const family = isIP(unmapped);
    if (family === 0) return false;
    return this.#allowed!.check(unmapped, family === 4 ? 'ipv4' : 'ipv6');
  }

  #isAuthorized(authorization: string | undefined): boolean {
    const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization ?? '');
    const presented = match ? Buffer.from(match[1]!, 'base64').toString('utf8') : '';
    return timingSafeEqual(digest(presented), this.#credentials!) && match !== null;
  }
}
