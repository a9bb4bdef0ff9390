/**
 * Canonical JSON and unit keys: the identity of a unit of work is the SHA-256 of the canonical
 * JSON of everything that determines its result (design: issue 15 §1).
 */
import { createHash } from 'node:crypto';

/**
 * Version of memscope's result format; part of every unit key, so that a change in what a unit
 * stores (or how) never reuses results written by an older format. Bump it when `run` changes
 * its output for the same inputs.
 */
export const RESULT_FORMAT_VERSION = 1;

/**
 * Canonical JSON: object keys sorted, no whitespace, `-0` written as `0`, arrays and typed arrays
 * as JSON arrays. Refuses values JSON cannot carry faithfully (NaN, ±Infinity, undefined inside
 * arrays, functions, bigint, symbols): a key must never depend on a lossy encoding.
 * Object properties whose value is `undefined` are omitted (as `JSON.stringify` does).
 */
export function canonicalJson(value: unknown): string {
  return enc(value, '$');
}

function enc(v: unknown, path: string): string {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'boolean':
      return v ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(v)) throw new Error(`canonicalJson: ${path} is ${v}, which JSON cannot represent`);
      return JSON.stringify(Object.is(v, -0) ? 0 : v);
    case 'string':
      return JSON.stringify(v);
    case 'object': {
      if (ArrayBuffer.isView(v) && !(v instanceof DataView)) {
        return enc(Array.from(v as unknown as ArrayLike<number>), path);
      }
      if (Array.isArray(v)) return '[' + v.map((x, i) => enc(x, `${path}[${i}]`)).join(',') + ']';
      const o = v as Record<string, unknown>;
      const keys = Object.keys(o).filter((k) => o[k] !== undefined).sort();
      return '{' + keys.map((k) => JSON.stringify(k) + ':' + enc(o[k], `${path}.${k}`)).join(',') + '}';
    }
    default:
      throw new Error(`canonicalJson: ${path} is a ${typeof v}, which JSON cannot represent`);
  }
}

/** SHA-256 (hex) of a string or bytes. */
export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * The key of a unit: SHA-256 of the canonical JSON of `{ study, format, identity }`, where
 * `identity` holds everything that determines the unit's result (model fingerprint, condition,
 * seed, sampler, steps, scheduler config, guidance / method with parameters, what is recorded).
 * The study id and {@link RESULT_FORMAT_VERSION} are always part of it.
 */
export function unitKey(study: string, identity: unknown): string {
  return sha256Hex(canonicalJson({ study, format: RESULT_FORMAT_VERSION, identity }));
}
