/**
 * Which ops of an ONNX model memscope's reverse-mode differentiator has no rule for: the list a
 * method that needs gradients through a model (Wen et al.'s prompt-embedding optimisation) gives
 * when it refuses an exported U-Net (issue 19 §2).
 */
import { readFileSync } from 'node:fs';
import p from 'onnx-proto';
import { NON_DIFFERENTIABLE_OPS, SUPPORTED_GRADIENT_OPS } from './autodiff.ts';

const { onnx } = p;

/**
 * The op types of the model file's graph (and its subgraphs) that have no gradient rule and are
 * not among the ops the differentiator stops at (shape, integer and comparison ops), sorted, each
 * with its node count: `GroupNormalization ×61`; ops outside the default domain as `domain:Op`.
 * Empty when every op has a rule. Whether an op lies on the path from the prompt embedding to ε is
 * not checked here. (A rule's own limits — e.g. only nearest integer-factor Resize — show
 * only when a gradient graph is built.)
 */
export function opsWithoutGradient(modelPath: string): string[] {
  const model = onnx.ModelProto.decode(readFileSync(modelPath));
  const supported = new Set(SUPPORTED_GRADIENT_OPS);
  const counts = new Map<string, number>();
  const visit = (nodes: readonly p.onnx.INodeProto[]): void => {
    for (const n of nodes) {
      const domain = n.domain ?? '';
      const op = n.opType ?? '';
      const name = domain === '' || domain === 'ai.onnx' ? op : `${domain}:${op}`;
      if (name !== op || (!supported.has(op) && !NON_DIFFERENTIABLE_OPS.has(op))) counts.set(name, (counts.get(name) ?? 0) + 1);
      for (const a of n.attribute ?? []) {
        if (a.g) visit(a.g.node ?? []);
        for (const g of a.graphs ?? []) visit(g.node ?? []);
      }
    }
  };
  visit(model.graph?.node ?? []);
  return [...counts].sort(([a], [b]) => a.localeCompare(b)).map(([op, n]) => `${op} ×${n}`);
}
