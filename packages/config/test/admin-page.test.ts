import { describe, expect, it } from 'vitest';
import { statusPage, statusPageAccess } from '../src/index.ts';

// The status page both admin listeners share: which requests skip the token, and what the page refuses to embed.

describe('admin status page', () => {
  it('checks only GET and HEAD of / without the token; every other request keeps it', () => {
    const admin = { address: '127.0.0.1', token: 't' };
    expect(statusPageAccess('GET', '/', admin)).toEqual({ address: '127.0.0.1' });
    expect(statusPageAccess('HEAD', '/?refresh=1', admin)).toEqual({ address: '127.0.0.1' });
    for (const [method, url] of [
      ['GET', '/status'],
      ['POST', '/'],
      ['GET', '//'],
      ['GET', '/index.html'],
    ] as const)
      expect(statusPageAccess(method, url, admin)).toBe(admin);
  });

  it('escapes the title and refuses a render function that would end the inline script', () => {
    const columns = [{ key: 'a', label: 'A' }];
    const page = statusPage({ title: '<b>&"x"', columns, render: () => ({ summary: [], rows: [] }) });
    expect(page.body).toContain('<title>&#60;b&#62;&#38;&#34;x&#34;</title>');
    // Built from text: a transpiler (vitest's) would write the literal as `<\/script>`, which node's type stripping does not.
    const render = new Function('return { summary: ["</script>"], rows: [] };') as () => { summary: string[]; rows: [] };
    expect(() => statusPage({ title: 't', columns, render })).toThrow(/contains <\/script/);
  });
});
