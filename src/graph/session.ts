/**
 * onnxruntime sessions: create and cache `InferenceSession`s from ONNX bytes or a path, run them
 * with memscope `Tensor`s, and read input/output names, element types and shapes from the
 * session metadata. The only module (with `builder.ts`) that imports `onnxruntime-node`; the
 * conversions between memscope tensors and onnxruntime's live in `session-core.ts`, shared with
 * the browser's `session-web.ts`.
 */
import { createHash } from 'node:crypto';
import * as ort from 'onnxruntime-node';
import { Session, type OrtTensorClass } from './session-core.ts';
import { GraphBuilder } from './builder.ts';

export * from './session-core.ts';

/** Options of {@link createSession} / {@link getSession}. */
export interface SessionOptions {
  /**
   * Intra-op threads (default: `MEMSCOPE_THREADS` when set, else 2 — the CPU count of the
   * reference machine).
   */
  readonly threads?: number;
  /** Graph optimisation level (default `'all'`). */
  readonly optimization?: 'disabled' | 'basic' | 'extended' | 'all';
  /**
   * Execution provider (default `'cpu'`). `'cuda'` runs on the GPU (CPU as fallback for nodes the
   * CUDA provider lacks); creating the session fails with a clear error when this
   * onnxruntime-node installation has no CUDA provider libraries.
   */
  readonly executionProvider?: ExecutionProvider;
  /**
   * External data files given in memory (`path` = the `location` the model names, `data` = the
   * file's bytes), for a model whose data files cannot sit beside it (default none: onnxruntime
   * reads them from the model's folder).
   */
  readonly externalData?: readonly { readonly path: string; readonly data: Uint8Array }[];
  /**
   * onnxruntime's profiler: per-node kernel times written as a Chrome-trace JSON file whose name
   * starts with this path prefix (`PREFIX_<date>.json`), finished by `Session.endProfiling()`
   * (default off). For `npm run bench -- train-profile`.
   */
  readonly profile?: string;
}

/** Execution providers memscope can ask onnxruntime for. */
export type ExecutionProvider = 'cpu' | 'cuda';

/** Default intra-op thread count: `MEMSCOPE_THREADS` or 2. */
export function defaultThreads(): number {
  const env = process.env['MEMSCOPE_THREADS'];
  if (env !== undefined && env !== '') {
    const n = Number(env);
    if (Number.isInteger(n) && n > 0) return n;
    throw new Error(`MEMSCOPE_THREADS must be a positive integer, got '${env}'`);
  }
  return 2;
}

/**
 * Default execution provider: `MEMSCOPE_PROVIDER` (`cpu` or `cuda`) when set, else `cpu`. A queue
 * worker started with `--provider cuda` sets it, so every model it loads runs on the GPU.
 */
export function defaultExecutionProvider(): ExecutionProvider {
  const env = process.env['MEMSCOPE_PROVIDER'];
  if (env === undefined || env === '') return 'cpu';
  if (env === 'cpu' || env === 'cuda') return env;
  throw new Error(`MEMSCOPE_PROVIDER must be cpu or cuda, got '${env}'`);
}

/**
 * Whether onnxruntime can run a one-node graph with `provider` alone (no CPU fallback): null when
 * it can, else onnxruntime's reason (e.g. the CUDA provider's shared library is missing).
 */
