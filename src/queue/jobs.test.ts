/**
 * The wire form of unit outputs: base64 inside the job result, or files named by their SHA-256 in
 * a shared blob folder (`--blobs`). Both give back the same bytes; a blob file that is missing,
 * truncated or altered is an error naming the blob and the folder, never a silently wrong unit.
 */
import { describe, it, expect, afterAll } from 'vitest';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeOutput, encodeOutputs, jobIdOf, removeStudyBlobs, studyBlobDir } from './jobs.ts';

const root = mkdtempSync(join(tmpdir(), 'memscope-jobs-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const bytes = (n: number, k: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 31 + k) & 255);
const outputs = [
  { result: { a: 1 }, blobs: [{ name: 'x0.npy', bytes: bytes(1000, 1) }, { name: 'noise.npy', bytes: bytes(1000, 2) }] },
  { result: { a: 2 }, blobs: [{ name: 'x0.npy', bytes: bytes(1000, 1) }] }, // the same bytes as the first unit's x0
];

describe('job wire format', () => {
  it('base64 in the result: the same bytes back', async () => {
    const wire = await encodeOutputs(outputs);
    expect(JSON.stringify(wire)).toContain(Buffer.from(bytes(1000, 2)).toString('base64'));
    const back = await Promise.all(wire.map((w) => decodeOutput(w)));
    expect(back.map((b) => b.result)).toEqual([{ a: 1 }, { a: 2 }]);
    expect(back[0]!.blobs!.map((b) => Buffer.from(b.bytes).equals(Buffer.from(bytes(1000, b.name === 'x0.npy' ? 1 : 2))))).toEqual([true, true]);
  });

  it('a shared blob folder: files named by SHA-256, no tensor bytes in the result, the same bytes back', async () => {
    const dir = studyBlobDir(join(root, 'shared'), 'abc123abc123');
    const wire = await encodeOutputs(outputs, dir);
    const text = JSON.stringify(wire);
    expect(text.length).toBeLessThan(600);
    const h1 = createHash('sha256').update(bytes(1000, 1)).digest('hex');
    expect(wire[0]!.blobs[0]).toEqual({ name: 'x0.npy', sha256: h1, size: 1000 });
    // the shared x0 is one file; no temporary file is left
    expect(readdirSync(dir).sort()).toEqual([h1, createHash('sha256').update(bytes(1000, 2)).digest('hex')].sort());
    expect(Buffer.from(readFileSync(join(dir, h1))).equals(Buffer.from(bytes(1000, 1)))).toBe(true);
    const back = await decodeOutput(wire[1]!, dir);
    expect(Buffer.from(back.blobs![0]!.bytes).equals(Buffer.from(bytes(1000, 1)))).toBe(true);
    await removeStudyBlobs(join(root, 'shared'), 'abc123abc123');
    expect(readdirSync(join(root, 'shared'))).toEqual([]);
  });

  it('a missing, altered or unnamed blob file is an error naming the blob', async () => {
    const dir = join(root, 'b');
    const wire = await encodeOutputs([outputs[0]!], dir);
    const h = (wire[0]!.blobs[1] as { sha256: string }).sha256;
    writeFileSync(join(dir, h), bytes(1000, 3));
    await expect(decodeOutput(wire[0]!, dir)).rejects.toThrow(/blob noise\.npy: .* holds 1000 bytes with SHA-256 [0-9a-f]{12}, not the 1000 bytes/);
    rmSync(join(dir, h));
    await expect(decodeOutput(wire[0]!, dir)).rejects.toThrow(/blob noise\.npy \([0-9a-f]{12}\) is not in the shared blob folder .*--blobs must name the same folder on every host/);
    await expect(decodeOutput(wire[0]!)).rejects.toThrow(/this run names none \(--blobs\)/);
  });

  it('job ids: a unit key for one unit, a hash of the keys for a batch, the same for the same batch', () => {
    expect(jobIdOf([{ key: 'k1' }])).toBe('k1');
    const b = jobIdOf([{ key: 'k1' }, { key: 'k2' }]);
    expect(b).toBe(`batch-${createHash('sha256').update('k1\nk2').digest('hex')}`);
    expect(jobIdOf([{ key: 'k2' }, { key: 'k1' }])).not.toBe(b);
  });
});
