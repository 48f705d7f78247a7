import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  EpisodeFormatError,
  generateIclevrEpisodes,
  readEpisodes,
  writeEpisodes,
  type CodrawEpisode,
  type Episode,
} from '../../src/data/index.js';

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'episodes-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const codraw: CodrawEpisode = {
  id: 'codraw-val-1',
  dataset: 'codraw',
  turns: [
    { text: '<teller> a sun <drawer> ok', objects: [{ cls: 3, x: 0.1, y: 0.2, z: 0, flip: false }] },
    {
      text: '<teller> a girl <drawer> done',
      objects: [
        { cls: 3, x: 0.1, y: 0.2, z: 0, flip: false },
        { cls: 19, x: 0.5, y: 0.7, z: 1, flip: true, subtype: 12 },
      ],
    },
  ],
};

describe('writeEpisodes / readEpisodes', () => {
  it('round-trips both datasets through a JSON Lines file at any path (and .gz)', async () => {
    const episodes: Episode[] = [...generateIclevrEpisodes({ count: 3, seed: 1 }), codraw];
    const path = join(dir, 'nested name with spaces.jsonl');
    await writeEpisodes(path, episodes);
    const text = await readFile(path, 'utf8');
    expect(text.trim().split('\n')).toHaveLength(4);
    expect(await readEpisodes(path)).toEqual(episodes);
    const gz = join(dir, 'e.jsonl.gz');
    await writeFile(gz, gzipSync(text));
    expect(await readEpisodes(gz)).toEqual(episodes);
  });

  it('reports every malformed line with file, line number and reason before returning anything', async () => {
    const good = JSON.stringify(generateIclevrEpisodes({ count: 1, seed: 2 })[0]);
    const lines = [
      good, // 1 ok
      '{"id": "x", "dataset": "iclevr", "turns": [', // 2 invalid JSON
      JSON.stringify({ id: 'a', dataset: 'iclevr', turns: [{ text: 'Add a red cube at the center.', objects: [{ shape: 'cone', color: 'red', x: 0.5, y: 0.5 }] }] }), // 3 bad shape
      '', // 4 blank: ignored
      JSON.stringify({ id: 'b', dataset: 'iclevr', turns: [{ text: 't', objects: [{ shape: 'cube', color: 'red', x: 1.5, y: 0.5 }] }] }), // 5 x out of range
      JSON.stringify({ id: 'c', dataset: 'mnist', turns: [] }), // 6 unknown dataset
      JSON.stringify({ ...codraw, id: 'd', turns: [{ text: 't', objects: [{ cls: 58, x: 0.1, y: 0.1, z: 3, flip: 0 }] }] }), // 7 cls, z, flip
      JSON.stringify({ id: 'e', dataset: 'codraw', turns: [] }), // 8 no turns
      good, // 9 duplicate id
      JSON.stringify({ id: 'f', dataset: 'iclevr', turns: [{ objects: [] }] }), // 10 missing text
    ];
    const path = join(dir, 'bad.jsonl');
    await writeFile(path, lines.join('\n') + '\n');
    const err = await readEpisodes(path).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(EpisodeFormatError);
    const problems = (err as EpisodeFormatError).problems;
    expect(problems.map((p) => p.line)).toEqual([2, 3, 5, 6, 7, 8, 9, 10]);
    for (const p of problems) expect(p.file).toBe(path);
    const byLine = new Map(problems.map((p) => [p.line, p.message]));
    expect(byLine.get(2)).toMatch(/invalid JSON/);
    expect(byLine.get(3)).toMatch(/turns\[0\]\.objects\[0\]\.shape/);
    expect(byLine.get(5)).toMatch(/turns\[0\]\.objects\[0\]\.x/);
    expect(byLine.get(6)).toMatch(/dataset/);
    expect(byLine.get(7)).toMatch(/cls/);
    expect(byLine.get(7)).toMatch(/\.z/);
    expect(byLine.get(7)).toMatch(/flip/);
    expect(byLine.get(8)).toMatch(/turns/);
    expect(byLine.get(9)).toMatch(/duplicate id .* line 1/);
    expect(byLine.get(10)).toMatch(/text/);
    // The message itself carries file:line: reason for every problem.
    for (const p of problems) expect((err as Error).message).toContain(`${path}:${p.line}: `);
  });

  it('reports a missing file as an ordinary error', async () => {
    await expect(readEpisodes(join(dir, 'nope.jsonl'))).rejects.toThrow(/ENOENT/);
  });
});
