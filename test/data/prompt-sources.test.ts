/**
 * The public prompt sets (issue 20 §3) against a local HTTP server on 127.0.0.1 serving fixture
 * files made here in each set's format (the real files may not be shipped): download into the
 * cache, the SHA-256 refusal of a changed file (nothing saved), no second download of a cached file,
 * each set's column mapping (captions, ids, labels, URL images), and `--prompt-set NAME` when the
 * set is not fetched.
 */
import { createServer, type Server } from 'node:http';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROMPT_SOURCES, cachedPath, fetchPromptSource, promptSource, resolvePromptSet, sha256Hex, type PromptSource } from '../../src/data/prompt-sources.ts';
import { readPromptSet } from '../../src/data/prompt-set.ts';
import { runCli } from '../helpers/cli.ts';

/** Fixture content per set, in its published format (made-up rows, the real columns). */
const FIXTURES: Record<string, string> = {
  'wen-500': '{"caption": "The No Limits Podcast", "index": 1030727993, "url": "https://example.org/a.jpg"}\n{"caption": "Mothers influence on her young hippo", "index": 964841345, "url": "https://example.org/b.jpg"}\n',
  'ren-sd1-mem345': 'The No Limits Podcast\nShaw Floors Value Collections\n',
  'ren-sd2-mem219': 'Hardwood ColorCollection GoldenOak\n',
  'ren-nomem500': 'A serene beach at sunrise\nSnow-covered rooftops in a small town\nA bustling urban skate park',
  'nemo-memorized': ';Caption;URL;type;mean_sscd;max_sscd;Index\n0;The No Limits Podcast;https://example.org/a.jpg;VM;0.84;0.85;1030727993\n1;Living in the Light poster;https://example.org/c.jpg;TM;0.51;0.62;77\n',
  'nemo-unmemorized': ';Caption;URL;Index\n0;Photo pour Japanese pagoda;https://example.org/p.jpg;396\n',
};

let server: Server;
let base: string;
const hits = new Map<string, number>();
const tmp = mkdtempSync(join(tmpdir(), 'memscope-prompt-sources-'));

