/**
 * Data CLI: generate i-CLEVR-style episodes, convert CoDraw dialogs to episodes, validate and render episode files.
 *
 *   npx tsx src/data/cli.ts generate --dataset iclevr --count 1000 --seed 1 [--split train|val|test] --out iclevr-train.jsonl
 *   npx tsx src/data/cli.ts generate --dataset codraw --split val [--dir ../shared/datasets/codraw] [--limit N] --out codraw-val.jsonl
 *   npx tsx src/data/cli.ts validate --episodes file.jsonl
 *   npx tsx src/data/cli.ts render --episodes file.jsonl --out dir [--size 64] [--limit N] [--clipart-dir DIR]
 *
 * The CoDraw folder defaults to $CODRAW_DIR, else ../shared/datasets/codraw next to the repository.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { defaultCodrawDir, loadCodraw } from './codraw.js';
import { EpisodeFormatError, readEpisodes, writeEpisodes, type Episode } from './episode.js';
import { generateIclevrEpisodes, type IclevrSplit } from './iclevr.js';
import { encodePng } from './image.js';
import { turnTriples } from './scene.js';

const USAGE = `usage:
  cli.ts generate --dataset iclevr --count N --seed S [--split train|val|test] --out FILE
  cli.ts generate --dataset codraw --split train|val [--dir CODRAW_DIR] [--limit N] --out FILE
  cli.ts validate --episodes FILE
  cli.ts render --episodes FILE --out DIR [--size 64] [--limit N] [--clipart-dir DIR]`;

class UsageError extends Error {}

function intArg(v: string | undefined, name: string, dflt?: number): number {
  if (v === undefined) {
    if (dflt === undefined) throw new UsageError(`--${name} is required`);
    return dflt;
  }
  const n = Number(v);
  if (!Number.isInteger(n)) throw new UsageError(`--${name} must be an integer, got "${v}"`);
  return n;
}

function need(v: string | undefined, name: string): string {
  if (!v) throw new UsageError(`--${name} is required`);
  return v;
}

function codrawDir(dir: string | undefined): string {
  return dir ?? process.env.CODRAW_DIR ?? defaultCodrawDir();
}

function summary(episodes: readonly Episode[]): string {
  const turns = episodes.reduce((s, e) => s + e.turns.length, 0);
  const objects = episodes.reduce((s, e) => s + (e.turns.at(-1)?.objects.length ?? 0), 0);
  const n = Math.max(1, episodes.length);
  return `${episodes.length} episodes, ${turns} turns (${(turns / n).toFixed(2)} per episode), ${(objects / n).toFixed(2)} objects in final scenes`;
}

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      dataset: { type: 'string' },
      count: { type: 'string' },
      seed: { type: 'string' },
      split: { type: 'string' },
      dir: { type: 'string' },
      limit: { type: 'string' },
      out: { type: 'string' },
      episodes: { type: 'string' },
      size: { type: 'string' },
      'clipart-dir': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const cmd = positionals[0];
  if (values.help || !cmd) {
    console.log(USAGE);
    return;
  }
  if (cmd === 'generate') {
    const out = need(values.out, 'out');
    let episodes: Episode[];
    if (values.dataset === 'iclevr') {
      const split = (values.split ?? 'train') as IclevrSplit;
      if (!['train', 'val', 'test'].includes(split)) throw new UsageError(`--split must be train, val or test, got "${split}"`);
      episodes = generateIclevrEpisodes({ count: intArg(values.count, 'count'), seed: intArg(values.seed, 'seed'), split });
    } else if (values.dataset === 'codraw') {
      episodes = loadCodraw({ dir: codrawDir(values.dir), split: need(values.split, 'split') });
      if (values.limit !== undefined) episodes = episodes.slice(0, intArg(values.limit, 'limit'));
    } else throw new UsageError(`--dataset must be iclevr or codraw, got "${values.dataset ?? ''}"`);
    await writeEpisodes(out, episodes);
    console.log(`wrote ${out}: ${summary(episodes)}`);
    return;
  }
  if (cmd === 'validate') {
    const file = need(values.episodes, 'episodes');
    console.log(`${file}: ok, ${summary(await readEpisodes(file))}`);
    return;
  }
  if (cmd === 'render') {
    const file = need(values.episodes, 'episodes');
    const outDir = need(values.out, 'out');
    const size = intArg(values.size, 'size', 64);
    let episodes = await readEpisodes(file);
    if (values.limit !== undefined) episodes = episodes.slice(0, intArg(values.limit, 'limit'));
    const opts = { clipartDir: values['clipart-dir'] ?? join(codrawDir(values.dir), 'clipart') };
    let images = 0;
    for (const ep of episodes) {
      const dir = join(outDir, ep.id.replace(/[^\w.-]+/g, '_'));
      await mkdir(dir, { recursive: true });
      const triples = turnTriples(ep, size, opts);
      await writeFile(join(dir, 'turn-0-background.png'), encodePng(triples[0]!.reference));
      const lines: string[] = [];
      for (const t of triples) {
        await writeFile(join(dir, `turn-${t.turn + 1}.png`), encodePng(t.target));
        lines.push(`${t.turn + 1}\t${t.text}`);
        images++;
      }
      await writeFile(join(dir, 'texts.tsv'), lines.join('\n') + '\n');
    }
    console.log(`rendered ${images} turn images (+ ${episodes.length} backgrounds) of ${episodes.length} episodes at ${size}x${size} into ${outDir}`);
    return;
  }
  throw new UsageError(`unknown command "${cmd}"`);
}

main(process.argv.slice(2)).catch((e: unknown) => {
  if (e instanceof UsageError) console.error(`${e.message}\n${USAGE}`);
  else if (e instanceof EpisodeFormatError) console.error(e.message);
  else console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
