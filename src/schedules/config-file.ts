/** Reading a diffusers scheduler config from disk (the parsing itself, file-free, is `config.ts`). */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseSchedulerConfig, type SchedulerConfig } from './config.ts';

/**
 * Read and validate a diffusers scheduler config from `path`: a `scheduler_config.json` file, a
 * `scheduler/` folder holding one, or a pipeline folder with `scheduler/scheduler_config.json`.
 */
export async function loadSchedulerConfig(path: string): Promise<SchedulerConfig> {
  let file = path;
  try {
    const st = await stat(path);
    if (st.isDirectory()) {
      const candidates = [join(path, 'scheduler_config.json'), join(path, 'scheduler', 'scheduler_config.json')];
      const found = await firstExisting(candidates);
      if (!found) throw new Error(`${path}: no scheduler_config.json in this folder or its scheduler/ sub-folder`);
      file = found;
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`${path}: scheduler config not found`);
    throw e;
  }
  const text = await readFile(file, 'utf8');
  return parseSchedulerConfig(text, file);
}

async function firstExisting(paths: readonly string[]): Promise<string | null> {
  for (const p of paths) {
    try {
      if ((await stat(p)).isFile()) return p;
    } catch {
      /* try the next */
    }
  }
  return null;
}
