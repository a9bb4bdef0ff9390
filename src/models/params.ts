/**
 * Trainable parameters: named float32 arrays with their shapes and initialisers. Model builders
 * declare parameters through a `ParamFn`; the caller decides whether each becomes a graph input
 * (training graphs, so values can change every step without rebuilding the session) or an
 * initializer (inference and export graphs).
 */

/** How a parameter is initialised. */
export type ParamInit =
  | { readonly kind: 'zeros' }
  | { readonly kind: 'ones' }
  | { readonly kind: 'normal'; readonly std: number }
  | { readonly kind: 'uniform'; readonly bound: number };

/** One parameter's declaration. */
export interface ParamSpec {
  readonly name: string;
  readonly dims: readonly number[];
  readonly init: ParamInit;
  /** Excluded from weight decay (biases, norms, embeddings by convention). Default false. */
  readonly noDecay?: boolean;
}

/**
 * Declares a parameter inside a graph under construction and returns the graph value name that
 * holds it. Calling it twice with the same name is an error.
 */
export type ParamFn = (name: string, dims: readonly number[], init: ParamInit, opts?: { readonly noDecay?: boolean }) => string;

/** A set of parameter values, in declaration order. */
export interface ParamValues {
  readonly specs: readonly ParamSpec[];
  readonly values: ReadonlyMap<string, Float32Array>;
}
