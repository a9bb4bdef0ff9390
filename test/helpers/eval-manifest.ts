/**
 * A `NAME.manifest.json` of the conversion scripts (`scripts/convert/*_to_onnx.py`) for tests that
 * stand a small graph in for a converted SSCD export: the fields `src/metrics/manifest.ts` reads,
 * with a fake source hash and check record.
 */
export function sscdManifest(checkpoint: string, extra: Readonly<Record<string, unknown>> = {}): Record<string, unknown> {
  return {
    format: 'memscope-eval-model/1',
    kind: 'sscd',
    checkpoint,
    source: { file: `${checkpoint}.torchscript.pt`, sha256: 'a'.repeat(64) },
    preprocessing: 'see the protocol',
    check: { inputs: 4, maxAbsDiff: 1e-6, tolerance: 1e-4, runtime: 'onnxruntime-node' },
    exporter: { script: 'scripts/convert/sscd_to_onnx.py', torch: '1.13', opset: 17 },
    ...extra,
  };
}
