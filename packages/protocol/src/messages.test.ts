import { describe, expect, it } from 'vitest';
import { TunnelError } from './errors.js';
import {
  RequestHead,
  ResetReason,
  ResponseHead,
  decodeJsonPayload,
  encodeControlMessage,
  encodeJsonPayload,
  parseControlMessage,
  type ControlMessage,
} from './messages.js';

function tunnelErrorFrom(action: () => unknown): TunnelError {
  try {
    action();
  } catch (error) {
    expect(error).toBeInstanceOf(TunnelError);
    return error as TunnelError;
  }
  throw new Error('expected a TunnelError, but nothing was thrown');
}

const json = (value: unknown): string => JSON.stringify(value);
const hello = { type: 'hello', protocol: 1, clientVersion: '0.1.0' };
const requestHead = { method: 'GET', target: '/', headers: [['Host', 'a.example.com']], hasBody: false };

describe('parseControlMessage', () => {
  it.each<[string, ControlMessage]>([
    ['a minimal hello', { type: 'hello', protocol: 1, clientVersion: '0.1.0' }],
    ['a hello with token and subdomain', { type: 'hello', protocol: 1, clientVersion: '0.1.0', token: 's3cret', subdomain: 'my-app' }],
    ['ready', { type: 'ready', name: 'my-app', url: 'https://my-app.example.com' }],
    ['error', { type: 'error', code: 'SUBDOMAIN_TAKEN', message: '"my-app" is taken.' }],
    ['goaway', { type: 'goaway', reason: 'relay restarting', deadlineMs: 30_000 }],
  ])('parses %s', (_what, message) => {
    expect(parseControlMessage(json(message))).toEqual(message);
  });

  it('round-trips what encodeControlMessage writes', () => {
    const message: ControlMessage = { type: 'goaway', reason: 'bye', deadlineMs: 0 };
    expect(parseControlMessage(encodeControlMessage(message))).toEqual(message);
  });

  it('drops fields it does not know, so a newer peer can add optional ones', () => {
    expect(parseControlMessage(json({ ...hello, future: true }))).toEqual(hello);
  });

  it('rejects text that is not JSON with MESSAGE_INVALID and keeps the parse error as cause', () => {
    const error = tunnelErrorFrom(() => parseControlMessage('{"type": "hello"'));
    expect(error.code).toBe('MESSAGE_INVALID');
    expect(error.message).toContain('not valid JSON');
    expect(error.cause).toBeInstanceOf(SyntaxError);
  });

  it.each([
    ['an unknown type', { type: 'bogus' }, 'type'],
    ['JSON that is not an object', [hello], '(root)'],
    ['a hello without protocol', { type: 'hello', clientVersion: '1' }, 'protocol'],
    ['a hello without clientVersion', { type: 'hello', protocol: 1 }, 'clientVersion'],
    ['a hello with a fractional protocol', { ...hello, protocol: 1.5 }, 'protocol'],
    ['a ready without url', { type: 'ready', name: 'a' }, 'url'],
    ['an error whose code is not code-shaped', { type: 'error', code: 'not a code', message: 'x' }, 'code'],
    ['a goaway with a negative deadline', { type: 'goaway', reason: 'x', deadlineMs: -1 }, 'deadlineMs'],
  ])('rejects %s with MESSAGE_INVALID naming %s', (_what, value, field) => {
    const error = tunnelErrorFrom(() => parseControlMessage(json(value)));
    expect(error.code).toBe('MESSAGE_INVALID');
    expect(error.message).toContain(`${field}:`);
  });

  it('reads an error code this version does not know as INTERNAL, so newer peers stay compatible', () => {
    expect(parseControlMessage(json({ type: 'error', code: 'CODE_FROM_THE_FUTURE', message: 'x' }))).toMatchObject({ code: 'INTERNAL' });
  });

  it.each(['My-App', '-app', 'app-', 'my_app', 'my.app', '', 'a'.repeat(64)])('rejects subdomain "%s" naming the field', (subdomain) => {
    const error = tunnelErrorFrom(() => parseControlMessage(json({ ...hello, subdomain })));
    expect(error.code).toBe('MESSAGE_INVALID');
    expect(error.message).toContain('subdomain: must be a DNS label');
  });

  it.each(['a', '0', 'my-app', 'a--b', 'a'.repeat(63)])('accepts subdomain "%s"', (subdomain) => {
    expect(parseControlMessage(json({ ...hello, subdomain }))).toMatchObject({ subdomain });
  });

  it('rejects a message over 64 KiB before parsing it', () => {
    const error = tunnelErrorFrom(() => parseControlMessage(json({ ...hello, token: 'x'.repeat(64 * 1024) })));
    expect(error.code).toBe('MESSAGE_INVALID');
    expect(error.message).toContain('64 KiB');
  });
});

