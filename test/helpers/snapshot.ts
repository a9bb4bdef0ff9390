/**
 * File snapshots for figure specs and their SVG: `expectSnapshot(dir, name, text)` compares `text`
 * with `dir/name`; on a mismatch (or a missing file) it writes `dir/<stem>-changed.<ext>` beside it
 * and fails, so the change can be looked at and, if wanted, moved over the snapshot. With
 * `UPDATE_SNAPSHOTS=1` it writes the snapshot instead.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The `-changed` file name of a snapshot: `a.vl.json` → `a-changed.vl.json`. */
export function changedName(name: string): string {
  const dot = name.indexOf('.');
  return dot < 0 ? `${name}-changed` : `${name.slice(0, dot)}-changed${name.slice(dot)}`;
}

/** Compare `text` with the snapshot `dir/name` (see the module comment); throws on a mismatch. */
export function expectSnapshot(dir: string, name: string, text: string): void {
  const file = join(dir, name);
  const changed = join(dir, changedName(name));
  if (process.env['UPDATE_SNAPSHOTS'] === '1') {
    writeFileSync(file, text);
    rmSync(changed, { force: true });
    return;
  }
  const old = existsSync(file) ? readFileSync(file, 'utf8') : null;
  if (old === text) {
    rmSync(changed, { force: true });
    return;
  }
  writeFileSync(changed, text);
  throw new Error(
    old === null
      ? `snapshot ${file} is missing: wrote ${changed} (look at it; UPDATE_SNAPSHOTS=1 accepts it)`
      : `snapshot ${file} changed: wrote ${changed} (diff them; UPDATE_SNAPSHOTS=1 accepts it)`,
  );
}
