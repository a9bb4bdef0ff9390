/**
 * Symmetric eigendecomposition of small dense matrices through ml-matrix's
 * `EigenvalueDecomposition` (Householder tridiagonalisation + QL), as the Fréchet distance uses it.
 */
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';

/** Symmetric eigendecomposition of the symmetrised d×d `A` (ml-matrix). */
export function symEig(A: Float64Array, d: number): { values: number[]; vectors: Matrix } {
  const m = new Matrix(d, d);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) m.set(i, j, 0.5 * (A[i * d + j]! + A[j * d + i]!));
  const e = new EigenvalueDecomposition(m, { assumeSymmetric: true });
  return { values: e.realEigenvalues, vectors: e.eigenvectorMatrix };
}
