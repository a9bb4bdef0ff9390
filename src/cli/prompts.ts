/**
 * `memscope prompts list|fetch NAME`: the public memorized-prompt sets of the papers (issue 20 §3;
 * catalogue and fetching in `data/prompt-sources.ts`). `list` prints each set's name, size, origin
 * (paper, repository, pinned commit), column mapping and whether it is in the cache; `fetch`
 * downloads one into memscope's cache, checking its SHA-256 against the published file's, so
 * that `--prompt-set NAME` works in every command. Nothing is downloaded otherwise.
 */
import { existsSync } from 'node:fs';
import { z } from 'zod';
import { parseFlags, validate, UsageError, didYouMean } from './args.ts';
import { commandHelp, flagDocs } from './help.ts';
import { PROMPT_SOURCES, UNPINNED_NOTE, cacheRoot, cachedPath, fetchPromptSource, promptSource } from '../data/prompt-sources.ts';

const Schema = z.object({
  cache: z.string().min(1).optional().register(flagDocs, { value: 'DIR', help: "memscope's cache folder (default $MEMSCOPE_CACHE, else $XDG_CACHE_HOME/memscope, else ~/.cache/memscope)" }),
  url: z
    .string()
    .regex(/^https?:\/\//, 'expected an http:// or https:// URL')
    .optional()
    .register(flagDocs, { value: 'URL', help: "fetch: download from this mirror instead of the pinned URL (the file's SHA-256 must still be the published one)" }),
  json: z.boolean().default(false).register(flagDocs, { help: 'list: as JSON' }),
});

const VERBS = ['list', 'fetch'] as const;

/** The help of `memscope prompts`. */
export const PROMPTS_HELP = commandHelp(Schema, {
  title: 'memscope prompts — the public memorized-prompt sets of the papers, fetched on request',
  usage: ['memscope prompts list [--json]', 'memscope prompts fetch NAME [--url MIRROR] [--cache DIR]'],
  blocks: [
    { flags: ['cache', 'url', 'json'] },
    `memscope ships none of these lists (no licence allows it). fetch downloads one on your machine
from the repository that published it, at a pinned commit, and refuses a file whose SHA-256 is not
the published one. Then --prompt-set NAME reads it (with its column mapping) in every command, and
--prompt-set A,B reads several as one list (e.g. wen-500,ren-nomem500 for detection). Their
training images are URLs memscope does not download: the lists' labels are the ground truth
(memscope detect runs on them; the copy studies need the images on disk).`,
  ],
  examples: ['memscope prompts list', 'memscope prompts fetch wen-500', 'memscope detect --model sd14/ --prompt-set wen-500,ren-nomem500 --out runs/detect'],
});

/** Parse and run `memscope prompts …`. */
export async function promptsCommand(argv: string[]): Promise<void> {
  const [verb, ...rest0] = argv;
  if (verb === undefined || !(VERBS as readonly string[]).includes(verb)) throw new UsageError(`expected list or fetch (got ${verb === undefined ? 'nothing' : `"${verb}"`})${verb === undefined ? '' : didYouMean(verb, [...VERBS])}`);
  const name = verb === 'fetch' && rest0[0] !== undefined && !rest0[0].startsWith('--') ? rest0[0] : undefined;
  const rest = name === undefined ? rest0 : rest0.slice(1);
  const o = validate(Schema, parseFlags(rest, { cache: { type: 'string' }, url: { type: 'string' }, json: { type: 'boolean' } }));
  const cache = o.cache ?? cacheRoot();
  if (verb === 'list') {
    if (o.url !== undefined) throw new UsageError('--url: only for memscope prompts fetch');
    const rows = PROMPT_SOURCES.map((s) => ({ ...s, cached: existsSync(cachedPath(s, cache)) }));
    if (o.json) {
      process.stdout.write(`${JSON.stringify({ cache, sets: rows, unpinned: UNPINNED_NOTE }, null, 2)}\n`);
      return;
    }
    const lines = rows.map((s) => `${s.name.padEnd(18)} ${String(s.prompts).padStart(4)} prompts  ${s.cached ? 'fetched' : 'not fetched'}\n  ${s.title}\n  ${s.origin}\n  ${s.mapping}`);
    process.stdout.write(`${lines.join('\n')}\n\ncache: ${cache}\n${UNPINNED_NOTE}\n`);
    return;
  }
  if (name === undefined) throw new UsageError(`fetch: expected a set name (${PROMPT_SOURCES.map((s) => s.name).join(', ')})`);
  const src = promptSource(name);
  if (src === undefined) throw new UsageError(`fetch: no public prompt set named "${name}"${didYouMean(name, PROMPT_SOURCES.map((s) => s.name))} (memscope prompts list shows them)`);
  if (o.json) throw new UsageError('--json: only for memscope prompts list');
  const r = await fetchPromptSource(src, { cache, ...(o.url === undefined ? {} : { url: o.url }) });
  process.stdout.write(`${src.name}: ${r.cached ? 'already in the cache' : 'downloaded'}, ${r.bytes} bytes, SHA-256 ${src.sha256} verified: ${r.path}\nuse it with --prompt-set ${src.name}\n`);
}