describe('encodeControlMessage', () => {
  it('refuses to send a message the peer would reject', () => {
    expect(() => encodeControlMessage({ type: 'hello', protocol: 1, clientVersion: '1', subdomain: 'Not Valid' })).toThrow();
  });
});

describe('decodeJsonPayload', () => {
  const payload = (value: unknown): Uint8Array => encodeJsonPayload(value);

  it('decodes a request head, keeping header order and repeats', () => {
    const head = {
      method: 'POST',
      target: '/upload?x=1',
      headers: [['Cookie', 'a=1'], ['X-Trace', 'one'], ['cookie', 'b=2']],
      hasBody: true,
    };
    expect(decodeJsonPayload(RequestHead, payload(head), 'request head')).toEqual(head);
  });

  it('decodes a response head and a reset reason', () => {
    const head = { status: 204, statusMessage: 'No Content', headers: [['Set-Cookie', 'a=1'], ['Set-Cookie', 'b=2']] };
    expect(decodeJsonPayload(ResponseHead, payload(head), 'response head')).toEqual(head);
    expect(decodeJsonPayload(ResetReason, payload({ code: 'LOCAL_TIMEOUT' }), 'reset reason')).toEqual({ code: 'LOCAL_TIMEOUT' });
  });

  it.each([
    ['a header name with a space', { ...requestHead, headers: [['X Bad', '1']] }, 'headers.0.0: invalid header name'],
    ['a header name with a colon', { ...requestHead, headers: [['X-Bad:', '1']] }, 'headers.0.0: invalid header name'],
    ['a header value with CR', { ...requestHead, headers: [['X-Ok', 'a\rb']] }, 'headers.0.1: invalid header value'],
    ['a header value with LF', { ...requestHead, headers: [['X-Ok', 'a\nSet-Cookie: evil=1']] }, 'headers.0.1: invalid header value'],
    ['a header value with NUL', { ...requestHead, headers: [['X-Ok', 'a\0b']] }, 'headers.0.1: invalid header value'],
    ['a method with a space', { ...requestHead, method: 'GE T' }, 'method: invalid method'],
    ['an absolute-form target', { ...requestHead, target: 'http://evil.example/' }, 'target: the request target must be origin-form'],
    ['a missing hasBody', { method: 'GET', target: '/', headers: [] }, 'hasBody:'],
  ])('rejects a request head with %s, naming the field', (_what, value, expected) => {
    const error = tunnelErrorFrom(() => decodeJsonPayload(RequestHead, payload(value), 'request head'));
    expect(error.code).toBe('FRAME_INVALID');
    expect(error.message).toContain('The request head is invalid');
    expect(error.message).toContain(expected);
  });

  it.each([99, 600, 200.5])('rejects response status %s naming the field', (status) => {
    const error = tunnelErrorFrom(() => decodeJsonPayload(ResponseHead, payload({ status, headers: [] }), 'response head'));
    expect(error.code).toBe('FRAME_INVALID');
    expect(error.message).toContain('status:');
  });

  it('rejects a status message with CR/LF', () => {
    const value = { status: 200, statusMessage: 'OK\r\nX-Injected: 1', headers: [] };
    const error = tunnelErrorFrom(() => decodeJsonPayload(ResponseHead, payload(value), 'response head'));
    expect(error.code).toBe('FRAME_INVALID');
    expect(error.message).toContain('statusMessage:');
  });

  it('rejects a payload that is not UTF-8', () => {
    const error = tunnelErrorFrom(() => decodeJsonPayload(RequestHead, new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]), 'request head'));
    expect(error.code).toBe('FRAME_INVALID');
    expect(error.message).toContain('not valid UTF-8');
  });

  it('rejects a payload that is not JSON', () => {
    const error = tunnelErrorFrom(() => decodeJsonPayload(RequestHead, new TextEncoder().encode('GET / HTTP/1.1'), 'request head'));
    expect(error.code).toBe('FRAME_INVALID');
    expect(error.message).toContain('not valid JSON');
  });
});
