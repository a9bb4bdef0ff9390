/**
 * Every Stable Diffusion command line of README.md runs (issue 14 §4): the lines are read from the
 * README's code blocks (a `memscope …` line whose `--model` is a folder the user brings, e.g.
 * `sd14/`), and each is run in a scratch folder laid out as the README assumes — the export at the
 * path the line names, written by `writeTinySdExport` with dynamic spatial axes as real exports
 * declare them, once per exporter layout (`legacy`: no `unet/config.json`, so the default size is
 * 512; `optimum`: `unet/config.json` `sample_size` 8 × VAE scale factor 8 = 64), and the prompt
 * list, images and user models the line names (tiny stand-ins with the real signatures).
 *
 * Substitutions, and only these: the README's default 50 sampling steps become `--steps 2`, and
 * the seeds are capped at two (`--seeds 0-1`) — the lines as written would sample 4–16 seeds × 50
 * steps × several methods at 512² on two CPU cores; on the legacy layout (default 512²) `geometry`
 * also gets `--image-size 64`: its exact-denoiser geometry over 64×64×4 latents ran > 20 min (and
 * 9 GB) on two CPU cores. Everything else (flags, file names, relative paths, default `--out`) is
 * as written.
 *
 * Independent expectations: exit code 0 for every line; the image size printed and used is the one
 * diffusers derives for the layout (512 without unet/config.json, sample_size × 8 with it).
 */
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTinySdExport, type SdExporterVariant } from '../helpers/tiny-sd-export.ts';
import { readNpy } from '../../src/io/npy.ts';
import { runCli } from '../helpers/cli.ts';
import { writeTinyMetricModels, writeTinySscd } from '../helpers/sd-fixtures.ts';

const README = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'README.md');

/** Split a shell command line into words (single / double quotes, backslash escapes; no expansion). */
function shellWords(line: string): string[] {
  const words: string[] = [];
  let cur: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (ch === "'" || ch === '"') {
      const end = line.indexOf(ch, i + 1);
      if (end < 0) throw new Error(`unterminated quote in: ${line}`);
      cur = (cur ?? '') + line.slice(i + 1, end);
      i = end;
    } else if (ch === '\\' && i + 1 < line.length) {
      cur = (cur ?? '') + line[++i];
    } else if (/\s/.test(ch)) {
      if (cur !== null) words.push(cur);
      cur = null;
    } else if (ch === '#' && cur === null) {
      break; // a comment
    } else cur = (cur ?? '') + ch;
  }
  if (cur !== null) words.push(cur);
  return words;
}

