import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { decodePng, readEpisodes } from '../../src/data/index.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FIXTURE = join(ROOT, 'test/fixtures/codraw');
const cli = (...args: string[]) => run(process.execPath, ['--import', 'tsx', join(ROOT, 'src/data/cli.ts'), ...args], { cwd: ROOT });

describe('data CLI', () => {
  it('generates i-CLEVR and CoDraw episode files and renders them turn by turn', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'data-cli-'));
    try {
      const ic = join(dir, 'ic.jsonl');
      const g = await cli('generate', '--dataset', 'iclevr', '--count', '3', '--seed', '4', '--split', 'val', '--out', ic);
      expect(g.stdout).toMatch(/3 episodes, 15 turns/);
      expect((await readEpisodes(ic)).map((e) => e.id)).toEqual(['iclevr-val-4-0', 'iclevr-val-4-1', 'iclevr-val-4-2']);
      const cd = join(dir, 'cd.jsonl');
      await cli('generate', '--dataset', 'codraw', '--split', 'val', '--dir', FIXTURE, '--limit', '2', '--out', cd);
      expect(await readEpisodes(cd)).toHaveLength(2);
      await cli('render', '--episodes', ic, '--out', join(dir, 'r'), '--size', '32', '--limit', '1');
      const files = (await readdir(join(dir, 'r', 'iclevr-val-4-0'))).sort();
      expect(files).toEqual(['texts.tsv', 'turn-0-background.png', 'turn-1.png', 'turn-2.png', 'turn-3.png', 'turn-4.png', 'turn-5.png']);
      const { readFile } = await import('node:fs/promises');
      const img = await decodePng(await readFile(join(dir, 'r', 'iclevr-val-4-0', 'turn-5.png')));
      expect([img.width, img.height]).toEqual([32, 32]);
      await expect(cli('generate', '--dataset', 'iclevr', '--count', 'x', '--seed', '1', '--out', ic)).rejects.toMatchObject({
        stderr: expect.stringMatching(/--count must be an integer/),
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
