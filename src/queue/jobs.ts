/**
 * What travels through the queue. A job is one batch of units of one study (the model call the
 * in-process runner would make), with the command context a worker needs to rebuild the study's
 * source (the command and its recorded flags, the folder they were typed in). Its id is the unit
 * key for a one-unit batch, else `batch-` + the SHA-256 of its keys: batches are cut from the whole
 * plan, so a re-plan of the same study gives the same ids and BullMQ never holds a unit twice. A
 * result carries every unit's output, blobs base64-encoded (small for the lab's 32×32 models; see
 * docs/queue.md for Stable Diffusion sizes), and who computed it.
 */
import { createHash } from 'node:crypto';
import type { Unit, UnitOutput } from '../engine/study.ts';

/** The command a job's units come from: enough for a worker to rebuild the study's source. */
export interface JobContext {
  /** The memscope command (`sample`, …). */
  readonly command: string;
  /** Its validated flags as run.json records them (paths as typed). */
  readonly flags: Readonly<Record<string, string | boolean>>;
  /** The folder the flags were typed in (relative paths resolve against it). */
  readonly cwd: string;
}

/** A job's data. */
export interface JobData<U> {
  readonly context: JobContext;
  /** The study id (`sample`, …), checked by the worker against the command's study. */
  readonly study: string;
  /** The queued study this job belongs to (status.ts: its unit keys' hash), for `memscope queue drain|cancel`. */
  readonly run?: string;
  readonly units: readonly Unit<U>[];
}

/** A unit's output on the wire. */
export interface WireOutput<R> {
  readonly result: R;
  readonly blobs: readonly { readonly name: string; readonly base64: string }[];
}

/** A job's return value. */
export interface JobResult<R> {
  readonly outputs: readonly WireOutput<R>[];
  /** Seconds the batch took on the worker. */
  readonly seconds: number;
  /** `host:pid:provider` of the worker. */
  readonly worker: string;
  readonly host: string;
}

/** The job id of a batch of units. */
export function jobIdOf(batch: readonly { readonly key: string }[]): string {
  if (batch.length === 1) return batch[0]!.key;
  return `batch-${createHash('sha256').update(batch.map((u) => u.key).join('\n')).digest('hex')}`;
}

/** Outputs → their wire form. */
export function encodeOutputs<R>(outputs: readonly UnitOutput<R>[]): WireOutput<R>[] {
  return outputs.map((o) => ({ result: o.result, blobs: (o.blobs ?? []).map((b) => ({ name: b.name, base64: Buffer.from(b.bytes).toString('base64') })) }));
}

/** A wire output → the unit output it was. */
export function decodeOutput<R>(w: WireOutput<R>): UnitOutput<R> {
  return { result: w.result, blobs: w.blobs.map((b) => ({ name: b.name, bytes: new Uint8Array(Buffer.from(b.base64, 'base64')) })) };
}
