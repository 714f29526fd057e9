import { TunnelError } from './errors.js';

/**
 * The wire protocol version; bumped on any change an older peer cannot understand.
 * 2: informational HEADs (flag 0x02), `expectContinue` in OPEN, trailers on a request's END.
 */
export const PROTOCOL_VERSION = 2;

/** Checks an agent's protocol version against ours and names the side to upgrade. */
export function checkProtocolVersion(agentVersion: number): void {
  if (agentVersion === PROTOCOL_VERSION) return;
  const upgrade = agentVersion < PROTOCOL_VERSION ? 'the agent (tunnel)' : 'the relay (tunnel-server)';
  throw new TunnelError(
    'VERSION_MISMATCH',
    `The agent speaks protocol ${agentVersion} and the relay speaks ${PROTOCOL_VERSION}; upgrade ${upgrade}.`,
  );
}