export async function probeExecutionProvider(provider: ExecutionProvider): Promise<string | null> {
  if (provider === 'cpu') return null;
  const b = new GraphBuilder({ name: 'provider-probe' });
  const x = b.input('x', 'float32', [1]);
  b.output(b.op('Identity', [x]), 'float32', [1], 'y');
  try {
    const s = await ort.InferenceSession.create(b.toBytes(), { executionProviders: [provider], logSeverityLevel: 4 });
    await s.release();
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

function ortOptions(opts: SessionOptions): ort.InferenceSession.SessionOptions {
  const o: ort.InferenceSession.SessionOptions = {
    intraOpNumThreads: opts.threads ?? defaultThreads(),
    interOpNumThreads: 1,
    graphOptimizationLevel: opts.optimization ?? 'all',
    executionMode: 'sequential',
    ...(opts.profile === undefined ? {} : { enableProfiling: true, profileFilePrefix: opts.profile }),
  };
  const withData = opts.externalData === undefined || opts.externalData.length === 0 ? o : { ...o, externalData: opts.externalData.map((e) => ({ path: e.path, data: e.data })) };
  return (opts.executionProvider ?? defaultExecutionProvider()) === 'cuda' ? { ...withData, executionProviders: ['cuda', 'cpu'] } : withData;
}

/**
 * Create a new (uncached) session from serialized ONNX bytes or a file path (external weight
 * files beside a path are found by onnxruntime). Defaults: `intraOpNumThreads` =
 * {@link defaultThreads}, optimisation `'all'`, CPU execution provider (`executionProvider:
 * 'cuda'` only when asked; a clear error when CUDA is not available).
 */
export async function createSession(model: Uint8Array | string, opts: SessionOptions = {}): Promise<Session> {
  const o = ortOptions(opts);
  let s: ort.InferenceSession;
  try {
    s = typeof model === 'string' ? await ort.InferenceSession.create(model, o) : await ort.InferenceSession.create(model, o);
  } catch (e) {
    const src = typeof model === 'string' ? model : `ONNX bytes (${model.byteLength} B)`;
    const msg = (e as Error).message;
    if ((opts.executionProvider ?? defaultExecutionProvider()) === 'cuda' && /cuda|shared library|provider/i.test(msg)) {
      throw new Error(
        `onnxruntime could not load ${src} with the CUDA execution provider: ${msg} — this onnxruntime-node ` +
          'installation has no usable CUDA provider (it needs libonnxruntime_providers_cuda.so beside its binding, ' +
          "installed by onnxruntime-node's install script on linux x64, and CUDA 12 + cuDNN 9 libraries); use executionProvider 'cpu'",
      );
    }
    throw new Error(`onnxruntime could not load ${src}: ${msg}`);
  }
  return new Session(s, typeof model === 'string' ? model : `bytes:${sha1(model).slice(0, 12)}`, ort.Tensor as unknown as OrtTensorClass, forget);
}

function sha1(b: Uint8Array): string {
  return createHash('sha1').update(b).digest('hex');
}

const cache = new Map<string, Session>();

/** Drop a released session from the cache. */
function forget(s: Session): void {
  for (const [k, v] of cache) if (v === s) cache.delete(k);
}
const pending = new Map<string, Promise<Session>>();

/**
 * A cached session: the same bytes (by SHA-1) or path with the same options give the same
 * `Session`. Released by {@link disposeAll} or `session.release()`.
 */
export async function getSession(model: Uint8Array | string, opts: SessionOptions = {}): Promise<Session> {
  const o = ortOptions(opts);
  const key = `${typeof model === 'string' ? `path:${model}` : `sha1:${sha1(model)}`}|${o.intraOpNumThreads}|${o.graphOptimizationLevel}|${opts.executionProvider ?? defaultExecutionProvider()}|${opts.profile ?? ''}`;
  const hit = cache.get(key);
  if (hit !== undefined) return hit;
  const p = pending.get(key);
  if (p !== undefined) return p;
  const made = createSession(model, opts).then(
    (s) => {
      pending.delete(key);
      cache.set(key, s);
      return s;
    },
    (e: unknown) => {
      pending.delete(key);
      throw e;
    },
  );
  pending.set(key, made);
  return made;
}

/** Release every cached session (call at the end of a run or test file). */
export async function disposeAll(): Promise<void> {
  await Promise.allSettled([...pending.values()]);
  const all = [...cache.values()];
  cache.clear();
  await Promise.all(all.map((s) => s.release()));
}
