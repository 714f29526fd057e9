import { describe, expect, it } from 'vitest';
import { TunnelError } from './errors.js';
import { PROTOCOL_VERSION, checkProtocolVersion } from './version.js';

function mismatch(agentVersion: number): TunnelError {
  try {
    checkProtocolVersion(agentVersion);
  } catch (error) {
    expect(error).toBeInstanceOf(TunnelError);
    expect((error as TunnelError).code).toBe('VERSION_MISMATCH');
    return error as TunnelError;
  }
  throw new Error(`expected protocol ${agentVersion} to be refused`);
}

describe('checkProtocolVersion', () => {
  it('accepts an agent on the same protocol', () => {
    expect(() => checkProtocolVersion(PROTOCOL_VERSION)).not.toThrow();
  });

  it('tells an older agent to upgrade the agent, naming both versions', () => {
    const { message } = mismatch(PROTOCOL_VERSION - 1);
    expect(message).toContain('upgrade the agent (tunnel)');
    expect(message).toContain(`protocol ${PROTOCOL_VERSION - 1}`);
    expect(message).toContain(`relay speaks ${PROTOCOL_VERSION}`);
  });

  it('tells a newer agent to upgrade the relay', () => {
    expect(mismatch(PROTOCOL_VERSION + 1).message).toContain('upgrade the relay (tunnel-server)');
  });
});
