/**
 * LoRA adapters merged into a diffusers folder's weights at load (issue 19 §1, `--lora
 * FILE[:scale]`): W' = W + scale · (α / r) · B·A for every adapted linear or conv layer (Hu et al.
 * 2022, LoRA: ΔW = B·A with A `[r, in]`, B `[out, r]`; for a conv, A `[r, in, k, k]`, B
 * `[out, r, 1, 1]`). The merge is graph ops on the base weight (`weights.ts`), folded by
 * onnxruntime at load: no weight is read into JS memory.
 *
 * Formats read (safetensors only):
 * - diffusers / PEFT: `unet.<module>.lora_A.weight` + `.lora_B.weight` (text encoder:
 *   `text_encoder.<module>…`); the older `…<module>.lora.down.weight` + `.lora.up.weight`; the
 *   attention-processor form `…attn1.processor.to_q_lora.down.weight` + `.up.weight`
 *   (`to_out_lora` = `to_out.0`). α: a `<module>.alpha` entry when present, else α = r (scale 1),
 *   as diffusers assumes for files without `network_alphas`.
 * - kohya (sd-scripts): `lora_unet_<module with _>.lora_down.weight` + `.lora_up.weight` +
 *   `.alpha` (text encoder `lora_te_…`), the module found among the component's own module paths
 *   with `.` → `_`.
 * A key that matches no module of the model, or a module with only one of its two factors, is an
 * error listing them all; nothing is silently dropped.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import type { SafetensorsEntry, SafetensorsIndex } from '../../io/safetensors.ts';

/** One adapter factor pair for one base weight. */
export interface LoraDelta {
  /** A (`down`) `[r, in]` or `[r, in, k, k]`. */
  readonly down: SafetensorsEntry;
  /** B (`up`) `[out, r]` or `[out, r, 1, 1]`. */
  readonly up: SafetensorsEntry;
  /** The file's location (name beside the graph) holding both factors. */
  readonly location: string;
  /** scale · α / r. */
  readonly factor: number;
  /** The adapter file (for errors). */
  readonly source: string;
}

/** A LoRA file and the user's scale (`--lora FILE[:scale]`). */
export interface LoraFile {
  readonly index: SafetensorsIndex;
  /** File name the graphs refer to (unique per adapter, e.g. `lora-0.safetensors`). */
  readonly location: string;
  readonly scale: number;
}

type Comp = 'unet' | 'text_encoder';

/** The module path, component and factor role of one LoRA key; `null` when the key is not a factor, `'unknown'` when a kohya key names no module. */
function parseKey(key: string, kohya: ReadonlyMap<string, { comp: Comp; module: string }>): { comp: Comp; module: string; role: 'down' | 'up' | 'alpha' } | 'unknown' | null {
  let m = /^lora_(unet|te)_(.+)\.(lora_down\.weight|lora_up\.weight|alpha)$/.exec(key);
  if (m !== null) {
    const hit = kohya.get(`${m[1] === 'te' ? 'text_encoder' : 'unet'}:${m[2]}`);
    if (hit === undefined) return 'unknown';
    return { ...hit, role: m[3] === 'alpha' ? 'alpha' : m[3]!.startsWith('lora_down') ? 'down' : 'up' };
  }
  m = /^(unet|text_encoder)\.(.+)$/.exec(key);
  const comp: Comp = m !== null ? (m[1] as Comp) : 'unet';
  const rest = m !== null ? m[2]! : key;
  const forms: [RegExp, (a: RegExpExecArray) => { module: string; role: 'down' | 'up' | 'alpha' }][] = [
    [/^(.+)\.lora_A(?:\.default)?\.weight$/, (a) => ({ module: a[1]!, role: 'down' })],
    [/^(.+)\.lora_B(?:\.default)?\.weight$/, (a) => ({ module: a[1]!, role: 'up' })],
    [/^(.+)\.lora\.down\.weight$/, (a) => ({ module: a[1]!, role: 'down' })],
    [/^(.+)\.lora\.up\.weight$/, (a) => ({ module: a[1]!, role: 'up' })],
    [/^(.+)\.processor\.(to_q|to_k|to_v|to_out)_lora\.(down|up)\.weight$/, (a) => ({ module: `${a[1]}.${a[2] === 'to_out' ? 'to_out.0' : a[2]}`, role: a[3] as 'down' | 'up' })],
    [/^(.+)\.alpha$/, (a) => ({ module: a[1]!, role: 'alpha' })],
  ];
  for (const [re, f] of forms) {
    const a = re.exec(rest);
    if (a !== null) return { comp, ...f(a) };
  }
  return null;
}

/**
 * Match the LoRA files' factors to the base weights `<module>.weight` of the U-Net and text
 * encoder (`unetKeys`, `textKeys`: their state-dict keys). Returns, per component, base key →
 * deltas; throws listing every key that names no module of the model, every module missing a
 * factor, and every factor whose shape does not fit its base weight.
 */
