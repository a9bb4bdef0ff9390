// Run an ONNX model with onnxruntime-node (the runtime memscope uses) on inputs a conversion script
// wrote, and write its float outputs back: scripts/convert/evalmodel.py compares them with torch's.
// Usage: node check_onnx.mjs REQUEST.json  (REQUEST: { model, outDir, inputs: [{ name, dtype, dims, file }] })
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';

const req = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const ARRAYS = { float32: Float32Array, int64: BigInt64Array, int32: Int32Array };
const session = await ort.InferenceSession.create(req.model);
const feeds = {};
for (const i of req.inputs) {
  const T = ARRAYS[i.dtype];
  if (T === undefined) throw new Error(`check_onnx: input ${i.name} has dtype ${i.dtype}; expected one of ${Object.keys(ARRAYS).join(', ')}`);
  const bytes = Uint8Array.from(readFileSync(i.file)); // a fresh, aligned buffer
  feeds[i.name] = new ort.Tensor(i.dtype, new T(bytes.buffer), i.dims);
}
const out = await session.run(feeds);
const outputs = [];
for (const [name, t] of Object.entries(out)) {
  if (t.type !== 'float32') continue;
  const file = join(req.outDir, `out-${outputs.length}.bin`);
  writeFileSync(file, Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  outputs.push({ name, dims: t.dims.map(Number), file });
}
writeFileSync(join(req.outDir, 'outputs.json'), JSON.stringify({ runtime: `onnxruntime-node ${ort.env.versions?.node ?? ''}`.trim(), outputs }));
await session.release();
