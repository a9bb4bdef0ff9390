/**
 * The ops of a model file the differentiator has no rule for: counted per op type, shape / integer
 * ops (where the differentiator stops) left out, other domains named, subgraphs included.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import p from 'onnx-proto';
import { opsWithoutGradient } from './gradient-coverage.ts';
import { SUPPORTED_GRADIENT_OPS } from './autodiff.ts';

const { onnx } = p;
const dir = mkdtempSync(join(tmpdir(), 'memscope-grad-cov-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function modelFile(name: string, nodes: p.onnx.INodeProto[]): string {
  const bytes = onnx.ModelProto.encode({ irVersion: 8, opsetImport: [{ domain: '', version: 17 }], graph: { name: 'g', node: nodes } }).finish();
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

describe('opsWithoutGradient', () => {
  it('lists the ops without a rule with their counts; shape ops and supported ops are not listed', () => {
    expect(SUPPORTED_GRADIENT_OPS).not.toContain('GroupNormalization');
    const path = modelFile('a.onnx', [
      { opType: 'Conv' },
      { opType: 'GroupNormalization' },
      { opType: 'GroupNormalization' },
      { opType: 'Shape' },
      { opType: 'ConstantOfShape' },
      { opType: 'Einsum' },
      { opType: 'MultiHeadAttention', domain: 'com.microsoft' },
      { opType: 'If', attribute: [{ name: 'then_branch', type: 5, g: { node: [{ opType: 'Einsum' }, { opType: 'Add' }] } }] },
    ]);
    expect(opsWithoutGradient(path)).toEqual(['com.microsoft:MultiHeadAttention ×1', 'Einsum ×2', 'GroupNormalization ×2', 'If ×1']);
    expect(opsWithoutGradient(modelFile('b.onnx', [{ opType: 'MatMul' }, { opType: 'Softmax' }, { opType: 'Shape' }]))).toEqual([]);
  });
});
