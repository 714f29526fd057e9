import { describe, expect, it } from 'vitest';
import { endToEndHeaders } from './headers.js';

describe('endToEndHeaders', () => {
  it('keeps end-to-end headers in order, with their case and repeats', () => {
    const raw = ['Host', 'a.example.com', 'Set-Cookie', 'a=1', 'X-Trace', 't', 'Set-Cookie', 'b=2', 'set-cookie', 'c=3'];
    expect(endToEndHeaders(raw)).toEqual([
      ['Host', 'a.example.com'],
      ['Set-Cookie', 'a=1'],
      ['X-Trace', 't'],
      ['Set-Cookie', 'b=2'],
      ['set-cookie', 'c=3'],
    ]);
  });

  it.each(['Connection', 'Keep-Alive', 'Proxy-Connection', 'Proxy-Authenticate', 'Proxy-Authorization', 'TE', 'Transfer-Encoding', 'Upgrade'])(
    'drops the hop-by-hop header %s in any case',
    (name) => {
      const raw = ['Accept', '*/*', name, 'x', name.toUpperCase(), 'y', name.toLowerCase(), 'z'];
      expect(endToEndHeaders(raw)).toEqual([['Accept', '*/*']]);
    },
  );

  it('keeps Trailer, which announces end-to-end trailer fields (RFC 9110 §6.6.2)', () => {
    expect(endToEndHeaders(['Trailer', 'X-Checksum', 'Accept', '*/*'])).toEqual([['Trailer', 'X-Checksum'], ['Accept', '*/*']]);
  });

  it('drops headers that Connection names, across several Connection headers', () => {
    const raw = ['X-Secret', '1', 'Connection', ' x-secret ,Keep-Alive,, ', 'connection', 'X-Other', 'x-other', '2', 'X-Kept', '3'];
    expect(endToEndHeaders(raw)).toEqual([['X-Kept', '3']]);
  });

  it('drops the extra names the caller passes in lowercase', () => {
    const raw = ['Host', 'relay.example.com', 'X-Forwarded-For', '1.2.3.4', 'Accept', '*/*'];
    expect(endToEndHeaders(raw, new Set(['host', 'x-forwarded-for']))).toEqual([['Accept', '*/*']]);
  });

  it('returns an empty list for no headers', () => {
    expect(endToEndHeaders([])).toEqual([]);
  });
});
