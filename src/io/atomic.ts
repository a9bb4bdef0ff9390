/** Atomic file writes: write to a temporary sibling, then rename, so a killed run leaves no partial file. */
import { writeFile, rename, mkdir, rm } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';

let counter = 0;

/** Write `data` to `path` atomically (temporary file in the same folder + rename). */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${counter++}.tmp`);
  try {
    await writeFile(tmp, data);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/** Write JSON (2-space indent) atomically. */
export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
}