beforeAll(async () => {
  server = createServer((req, res) => {
    const name = (req.url ?? '/').slice(1);
    hits.set(name, (hits.get(name) ?? 0) + 1);
    const body = FIXTURES[name];
    if (body === undefined) {
      res.writeHead(404).end('no such file');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(tmp, { recursive: true, force: true });
});

/** The catalogue entry with the fixture's URL and hash (what the published file would be). */
function asFixture(src: PromptSource): PromptSource {
  const body = Buffer.from(FIXTURES[src.name]!);
  return { ...src, url: `${base}/${src.name}`, sha256: sha256Hex(body), bytes: body.length };
}

describe('public prompt sets', () => {
  it('the catalogue pins every URL to a 40-hex commit and gives a 64-hex SHA-256', () => {
    expect(PROMPT_SOURCES.map((s) => s.name)).toEqual(Object.keys(FIXTURES));
    for (const s of PROMPT_SOURCES) {
      expect(s.url).toMatch(/^https:\/\/raw\.githubusercontent\.com\/[^/]+\/[^/]+\/[0-9a-f]{40}\//);
      expect(s.sha256).toMatch(/^[0-9a-f]{64}$/);
    }
  });

  it('fetch downloads into the cache once; the column mapping gives captions, ids, labels and URL images', async () => {
    const cache = join(tmp, 'cache-ok');
    const expected: Record<string, { caption: string; id: string; label: string | null; image: string | null }[]> = {
      'wen-500': [
        { caption: 'The No Limits Podcast', id: '1030727993', label: 'memorized', image: 'https://example.org/a.jpg' },
        { caption: 'Mothers influence on her young hippo', id: '964841345', label: 'memorized', image: 'https://example.org/b.jpg' },
      ],
      'ren-sd1-mem345': [
        { caption: 'The No Limits Podcast', id: '0', label: 'memorized', image: null },
        { caption: 'Shaw Floors Value Collections', id: '1', label: 'memorized', image: null },
      ],
      'ren-sd2-mem219': [{ caption: 'Hardwood ColorCollection GoldenOak', id: '0', label: 'memorized', image: null }],
      'ren-nomem500': ['A serene beach at sunrise', 'Snow-covered rooftops in a small town', 'A bustling urban skate park'].map((caption, i) => ({ caption, id: String(i), label: 'none', image: null })),
      'nemo-memorized': [
        { caption: 'The No Limits Podcast', id: '1030727993', label: 'verbatim', image: 'https://example.org/a.jpg' },
        { caption: 'Living in the Light poster', id: '77', label: 'template', image: 'https://example.org/c.jpg' },
      ],
      'nemo-unmemorized': [{ caption: 'Photo pour Japanese pagoda', id: '396', label: 'none', image: 'https://example.org/p.jpg' }],
    };
    for (const real of PROMPT_SOURCES) {
      const src = asFixture(real);
      const first = await fetchPromptSource(src, { cache });
      expect(first.cached).toBe(false);
      expect(readFileSync(first.path, 'utf8')).toBe(FIXTURES[src.name]);
      const again = await fetchPromptSource(src, { cache });
      expect(again.cached).toBe(true);
      expect(hits.get(src.name)).toBe(1);
      const set = await readPromptSet(first.path, src.read);
      expect(set.prompts.map((p) => ({ caption: p.caption, id: p.id, label: p.label, image: p.image?.value ?? null })), src.name).toEqual(expected[src.name]);
    }
  });

  it('a file whose SHA-256 is not the published one is refused and not saved (API and CLI)', async () => {
    const cache = join(tmp, 'cache-bad');
    const wen = promptSource('wen-500')!;
    const err = await fetchPromptSource(wen, { cache, url: `${base}/wen-500` }).then(
      () => 'no error',
      (e: Error) => e.message,
    );
    expect(err).toContain(`wen-500: the file at ${base}/wen-500 has SHA-256 ${sha256Hex(Buffer.from(FIXTURES['wen-500']!))}`);
    expect(err).toContain(`not the ${wen.sha256} (116357 bytes) of the published file; it was not saved`);
    expect(existsSync(cachedPath(wen, cache))).toBe(false);
    const cli = await runCli(['prompts', 'fetch', 'wen-500', '--url', `${base}/wen-500`, '--cache', cache]);
    expect(cli.code).not.toBe(0);
    expect(cli.err).toMatch(/not the 8eb16c6f.* of the published file; it was not saved/);
    const missing = await runCli(['prompts', 'fetch', 'wen-500', '--url', `${base}/nothing-here`, '--cache', cache]);
    expect(missing.err).toMatch(/answered HTTP 404/);
  });

  it('--prompt-set NAME: not fetched, or changed in the cache, says to run prompts fetch', () => {
    const cache = join(tmp, 'cache-resolve');
    expect(() => resolvePromptSet('ren-nomem500', cache)).toThrow(/ren-nomem500 is a public prompt set that is not in memscope's cache .*; run: memscope prompts fetch ren-nomem500/);
    const src = promptSource('ren-nomem500')!;
    mkdirSync(join(cachedPath(src, cache), '..'), { recursive: true });
    writeFileSync(cachedPath(src, cache), 'edited\n');
    expect(() => resolvePromptSet('ren-nomem500', cache)).toThrow(/has SHA-256 [0-9a-f]{64}, not 4e0de75a.*; run memscope prompts fetch ren-nomem500 again/);
    expect(resolvePromptSet('some/file.csv', cache)).toEqual({ path: 'some/file.csv', read: null, source: null });
  });

  it('prompts list names every set and whether it is fetched', async () => {
    const cache = join(tmp, 'cache-list');
    const r = await runCli(['prompts', 'list', '--json', '--cache', cache]);
    expect(r.code, r.err).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.sets.map((s: { name: string; cached: boolean }) => [s.name, s.cached])).toEqual(PROMPT_SOURCES.map((s) => [s.name, false]));
    const bad = await runCli(['prompts', 'fetch', 'wen500', '--cache', cache]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/no public prompt set named "wen500" \(did you mean "wen-500"\?\)/);
  });
});