export function matchLora(files: readonly LoraFile[], unetKeys: ReadonlyMap<string, readonly number[]>, textKeys: ReadonlyMap<string, readonly number[]>): Record<Comp, Map<string, LoraDelta[]>> {
  const kohya = new Map<string, { comp: Comp; module: string }>();
  const base: Record<Comp, ReadonlyMap<string, readonly number[]>> = { unet: unetKeys, text_encoder: textKeys };
  for (const comp of ['unet', 'text_encoder'] as const) {
    for (const k of base[comp].keys()) if (k.endsWith('.weight')) kohya.set(`${comp}:${k.slice(0, -'.weight'.length).replace(/\./g, '_')}`, { comp, module: k.slice(0, -'.weight'.length) });
  }
  const out: Record<Comp, Map<string, LoraDelta[]>> = { unet: new Map(), text_encoder: new Map() };
  const problems: string[] = [];
  for (const f of files) {
    const groups = new Map<string, { comp: Comp; module: string; down?: SafetensorsEntry; up?: SafetensorsEntry; alpha?: SafetensorsEntry }>();
    for (const [key, e] of f.index.entries) {
      const p = parseKey(key, kohya);
      if (p === null || p === 'unknown') {
        problems.push(`${f.index.path}: ${key} ${p === null ? 'is not a LoRA factor (lora_A/B, lora.down/up, lora_down/up, alpha)' : 'names no module of this model'}`);
        continue;
      }
      const id = `${p.comp}:${p.module}`;
      const g = groups.get(id) ?? { comp: p.comp, module: p.module };
      g[p.role] = e;
      groups.set(id, g);
    }
    for (const g of groups.values()) {
      const baseKey = `${g.module}.weight`;
      const w = base[g.comp].get(baseKey);
      const where = `${f.index.path}: ${g.comp} ${g.module}`;
      if (w === undefined) {
        problems.push(`${where}: no such weight in the model`);
        continue;
      }
      if (g.down === undefined || g.up === undefined) {
        problems.push(`${where}: has ${g.down === undefined ? 'no down (A)' : 'no up (B)'} factor`);
        continue;
      }
      const r = g.down.dims[0]!;
      const upOk = g.up.dims[0] === w[0] && g.up.dims[1] === r && g.up.dims.slice(2).every((d) => d === 1);
      const downOk = g.down.dims[1] === w[1] && (w.length === 2 ? g.down.dims.length === 2 : g.down.dims.length === 4 && g.down.dims[2] === w[2] && g.down.dims[3] === w[3]);
      if (!upOk || !downOk || !['F32', 'F16', 'BF16'].includes(g.down.dtype) || !['F32', 'F16', 'BF16'].includes(g.up.dtype)) {
        problems.push(`${where}: factors down [${g.down.dims.join(', ')}] ${g.down.dtype} and up [${g.up.dims.join(', ')}] ${g.up.dtype} do not fit the weight [${w.join(', ')}]`);
        continue;
      }
      let alpha = r;
      if (g.alpha !== undefined) {
        if (g.alpha.length !== 4 || g.alpha.dtype !== 'F32') {
          problems.push(`${where}: alpha must be one F32 value (got ${g.alpha.dtype} [${g.alpha.dims.join(', ')}])`);
          continue;
        }
        alpha = readScalar(f.index.path, g.alpha);
      }
      const list = out[g.comp].get(baseKey) ?? [];
      list.push({ down: g.down, up: g.up, location: f.location, factor: (f.scale * alpha) / r, source: f.index.path });
      out[g.comp].set(baseKey, list);
    }
  }
  if (problems.length > 0) {
    const shown = problems.slice(0, 40);
    throw new Error(`--lora: ${problems.length} problem${problems.length === 1 ? '' : 's'}:\n  - ${shown.join('\n  - ')}${problems.length > shown.length ? `\n  … and ${problems.length - shown.length} more` : ''}`);
  }
  return out;
}


/** The one float32 value of entry `e` of the safetensors file at `path` (a LoRA's α). */
function readScalar(path: string, e: SafetensorsEntry): number {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(4);
    readSync(fd, b, 0, 4, e.offset);
    return b.readFloatLE(0);
  } finally {
    closeSync(fd);
  }
}

/** Parse `--lora FILE[:scale]` values (scale default 1; a finite number). */
export function parseLoraSpec(spec: string): { path: string; scale: number } {
  const m = /^(.*?)(?::(-?[0-9.eE+-]+))?$/.exec(spec);
  const path = m?.[1] ?? spec;
  const scale = m?.[2] === undefined ? 1 : Number(m[2]);
  if (path === '' || !Number.isFinite(scale)) throw new Error(`--lora: expected FILE[:scale] with a finite scale, got '${spec}'`);
  return { path, scale };
}
