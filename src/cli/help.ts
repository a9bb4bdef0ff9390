/**
 * Command help generated from the zod schema of a command's flags (issue 15 §8): every field of
 * the schema carries its description and value name as zod metadata (the {@link flagDocs}
 * registry), the default printed is the schema's own default (what parsing an empty command line
 * gives), and the command's free text (what it does, what it writes, examples) stays prose.
 */
import { z } from 'zod';
import { SAMPLER_NAMES } from '../samplers/index.ts';

/** What the help line of one flag says. */
export interface FlagDoc {
  /**
   * The description. `{default}` stands for the schema default; without it a field that has a
   * default gets ` (default X)` appended. A newline starts a new line (a line indented with
   * spaces keeps its indent, and a `NAME  text` row wraps under its text).
   */
  readonly help: string;
  /** The name of the flag's value in its line (`--steps N`); none for a switch. */
  readonly value?: string;
  /**
   * Printed instead of the schema default, for a default that depends on where memscope is
   * installed (a shipped model folder): the default must end with it.
   */
  readonly shownDefault?: string;
}

/** The doc of a `--sampler NAME` flag: the samplers memscope implements. */
export const SAMPLER_HELP = `${SAMPLER_NAMES.join(' | ')} | auto (the model's own scheduler class)`;

/** The flag docs of schema fields: `field.register(flagDocs, { value: 'N', help: '…' })` (same instance, same type). */
export const flagDocs = z.registry<FlagDoc>();

/** A flag that is not a field of the command's schema (parsed by the command itself), with its doc. */
export interface ExtraFlag extends FlagDoc {
  /** The flag's name without the dashes. */
  readonly flag: string;
}

/** One group of flag lines: an optional heading line and the flags (schema keys or extra flags) in order. */
export interface HelpSection {
  readonly heading?: string;
  readonly flags: readonly (string | ExtraFlag)[];
}

/** The help of one command: its title, usage, flag sections and prose paragraphs in order, and examples. */
export interface HelpSpec {
  /** The first line, e.g. `memscope sweep — the CFG-start sweep of Jain et al.`. */
  readonly title: string;
  /** Prose printed between the title and the usage line. */
  readonly intro?: string;
  /** The usage line(s) without `Usage: `. */
  readonly usage: string | readonly string[];
  /** Flag sections and prose paragraphs (printed as given), in order; the first section may have no heading. */
  readonly blocks: readonly (HelpSection | string)[];
  readonly examples: readonly string[];
}

/** A command's help: its schema and spec; {@link CommandHelp.text} renders it (once). */
export interface CommandHelp {
  readonly schema: z.ZodObject;
  readonly spec: HelpSpec;
  /** The rendered help text (ends with a newline). */
  readonly text: string;
}

/** The help of a command whose flags are the fields of `schema` (rendered on first use). */
export function commandHelp(schema: z.ZodObject, spec: HelpSpec): CommandHelp {
  let text: string | undefined;
  return {
    schema,
    spec,
    get text() {
      return (text ??= renderHelp(schema, spec));
    },
  };
}

/** The widest flag column (`--flag VALUE`); a longer flag has its description on the next line. */
const MAX_FLAG_WIDTH = 24;
/** Lines are wrapped at this many characters. */
const WIDTH = 100;

/** The doc registered on a schema field, looked for through its default / optional / nullable / pipe wrappers. */
export function flagDocOf(field: z.ZodType): FlagDoc | undefined {
  let cur: z.ZodType | undefined = field;
  for (let i = 0; i < 16 && cur !== undefined; i++) {
    const doc = flagDocs.get(cur);
    if (doc !== undefined) return doc;
    if (cur instanceof z.ZodDefault || cur instanceof z.ZodPrefault || cur instanceof z.ZodOptional || cur instanceof z.ZodNullable) cur = cur.unwrap() as z.ZodType;
    else if (cur instanceof z.ZodPipe) cur = cur.in as z.ZodType;
    else return undefined;
  }
  return undefined;
}

/** The schema default of a field: what it parses an absent flag to, or undefined when it has none (switches: false). */
export function schemaDefault(field: z.ZodType): unknown {
  const r = field.safeParse(undefined);
  return r.success ? r.data : undefined;
}

