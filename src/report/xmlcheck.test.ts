import { describe, it, expect } from 'vitest';
import { xmlProblems } from './xmlcheck.ts';

describe('xmlProblems', () => {
  it('accepts a well-formed document with entities, comments and a declaration', () => {
    const ok = '<?xml version="1.0"?>\n<!-- c --><svg a="1"><g><text x="1">a &lt;b&gt; &amp; &#39;c&#39; &#x41;</text></g><rect/></svg>\n';
    expect(xmlProblems(ok)).toEqual([]);
  });
  it.each([
    ['unclosed tag', '<svg><g></svg>'],
    ['mismatched', '<svg><g></text></svg>'],
    ['raw < in text', '<svg><text>a < b</text></svg>'],
    ['bare & in text', '<svg><text>a & b</text></svg>'],
    ['raw < in attribute', '<svg><text x="<">a</text></svg>'],
    ['NaN in attribute', '<svg><polyline points="1,2 NaN,3"/></svg>'],
    ['Infinity in attribute', '<svg><line x1="Infinity"/></svg>'],
    ['two roots', '<svg/><svg/>'],
    ['no root', ''],
    ['duplicate attribute', '<svg a="1" a="2"/>'],
    ['unquoted attribute', '<svg a=1/>'],
    ['text outside root', 'hello<svg/>'],
    ['an injected script tag', '<svg><text><script>alert(1)</script></text>'],
  ])('rejects %s', (_, xml) => {
    expect(xmlProblems(xml).length).toBeGreaterThan(0);
  });
});
