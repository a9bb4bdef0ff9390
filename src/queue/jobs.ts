/**
 * What travels through the queue. A job is one batch of units of one study (the model call the
 * in-process runner would make), with the command context a worker needs to rebuild the study's
 * source (the command and its recorded flags, the folder they were typed in). Its id is the unit
 * key for a one-unit batch, else `batch-` + the SHA-256 of its keys: batches are cut from the whole
 * plan, so a re-plan of the same study gives the same ids and BullMQ never holds a unit twice. A
 * result carries every unit's output and who computed it. Blobs travel base64-encoded in the result
 * (small for the lab's 32×32 models), or — with a shared blob folder (`--blobs DIR`, the same path
 * on every host) — as files named by their SHA-256 that the worker writes there and the coordinator
 * reads back and checks (one sub-folder per study, removed once the study's units are committed), so that large tensors (Stable Diffusion: docs/queue.md)
 * stay out of Redis.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Unit, UnitOutput } from '../engine/study.ts';

/** The command a job's units come from: enough for a worker to rebuild the study's source. */
export interface JobContext {
  /** The memscope command (`sample`, …). */
  readonly command: string;
  /** Its validated flags as run.json records them (paths as typed). */
  readonly flags: Readonly<Record<string, string | boolean>>;
  /** The folder the flags were typed in (relative paths resolve against it). */
  readonly cwd: string;
  /** The shared blob folder (absolute), when blobs travel as files instead of inside the result. */
  readonly blobs?: string;
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

/** A blob on the wire: its bytes base64-encoded, or a file in the shared blob folder named by its SHA-256. */
export type WireBlob = { readonly name: string; readonly base64: string } | { readonly name: string; readonly sha256: string; readonly size: number };

/** A unit's output on the wire. */
export interface WireOutput<R> {
  readonly result: R;
  readonly blobs: readonly WireBlob[];
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

/** Outputs → their wire form: blobs base64-encoded, or written into `blobsDir` (atomically, named by their SHA-256) when given. */
export async function encodeOutputs<R>(outputs: readonly UnitOutput<R>[], blobsDir?: string): Promise<WireOutput<R>[]> {
  if (blobsDir === undefined) return outputs.map((o) => ({ result: o.result, blobs: (o.blobs ?? []).map((b) => ({ name: b.name, base64: Buffer.from(b.bytes).toString('base64') })) }));
  await mkdir(blobsDir, { recursive: true });
  const out: WireOutput<R>[] = [];
  for (const o of outputs) {
    const blobs: WireBlob[] = [];
    for (const b of o.blobs ?? []) {
      const sha256 = createHash('sha256').update(b.bytes).digest('hex');
      const path = join(blobsDir, sha256);
      const present = await stat(path).then((s) => s.size === b.bytes.byteLength, () => false);
      if (!present) {
        // written under a unique temporary name, then renamed: a reader never sees a partial file
        const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
        await writeFile(tmp, b.bytes);
        await rename(tmp, path);
      }
      blobs.push({ name: b.name, sha256, size: b.bytes.byteLength });
    }
    out.push({ result: o.result, blobs });
  }
  return out;
}

/** A wire output → the unit output it was; a blob file must be in `blobsDir` with its size and SHA-256, else an error naming it. */
export async function decodeOutput<R>(w: WireOutput<R>, blobsDir?: string): Promise<UnitOutput<R>> {
  const blobs: { name: string; bytes: Uint8Array }[] = [];
  for (const b of w.blobs) {
    if ('base64' in b) {
      blobs.push({ name: b.name, bytes: new Uint8Array(Buffer.from(b.base64, 'base64')) });
      continue;
    }
    if (blobsDir === undefined) throw new Error(`blob ${b.name} (${b.sha256.slice(0, 12)}) came as a file of a shared blob folder, but this run names none (--blobs)`);
    const path = join(blobsDir, b.sha256);
    const bytes = await readFile(path).catch((e: Error) => {
      throw new Error(`blob ${b.name} (${b.sha256.slice(0, 12)}) is not in the shared blob folder ${blobsDir} (${e.message}); --blobs must name the same folder on every host`);
    });
    const got = createHash('sha256').update(bytes).digest('hex');
    if (bytes.byteLength !== b.size || got !== b.sha256) throw new Error(`blob ${b.name}: ${path} holds ${bytes.byteLength} bytes with SHA-256 ${got.slice(0, 12)}, not the ${b.size} bytes ${b.sha256.slice(0, 12)} the worker wrote`);
    blobs.push({ name: b.name, bytes: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) });
  }
  return { result: w.result, blobs };
}

/** The folder of one study's blob files inside the shared blob folder (removed when the study's units are committed). */
export function studyBlobDir(blobs: string, study: string): string {
  return join(blobs, `study-${study}`);
}

/** Remove a study's folder of blob files. */
export async function removeStudyBlobs(blobs: string, study: string): Promise<void> {
  await rm(studyBlobDir(blobs, study), { recursive: true, force: true });
}