/** A default as help prints it: numbers like 1/3 as the fraction, lists comma-separated. */
export function formatDefault(v: unknown): string {
  if (typeof v === 'number') {
    const s = String(v);
    if (s.length <= 8) return s;
    for (let q = 2; q <= 16; q++) {
      const p = Math.round(v * q);
      if (Math.abs(p / q - v) < 1e-12) return `${p}/${q}`;
    }
    return s;
  }
  if (Array.isArray(v)) return v.map(formatDefault).join(',');
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

/** One flag's label (`--steps N`) and description, with its default filled in. */
function flagLine(key: string, doc: FlagDoc, isSwitch: boolean, def: unknown, where: string): { label: string; help: string } {
  if (!isSwitch && doc.value === undefined) throw new Error(`${where}: --${key} takes a value but its doc names none`);
  const label = `--${key}${isSwitch || doc.value === undefined ? '' : ` ${doc.value}`}`;
  let help = doc.help;
  if (def === undefined || isSwitch) {
    if (help.includes('{default}')) throw new Error(`${where}: --${key}: the doc shows {default} but the schema has no default`);
    return { label, help };
  }
  let shown = formatDefault(def);
  if (doc.shownDefault !== undefined) {
    if (!shown.replaceAll('\\', '/').endsWith(doc.shownDefault)) throw new Error(`${where}: --${key}: shownDefault "${doc.shownDefault}" is not the end of the schema default "${shown}"`);
    shown = doc.shownDefault;
  }
  if (help.includes('{default}')) help = help.replaceAll('{default}', shown);
  else if (/\(default\b/.test(help)) throw new Error(`${where}: --${key}: the doc writes its own "(default …)"; use {default} so that it shows the schema default`);
  else help = `${help}${help === '' ? '' : ' '}(default ${shown})`;
  return { label, help };
}

/** Wrap one line of prose to `width` characters; continuation lines start with `indent` spaces. */
function wrap(text: string, width: number, indent: number): string[] {
  const out: string[] = [];
  let line = '';
  // never between "(default" and its value
  for (const word of text.split(/(?<=\S)(?<!\(default) (?=\S)/)) {
    if (line !== '' && line.length + 1 + word.length > width) {
      out.push(line);
      line = ' '.repeat(indent) + word.trimStart();
    } else line = line === '' ? word : `${line} ${word}`;
  }
  out.push(line);
  return out;
}

/** The lines of a flag description starting at column `col`: each of its lines wrapped, with hanging indents. */
function descriptionLines(help: string, col: number): string[] {
  const out: string[] = [];
  for (const para of help.split('\n')) {
    const lead = /^ */.exec(para)![0].length;
    // a "NAME   text" row (two or more spaces after its first word) wraps under its text
    const row = /^ *\S+ {2,}/.exec(para);
    const hang = row === null ? lead : row[0].length;
    out.push(...wrap(para, WIDTH - col, hang));
  }
  return out;
}

/**
 * Render a command's help: the title, intro, usage, each flag section (every key of `schema` must
 * appear in exactly one; `--key VALUE` padded to one column per command, descriptions wrapped at
 * 100 characters, defaults from the schema), the prose paragraphs and the examples.
 */
export function renderHelp(schema: z.ZodObject, spec: HelpSpec): string {
  const where = spec.title.split(' — ')[0]!;
  const shape = schema.shape as Record<string, z.ZodType>;
  const placed = new Set<string>();
  const rendered = spec.blocks.map((b) => {
    if (typeof b === 'string') return b;
    const lines = b.flags.map((f) => {
      if (typeof f !== 'string') {
        if (f.flag in shape) throw new Error(`${where}: --${f.flag} is a schema field; name it by its key`);
        return flagLine(f.flag, f, f.value === undefined, undefined, where);
      }
      const field = shape[f];
      if (field === undefined) throw new Error(`${where}: the help lists --${f}, which is not a flag of the command`);
      if (placed.has(f)) throw new Error(`${where}: the help lists --${f} twice`);
      placed.add(f);
      const doc = flagDocOf(field);
      if (doc === undefined) throw new Error(`${where}: --${f} has no help (register a FlagDoc on the schema field)`);
      const def = schemaDefault(field);
      return flagLine(f, doc, typeof def === 'boolean', def, where);
    });
    return { heading: b.heading, lines };
  });
  const missing = Object.keys(shape).filter((k) => !placed.has(k));
  if (missing.length) throw new Error(`${where}: the help lists no line for ${missing.map((k) => `--${k}`).join(', ')}`);

  const labels = rendered.flatMap((b) => (typeof b === 'string' ? [] : b.lines.map((l) => l.label.length)));
  const flagWidth = Math.min(MAX_FLAG_WIDTH, Math.max(0, ...labels));
  const col = 2 + flagWidth + 2;
  const out: string[] = [spec.title, ''];
  if (spec.intro !== undefined) out.push(spec.intro, '');
  const usage = typeof spec.usage === 'string' ? [spec.usage] : spec.usage;
  if (usage.length === 1) out.push(`Usage: ${usage[0]}`);
  else out.push('Usage:', ...usage.map((u) => `  ${u}`));
  rendered.forEach((b, i) => {
    // a first section without a heading follows a one-line usage directly
    if (!(i === 0 && usage.length === 1 && typeof b !== 'string' && b.heading === undefined)) out.push('');
    if (typeof b === 'string') {
      out.push(b);
      return;
    }
    if (b.heading !== undefined) out.push(b.heading);
    const pad = ' '.repeat(col);
    for (const l of b.lines) {
      const desc = l.help === '' ? [] : descriptionLines(l.help, col);
      if (l.label.length > flagWidth) out.push(`  ${l.label}`, ...desc.map((s) => pad + s));
      else out.push(`  ${l.label.padEnd(flagWidth)}  ${desc[0] ?? ''}`.trimEnd(), ...desc.slice(1).map((s) => pad + s));
    }
  });
  out.push('', spec.examples.length === 1 ? 'Example:' : 'Examples:', ...spec.examples.map((e) => `  ${e}`), '');
  return out.join('\n');
}
