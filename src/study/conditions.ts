/** Parsing condition selections such as `caption:0-3,class:0,uncond` against a denoiser's conditions. */
import { didYouMean } from '../text/suggest.ts';
import type { CondRef, Denoiser } from '../denoisers/denoiser.ts';

function range(part: string, arg: string, spec: string): number[] {
  const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
  if (!m) throw new Error(`${arg} "${spec}": "${part}" is not an index or range like 3 or 0-3`);
  const a = Number(m[1]);
  const b = m[2] === undefined ? a : Number(m[2]);
  if (b < a) throw new Error(`${arg} "${spec}": range ${part} is reversed`);
  return Array.from({ length: b - a + 1 }, (_, i) => a + i);
}

/** `dup:N` / `dup:A-B`: every condition whose recorded duplication count lies in [A, B], in model order. */
function byDuplicates(tok: string, spec: string, denoiser: Denoiser, arg: string): number[] {
  const part = tok.slice(4);
  const m = /^(\d+)(?:-(\d+))?$/.exec(part);
  if (!m) throw new Error(`${arg} "${spec}": "${tok}" expects a count or count range like dup:100 or dup:30-100`);
  const lo = Number(m[1]);
  const hi = m[2] === undefined ? lo : Number(m[2]);
  if (hi < lo) throw new Error(`${arg} "${spec}": range ${part} is reversed`);
  const counts = [...new Set(denoiser.conditions.flatMap((c) => (c.duplicates === undefined ? [] : [c.duplicates])))].sort((a, b) => a - b);
  if (counts.length === 0) throw new Error(`${arg} "${spec}": ${denoiser.name} records no duplication counts (dup:N needs a model of the graded or duplication scenario)`);
  const hit = denoiser.conditions.flatMap((c, i) => (c.duplicates !== undefined && c.duplicates >= lo && c.duplicates <= hi ? [i] : []));
  if (hit.length === 0) throw new Error(`${arg} "${spec}": no condition of ${denoiser.name} is trained on ${part} times; its counts are ${counts.join(', ')}`);
  return hit;
}

/**
 * Resolve a comma-separated condition selection to condition references:
 * `uncond` (null condition), `all` (every condition; the null one for an unconditional model), `KIND:I` or `KIND:I-J` matching condition ids `KIND:I`
 * (e.g. `caption:0-3`, `class:7`), `dup:N` or `dup:A-B` (the conditions whose image is trained on
 * N, or A to B, times: the `graded` scenario's `dup:100`, `dup:1`), or a bare index/range into
 * `denoiser.conditions`.
 */
export function parseConditions(spec: string, denoiser: Denoiser, arg = '--prompts'): CondRef[] {
  const out: CondRef[] = [];
  const ids = new Map(denoiser.conditions.map((c, i) => [c.id, i] as const));
  const kinds = [...new Set(denoiser.conditions.map((c) => c.id.split(':')[0]))];
  for (const raw of spec.split(',')) {
    const tok = raw.trim();
    if (tok === '') throw new Error(`${arg} "${spec}": empty entry`);
    if (tok === 'uncond' || tok === 'null') {
      out.push(null);
    } else if (tok === 'all') {
      // an unconditional model's only condition is the null one
      if (denoiser.conditions.length === 0) out.push(null);
      denoiser.conditions.forEach((_, i) => out.push(i));
    } else if (tok.startsWith('dup:')) {
      out.push(...byDuplicates(tok, spec, denoiser, arg));
    } else if (tok.includes(':')) {
      const [kind, part] = tok.split(':') as [string, string];
      for (const k of range(part, arg, spec)) {
        const idx = ids.get(`${kind}:${k}`);
        if (idx === undefined) {
          const n = denoiser.conditions.filter((c) => c.id.startsWith(`${kind}:`)).length;
          const known = kinds.filter((x): x is string => x !== undefined);
          throw new Error(`${arg} "${spec}": ${denoiser.name} has no condition ${kind}:${k}; ` + (n ? `${kind} runs 0..${n - 1}` : `kinds are ${known.join(', ')} (or uncond, all)${didYouMean(kind, known, (x) => `${x}:${part}`)}`));
        }
        out.push(idx);
      }
    } else {
      for (const k of range(tok, arg, spec)) {
        if (k >= denoiser.conditions.length) throw new Error(`${arg} "${spec}": index ${k} out of range; ${denoiser.name} has ${denoiser.conditions.length} conditions`);
        out.push(k);
      }
    }
  }
  return out;
}

/**
 * Resolve a prompt selection (as {@link parseConditions}) that must not contain the null condition:
 * `uncondReason` completes the error `<arg>: uncond <uncondReason>` when it does.
 */
export function parsePrompts(spec: string, denoiser: Denoiser, arg: string, uncondReason: string): number[] {
  return parseConditions(spec, denoiser, arg).map((c) => {
    if (c === null) throw new Error(`${arg}: uncond ${uncondReason}`);
    return c;
  });
}
