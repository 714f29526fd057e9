import { describe, expect, it } from 'vitest';
import { earlyHints, splitLinks } from './early-hints.js';

describe('splitLinks', () => {
  it('splits a comma-joined Link value into its links', () => {
    expect(splitLinks('</a.css>; rel=preload; as=style, </b.js>; rel=preload; as=script')).toEqual([
      '</a.css>; rel=preload; as=style',
      '</b.js>; rel=preload; as=script',
    ]);
  });

  it('keeps commas inside a target or a quoted parameter', () => {
    expect(splitLinks('</x?a=1,2>; rel=preload, </y>; title="one, \\"two\\""')).toEqual([
      '</x?a=1,2>; rel=preload',
      '</y>; title="one, \\"two\\""',
    ]);
  });

  it('drops empty members', () => {
    expect(splitLinks(' , </a>; rel=preload ,')).toEqual(['</a>; rel=preload']);
  });
});

describe('earlyHints', () => {
  it('lower-cases names and gathers repeats, one Link entry per link', () => {
    expect(earlyHints([['Link', '</a>; rel=preload, </b>; rel=preload'], ['Link', '</c>; rel=preconnect'], ['X-Trace', 't1']])).toEqual({
      link: ['</a>; rel=preload', '</b>; rel=preload', '</c>; rel=preconnect'],
      'x-trace': ['t1'],
    });
  });
});
