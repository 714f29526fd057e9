import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, ERRORS, TunnelError, isErrorCode, isTunnelError } from './errors.js';

/** Reads the `| \`CODE\` | status |` rows of docs/errors.md into code → documented status. */
function documentedStatuses(): Map<string, number> {
  const markdown = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');
  const statuses = new Map<string, number>();
  for (const match of markdown.matchAll(/^\|\s*`([A-Z0-9_]+)`\s*\|\s*(\d{3})\s*\|/gm)) {
    statuses.set(match[1]!, Number(match[2]));
  }
  return statuses;
}

describe('docs/errors.md', () => {
  const documented = documentedStatuses();

  it.each(ERROR_CODES)('lists %s with the status from ERRORS', (code) => {
    expect(documented.has(code), `docs/errors.md has no table row for ${code}`).toBe(true);
    expect(documented.get(code)).toBe(ERRORS[code].status);
  });

  it('lists no code that ERRORS does not define', () => {
    const unknown = [...documented.keys()].filter((code) => !isErrorCode(code));
    expect(unknown).toEqual([]);
  });
});

describe('ERRORS', () => {
  it.each(ERROR_CODES)('gives %s a sentence and an HTTP status', (code) => {
    const { message, status } = ERRORS[code];
    expect(message.trim()).not.toBe('');
    expect(message.endsWith('.'), `the message of ${code} must end with a period`).toBe(true);
    expect(Number.isInteger(status)).toBe(true);
    expect(status).toBeGreaterThanOrEqual(100);
    expect(status).toBeLessThanOrEqual(599);
  });

  it('lists every key in ERROR_CODES', () => {
    expect(ERROR_CODES).toEqual(Object.keys(ERRORS));
  });
});

describe('TunnelError', () => {
  it('defaults its message to the sentence in ERRORS and its status to the code’s status', () => {
    const error = new TunnelError('SUBDOMAIN_TAKEN');
    expect(error.name).toBe('TunnelError');
    expect(error.code).toBe('SUBDOMAIN_TAKEN');
    expect(error.message).toBe(ERRORS.SUBDOMAIN_TAKEN.message);
    expect(error.status).toBe(409);
  });

  it('keeps a custom message and the original error on cause', () => {
    const cause = new Error('ECONNREFUSED');
    const error = new TunnelError('LOCAL_UNREACHABLE', 'Nothing listens on port 3000.', { cause });
    expect(error.message).toBe('Nothing listens on port 3000.');
    expect(error.cause).toBe(cause);
    expect(error).toBeInstanceOf(Error);
  });

  it('is recognised by isTunnelError, unlike a plain Error with a code', () => {
    expect(isTunnelError(new TunnelError('INTERNAL'))).toBe(true);
    expect(isTunnelError(Object.assign(new Error('x'), { code: 'INTERNAL' }))).toBe(false);
    expect(isTunnelError('INTERNAL')).toBe(false);
  });
});

describe('isErrorCode', () => {
  it('accepts known codes and rejects unknown ones, including inherited property names', () => {
    expect(isErrorCode('AUTH_FAILED')).toBe(true);
    expect(isErrorCode('auth_failed')).toBe(false);
    expect(isErrorCode('NOT_A_CODE')).toBe(false);
    expect(isErrorCode('toString')).toBe(false);
    expect(isErrorCode('__proto__')).toBe(false);
  });
});
