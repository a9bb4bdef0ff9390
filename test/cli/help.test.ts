import { describe, it, expect } from 'vitest';
import { z } from 'zod';
import { COMMANDS } from '../../src/cli/main.ts';
import { commandHelp, flagDocs, renderHelp, formatDefault } from '../../src/cli/help.ts';
import { runCli } from '../helpers/cli.ts';

/** The lines of a flag's entry in a help text: its `  --key` line and the indented lines after it. */
function flagBlock(help: string, key: string): string | null {
  const lines = help.split('\n');
  const i = lines.findIndex((l) => new RegExp(`^ {2}--${key}( |$)`).test(l));
  if (i < 0) return null;
  const out = [lines[i]!];
  for (let j = i + 1; j < lines.length && /^ {4,}\S/.test(lines[j]!); j++) out.push(lines[j]!);
  return out.map((l) => l.trim()).join(' ');
}

/** Whether `shown` (as printed after "default ") stands for `value`: the same string, or the same number (also as p/q). */
function sameDefault(shown: string, value: unknown): boolean {
  if (typeof value === 'number') {
    const frac = /^(\d+)\/(\d+)$/.exec(shown);
    const n = frac ? Number(frac[1]) / Number(frac[2]) : Number(shown);
    return Math.abs(n - value) <= 1e-12 * Math.max(1, Math.abs(value));
  }
  if (Array.isArray(value)) return shown === value.join(',');
  return shown === value;
}

describe('help generated from the flag schemas', () => {
  it('renders sections, the value column, wrapped descriptions and the schema defaults', () => {
    const schema = z.object({
      steps: z.string().transform(Number).default(50).register(flagDocs, { value: 'N', help: 'inference steps' }),
      ratio: z.string().transform(Number).default(1 / 3).register(flagDocs, { value: 'X', help: 'ratio test threshold (default {default}, strict)' }),
      'batch-size': z.string().optional().register(flagDocs, { value: 'N', help: 'rows per call (default: all)' }),
      fast: z.boolean().default(false).register(flagDocs, { help: 'a switch' }),
      out: z.string().default('runs/x').register(flagDocs, {
        value: 'DIR',
        help: 'a long description that has to wrap because it goes on and on past the hundredth column of the terminal window',
      }),
    });
    const text = renderHelp(schema, {
      title: 'memscope x — a test command',
      usage: 'memscope x [flags]',
      blocks: [{ flags: ['steps', 'ratio', 'batch-size'] }, { heading: 'Output:', flags: ['fast', 'out', { flag: 'config', value: 'FILE', help: 'an extra flag' }] }, 'Prose paragraph.'],
      examples: ['memscope x --steps 3'],
    });
    expect(text).toBe(`memscope x — a test command

Usage: memscope x [flags]
  --steps N       inference steps (default 50)
  --ratio X       ratio test threshold (default 1/3, strict)
  --batch-size N  rows per call (default: all)

Output:
  --fast          a switch
  --out DIR       a long description that has to wrap because it goes on and on past the hundredth
                  column of the terminal window (default runs/x)
  --config FILE   an extra flag

Prose paragraph.

Example:
  memscope x --steps 3
`);
  });

  it('follows the schema: a changed default changes the help', () => {
    const make = (d: number) => z.object({ steps: z.string().transform(Number).default(d).register(flagDocs, { value: 'N', help: 'inference steps' }) });
    const spec = { title: 'memscope x — t', usage: 'memscope x', blocks: [{ flags: ['steps'] }], examples: ['memscope x'] };
    expect(renderHelp(make(50), spec)).toContain('--steps N  inference steps (default 50)');
    expect(renderHelp(make(20), spec)).toContain('--steps N  inference steps (default 20)');
    expect(formatDefault(0.001)).toBe('0.001');
    expect(formatDefault(2 / 3)).toBe('2/3');
    expect(formatDefault(['a', 'b'])).toBe('a,b');
  });

  it('refuses help that can drift from the schema or misses a flag', () => {
    const spec = (flags: string[]) => ({ title: 'memscope x — t', usage: 'memscope x', blocks: [{ flags }], examples: ['memscope x'] });
    const doc = (help: string) => z.string().default('a').register(flagDocs, { value: 'V', help });
    expect(() => renderHelp(z.object({ a: doc('the a (default b)') }), spec(['a']))).toThrow(/--a: the doc writes its own "\(default …\)"/);
    expect(() => renderHelp(z.object({ a: doc('a'), b: doc('b') }), spec(['a']))).toThrow(/no line for --b/);
    expect(() => renderHelp(z.object({ a: doc('a') }), spec(['a', 'a']))).toThrow(/lists --a twice/);
    expect(() => renderHelp(z.object({ a: doc('a') }), spec(['a', 'c']))).toThrow(/--c, which is not a flag/);
    expect(() => renderHelp(z.object({ a: z.string() }), spec(['a']))).toThrow(/--a has no help/);
    expect(() => renderHelp(z.object({ a: z.string().optional().register(flagDocs, { value: 'V', help: 'x (default {default})' }) }), spec(['a']))).toThrow(/no default/);
    expect(() => renderHelp(z.object({ a: z.string().default('/opt/m/models/classifier').register(flagDocs, { value: 'V', help: 'x', shownDefault: 'models/other' }) }), spec(['a']))).toThrow(/shownDefault/);
    // a doc registered inside the optional / default wrappers is found
    const inner = z.string().register(flagDocs, { value: 'V', help: 'inner doc' });
    expect(renderHelp(z.object({ a: inner.optional() }), spec(['a']))).toContain('--a V  inner doc');
  });

  it('renders once, on first use', () => {
    const schema = z.object({ a: z.string().optional().register(flagDocs, { value: 'V', help: 'x' }) });
    const h = commandHelp(schema, { title: 'memscope x — t', usage: 'memscope x', blocks: [{ flags: ['a'] }], examples: ['memscope x'] });
    expect(h.text).toBe(h.text);
    expect(h.schema).toBe(schema);
  });

  for (const [name, command] of Object.entries(COMMANDS)) {
    it(`${name} --help has a line for every flag of its schema, with the schema's default`, async () => {
      const { code, out } = await runCli([name, '--help']);
      expect(code).toBe(0);
      expect(out).toBe(command.help.text);
      const shape = command.help.schema.shape as Record<string, z.ZodType>;
      expect(Object.keys(shape).length).toBeGreaterThan(0);
      for (const [key, field] of Object.entries(shape)) {
        const block = flagBlock(out, key);
        expect(block, `${name}: --${key}`).not.toBeNull();
        // the value of an absent flag (an empty command line)
        const parsed = field.safeParse(undefined);
        const value = parsed.success ? parsed.data : undefined;
        if (value === undefined || typeof value === 'boolean') continue;
        const shown = [...block!.matchAll(/\(default (\S+)/g)].map((m) => m[1]!.replace(/[),;:]+$/, ''));
        if (shown.length === 0) {
          // a default written inside the description (`… | default (…)`): the value itself is there
          expect(block, `${name}: --${key} shows ${String(value)}`).toContain(String(value));
          continue;
        }
        for (const s of shown) {
          // a default that depends on the install location is shown as the end of its path
          const ok = sameDefault(s, value) || (typeof value === 'string' && value.replaceAll('\\', '/').endsWith(s) && s.includes('/'));
          expect(ok, `${name}: --${key} shows (default ${s}); the schema default is ${JSON.stringify(value)}`).toBe(true);
        }
      }
    });
  }
});
