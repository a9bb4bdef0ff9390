/** `memscope serve --store DIR [--port N]`: the dashboard on 127.0.0.1 (never another interface). */
import { z } from 'zod';
import { serve, type ServerType } from '@hono/node-server';
import { parseFlags, validate, UsageError } from './args.ts';
import { commandHelp, flagDocs } from './help.ts';
import { SqliteStore, defaultStoreDir } from '../store/sqlite-store.ts';
import { dashboardApp } from '../serve/app.ts';
import { CopyLookup } from '../serve/copies.ts';
import { SHIPPED_MODEL } from '../study/model-source.ts';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const Schema = z.object({
  store: z.string().min(1).optional().register(flagDocs, { value: 'DIR', help: 'the results store (default $MEMSCOPE_STORE, else runs/store)' }),
  'explore-model': z.string().min(1).optional().register(flagDocs, { value: 'DIR', help: 'the model the explorer samples in the browser: a text-conditioned model folder (default models/graded, shipped)' }),
  port: z.coerce.number().int().min(0).max(65535).default(8700).register(flagDocs, { value: 'N', help: 'the port on 127.0.0.1 (0: any free port)' }),
});

/** The help of `memscope serve`. */
export const SERVE_HELP = commandHelp(Schema, {
  title: 'memscope serve — a dashboard over a results store, on 127.0.0.1',
  usage: ['memscope serve [--store DIR] [--port N]'],
  blocks: [
    { flags: ['store', 'port', 'explore-model'] },
    `Pages: the study runs with the live progress of running ones; a run's tables and interactive
figures (tooltips, zoom, legend selection); two runs side by side (/compare); a prompt across the
runs that hold it: each sample beside its nearest training image (d1/d2, pixel similarity; the
run's --model opened from the working folder), x_t / x̂0 strips where recorded, d_t curves with the
DTP switch and the sweep transition marked. The store is read, never written, and may be written by a
running study meanwhile. Listens on 127.0.0.1 only; all scripts are served from the package.`,
  ],
  examples: ['memscope serve --store runs/store', 'memscope serve --port 0   # any free port; the URL is printed'],
});

/** A running dashboard: its URL and how to stop it. */
export interface Dashboard {
  readonly url: string;
  close(): Promise<void>;
}

/** Start the dashboard over `storeDir` on 127.0.0.1:`port` (0 = any free port); the explorer samples `exploreModel` (default the shipped model). */
export async function startDashboard(storeDir: string, port: number, exploreModel: string = SHIPPED_MODEL): Promise<Dashboard> {
  const store = await SqliteStore.open(storeDir, { mustExist: true, readonly: true });
  const copies = new CopyLookup();
  const { app, dispose } = dashboardApp(store, { copies, explorerModel: exploreModel });
  const server: ServerType = await new Promise((resolve, reject) => {
    const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port }, () => resolve(s));
    s.once('error', reject);
  });
  const addr = server.address();
  const actual = typeof addr === 'object' && addr !== null ? addr.port : port;
  return {
    url: `http://127.0.0.1:${actual}/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          void Promise.all([copies.dispose(), dispose()]).finally(() => {
            store.close();
            resolve();
          });
        });
        (server as { closeAllConnections?: () => void }).closeAllConnections?.();
      }),
  };
}

/** Parse and run `memscope serve` (until SIGINT / SIGTERM). */
export async function serveCommand(argv: string[]): Promise<void> {
  const o = validate(Schema, parseFlags(argv, { store: { type: 'string' }, port: { type: 'string' }, 'explore-model': { type: 'string' } }));
  const explore = o['explore-model'] ?? SHIPPED_MODEL;
  if (o['explore-model'] !== undefined && !existsSync(join(explore, 'model.json'))) throw new UsageError(`--explore-model: no model.json in ${explore}; expected a model folder from memscope train`);
  const d = await startDashboard(o.store ?? defaultStoreDir(), o.port, explore);
  process.stdout.write(`memscope dashboard: ${d.url}  (Ctrl-C stops it)\n`);
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      void d.close().then(resolve);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}
