/**
 * onnxruntime-web sessions for the in-browser explorer (issue 17 §4): the same `Session` as the
 * CLI's (`session-core.ts`: casts, metadata, `run`) over onnxruntime-web's WebAssembly backend.
 * The explorer's bundle (`serve/bundle.ts`) puts this module in place of `session.ts`, so the
 * denoiser, samplers and guidance code above it run unchanged in the browser. The wasm files are
 * served by the dashboard from the installed onnxruntime-web (`env.wasm.wasmPaths`).
 */
import * as ort from 'onnxruntime-web/wasm';
import { Session, type OrtTensorClass } from './session-core.ts';
import type { ExecutionProvider, SessionOptions } from './session.ts';

export * from './session-core.ts';
export type { ExecutionProvider, SessionOptions };

/** Where the page finds onnxruntime-web's wasm files, and how many threads it may use (call before the first session). */
export function configureWasm(wasmPaths: string, threads: number): void {
  ort.env.wasm.wasmPaths = wasmPaths;
  ort.env.wasm.numThreads = threads;
}

/** Threads of a browser session: `navigator.hardwareConcurrency`, at most 2 (the reference machine's CPU count). */
export function defaultThreads(): number {
  const n = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency ?? 1;
  return Math.max(1, Math.min(2, n));
}

/** A new session of serialized ONNX bytes on onnxruntime-web's CPU (wasm) backend. */
export async function createSession(model: Uint8Array | string, opts: SessionOptions = {}): Promise<Session> {
  if (typeof model === 'string') throw new Error(`the browser cannot open ${model} by path: pass the model's bytes`);
  if (opts.executionProvider === 'cuda') throw new Error("the browser has no CUDA execution provider; use 'cpu' (wasm)");
  let s: ort.InferenceSession;
  try {
    s = await ort.InferenceSession.create(model, { executionProviders: ['wasm'], graphOptimizationLevel: opts.optimization ?? 'all', executionMode: 'sequential' });
  } catch (e) {
    throw new Error(`onnxruntime-web could not load ONNX bytes (${model.byteLength} B): ${(e as Error).message}`);
  }
  return new Session(s, `bytes:${model.byteLength}`, ort.Tensor as unknown as OrtTensorClass);
}

/** As {@link createSession} (the browser keeps no session cache). */
export const getSession = createSession;

/** Nothing is cached in the browser: a no-op kept for the same interface as `session.ts`. */
export async function disposeAll(): Promise<void> {}
