/**
 * Results directories written all-or-nothing: a command writes into a temporary sibling folder
 * and the folder replaces `out` only when the command finished, so a failing or killed run
 * never leaves a partial result behind (and never destroys the previous complete one first).
 */
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, basename, join, resolve } from 'node:path';

/** Run `write(tmpDir)`; on success move tmpDir to `out` (replacing a previous result), on failure delete it. */
export async function withResultsDir<T>(out: string, write: (dir: string) => Promise<T>): Promise<T> {
  const target = resolve(out);
  await mkdir(dirname(target), { recursive: true });
  const tmp = join(dirname(target), `.${basename(target)}.partial-${process.pid}-${Date.now()}`);
  await mkdir(tmp, { recursive: true });
  let result: T;
  try {
    result = await write(tmp);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  const exists = await stat(target).then(() => true, () => false);
  const old = `${tmp}.old`;
  if (exists) await rename(target, old);
  await rename(tmp, target);
  if (exists) await rm(old, { recursive: true, force: true });
  return result;
}