/** The `memscope …` command lines of the Markdown's fenced code blocks, continuation lines joined, as words without `memscope`. */
function readmeCommands(markdown: string): string[][] {
  const out: string[][] = [];
  let inBlock = false;
  let pending = '';
  for (const raw of markdown.split('\n')) {
    if (/^\s*```/.test(raw)) {
      inBlock = !inBlock;
      pending = '';
      continue;
    }
    if (!inBlock) continue;
    const line = pending + raw;
    if (/\\\s*$/.test(line)) {
      pending = line.replace(/\\\s*$/, ' ');
      continue;
    }
    pending = '';
    const w = shellWords(line.trim());
    if (w[0] === 'memscope') out.push(w.slice(1));
  }
  return out;
}

function flag(words: readonly string[], name: string): string | undefined {
  const i = words.indexOf(name);
  return i >= 0 ? words[i + 1] : undefined;
}

/** A Stable Diffusion line: its `--model` is a folder the user brings (ends in `/`), not one memscope ships. */
function isSdLine(words: readonly string[]): boolean {
  const m = flag(words, '--model');
  return m !== undefined && m.endsWith('/') && !m.startsWith('models/') && !m.startsWith('exported/');
}

/** The line with `--steps 2`, at most two seeds, and `geometry` at 64² on the legacy layout (the only substitutions; see the module note). */
function shrink(words: readonly string[], variant: SdExporterVariant): string[] {
  const w = [...words];
  const set = (name: string, value: string): void => {
    const i = w.indexOf(name);
    if (i >= 0) w[i + 1] = value;
    else w.push(name, value);
  };
  set('--steps', '2');
  // sweep runs one seed (--seed); the other study commands and sample take --seeds
  if (w[0] !== 'sweep') set('--seeds', '0-1');
  if (w[0] === 'geometry' && variant === 'legacy') set('--image-size', '64');
  return w;
}

const CAPTIONS = ['The No Limits Business Woman Podcast', 'a photo of a cat', 'a red car on a road', 'an empty room'];

async function writePng(path: string, seed: number): Promise<void> {
  const px = Buffer.alloc(48 * 48 * 3);
  let s = seed;
  for (let k = 0; k < px.length; k++) px[k] = (s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 24;
  await sharp(px, { raw: { width: 48, height: 48, channels: 3 } }).png().toFile(path);
}

const sdLines = readmeCommands(readFileSync(README, 'utf8')).filter(isSdLine);

describe('README Stable Diffusion lines', () => {
  it('the README has Stable Diffusion lines, the first-contact `sample --model sd14/` among them', () => {
    expect(sdLines.length).toBeGreaterThanOrEqual(2);
    expect(sdLines.map((w) => w[0])).toContain('sample');
    const first = sdLines.find((w) => w[0] === 'sample')!;
    expect(first.slice(0, 3)).toEqual(['sample', '--model', 'sd14/']);
  });

  describe.each(['legacy', 'optimum'] as SdExporterVariant[])('on a tiny %s export with dynamic spatial axes', (variant) => {
    let root: string;
    let cwd: string;
    const expectedSide = variant === 'legacy' ? 512 : 64;

    beforeAll(async () => {
      root = mkdtempSync(join(tmpdir(), `memscope-readme-sd-${variant}-`));
      cwd = process.cwd();
      // every export path, prompt list, model and folder the lines name, at those relative paths
      const exportDirs = new Set(sdLines.map((w) => flag(w, '--model')!));
      for (const d of exportDirs) writeTinySdExport(join(root, d), { variant, seed: 4, spatial: 'dynamic' });
      const firstExport = join(root, [...exportDirs][0]!);
      mkdirSync(join(root, 'images'));
      for (let i = 0; i < 3; i++) await writePng(join(root, 'images', `train${i}.png`), 11 + i);
      const q = (x: string): string => `"${x.replace(/"/g, '""')}"`;
      const csv = `caption,image,label\n${CAPTIONS.map((c, i) => `${q(c)},${i < 3 ? `images/train${i}.png` : ''},${['MV', 'TV', 'N', 'N'][i]}`).join('\n')}\n`;
      for (const w of sdLines) {
        const set = flag(w, '--prompt-set');
        if (set !== undefined) writeFileSync(join(root, set), csv);
        const ho = flag(w, '--held-out');
        if (ho !== undefined) {
          mkdirSync(join(root, ho), { recursive: true });
          for (let i = 0; i < 3; i++) await writePng(join(root, ho, `h${i}.png`), 101 + i);
        }
        const desc = flag(w, '--descriptor');
        if (desc?.startsWith('sscd:')) writeTinySscd(join(root, desc.slice(5)));
        const clip = flag(w, '--clip');
        const inc = flag(w, '--inception');
        if (clip !== undefined || inc !== undefined) {
          const m = writeTinyMetricModels(join(root, '.metric-models'), join(firstExport, 'tokenizer'));
          if (clip !== undefined) renameSync(m.clipDir, join(root, clip));
          if (inc !== undefined) renameSync(m.inception, join(root, inc));
          rmSync(join(root, '.metric-models'), { recursive: true, force: true });
        }
      }
      process.chdir(root);
    }, 60_000);

    afterAll(() => {
      process.chdir(cwd);
      rmSync(root, { recursive: true, force: true });
    });

    it.each(sdLines.map((w) => [w.join(' '), w] as const))('memscope %s', async (_, words) => {
      const argv = shrink(words, variant);
      const r = await runCli(argv);
      expect(r.code, `memscope ${argv.join(' ')}\n${r.err}`).toBe(0);
      // the size used, and where it came from, is printed
      if (argv.includes('--image-size')) expect(r.err).toContain(`image size ${flag(argv, '--image-size')}×${flag(argv, '--image-size')} (from --image-size)`);
      else expect(r.err).toContain(`image size ${expectedSide}×${expectedSide} (${variant === 'legacy' ? 'no unet/config.json' : 'unet/config.json sample_size 8 × VAE scale factor 8'}`);
      if (words[0] === 'sample') {
        const out = flag(argv, '--out') ?? 'runs/sample';
        const img = await readNpy(join(root, out, 'images.npy'));
        // rows = prompts × the two seeds shrink() keeps (--prompts caption:A-B or A,B,… names the prompts)
        const cond = flag(argv, '--prompts');
        const prompts = cond === undefined ? 1 : cond.replace(/^caption:/, '').split(',').reduce((n, part) => {
          const [a, b] = part.split('-').map(Number) as [number, number | undefined];
          return n + (b === undefined ? 1 : b - a + 1);
        }, 0);
        expect(img.dims).toEqual([prompts * 2, 3, expectedSide, expectedSide]);
      }
    }, 240_000);
  });
});
