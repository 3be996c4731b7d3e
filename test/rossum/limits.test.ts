import { describe, expect, it } from 'vitest';
import { cleanContent, cleanText, hostAllowed, ROSSUM_MESSAGE_LIMIT, truncateContent } from '../../src/rossum/index.ts';

describe('text for Rossum', () => {
  it('drops C0/C1 controls and bidi overrides, keeps newline and tab, turns CRLF into LF', () => {
    expect(cleanText('a\u0000b\u0007c\u001b[1md\u007f\u0085\u009be\r\nf\rg\th\u202Eevil\u202C\u2066i\u2069')).toBe(
      'abc[1mde\nf\ng\thevili',
    );
    expect(cleanText('Grüße — 請求書 ✓ 😀')).toBe('Grüße — 請求書 ✓ 😀');
  });

  it('cuts at the limit in code points with the cut marked, never splitting a surrogate pair', () => {
    const long = '😀'.repeat(ROSSUM_MESSAGE_LIMIT + 10);
    const cut = cleanContent(long);
    expect(Array.from(cut)).toHaveLength(ROSSUM_MESSAGE_LIMIT);
    expect(cut.endsWith('😀…')).toBe(true);
    expect(truncateContent('short')).toBe('short');
  });
});

describe('allow-listed hosts', () => {
  it('`*.domain` matches subdomains only; other entries match exactly, case-insensitively', () => {
    const patterns = ['*.rossum.app', 'rossum.internal.example'];
    expect(hostAllowed('acme.rossum.app', patterns)).toBe(true);
    expect(hostAllowed('a.b.ROSSUM.app', patterns)).toBe(true);
    expect(hostAllowed('rossum.app', patterns)).toBe(false);
    expect(hostAllowed('evilrossum.app', patterns)).toBe(false);
    expect(hostAllowed('rossum.app.evil.example', patterns)).toBe(false);
    expect(hostAllowed('Rossum.Internal.Example', patterns)).toBe(true);
    expect(hostAllowed('x.rossum.internal.example', patterns)).toBe(false);
  });
});
