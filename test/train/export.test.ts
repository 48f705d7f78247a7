import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensors } from '../../src/model/index.js';
import { DEFAULT_OPTIONS, trainModel } from '../../src/train/index.js';

function exportCli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/train/cli.ts', '--export', ...args], { encoding: 'utf8', env: { ...process.env, LOG_LEVEL: 'silent' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('train --export --weights', () => {
  let root = '';
  const run = (...p: string[]): string => join(root, ...p);

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'train-export-'));
    const base = { ...DEFAULT_OPTIONS, dataset: 'iclevr' as const, config: 'tiny', stage: 2 as const, steps: 3, batch: 4, lr: 3e-3, valEvery: 100, valBatches: 1, trainEpisodes: 6, valEpisodes: 2, imageSize: 16, checkpointMinutes: 1000, progress: false };
    // Stopped mid-stage, so last/ is a resumable checkpoint: the average in its model files, raw.safetensors beside.
    let polls = 0;
    await trainModel({ ...base, out: run('averaged'), emaDecay: 0.9 }, { shouldStop: () => ++polls > 2 });
    await trainModel({ ...base, out: run('plain'), emaDecay: 0 });
  }, 120_000);
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('exports the average by default and the optimised weights with --weights raw', async () => {
    const avg = exportCli([run('averaged', 'last'), '--out', run('avg'), '--dtype', 'float32']);
    expect(avg.status, avg.stderr).toBe(0);
    const raw = exportCli([run('averaged', 'last'), '--out', run('raw'), '--dtype', 'float32', '--weights', 'raw']);
    expect(raw.status, raw.stderr).toBe(0);
    expect(JSON.parse(raw.stdout.trim().split('\n').pop()!)).toMatchObject({ weights: 'raw' });

    const source = await readSafetensors(run('averaged', 'last', 'model.safetensors'));
    const optimised = await readSafetensors(run('averaged', 'last', 'raw.safetensors'));
    const exportedAvg = await readSafetensors(run('avg', 'model.safetensors'));
    const exportedRaw = await readSafetensors(run('raw', 'model.safetensors'));
    expect(optimised.size).toBeGreaterThan(0);
    let differs = 0;
    for (const [name, t] of source) {
      expect(maxAbsDiff(exportedAvg.get(name)!.data as Float32Array, t.data as Float32Array)).toBe(0);
      const r = optimised.get(name);
      // Trained weights come from raw.safetensors; the rest (frozen in the stage) are the model files' own.
      const want = (r ?? t).data as Float32Array;
      expect(maxAbsDiff(exportedRaw.get(name)!.data as Float32Array, want)).toBe(0);
      if (r && maxAbsDiff(r.data as Float32Array, t.data as Float32Array) > 1e-6) differs++;
    }
    expect(differs).toBeGreaterThan(0); // the average really differs from the optimised weights after 3 steps
  }, 120_000);

  it('refuses --weights raw for a run without a weight average, and an unknown --weights, writing nothing', () => {
    const none = exportCli([run('plain', 'last'), '--out', run('never'), '--weights', 'raw']);
    expect(none.status).toBe(1);
    expect(none.stderr).toContain('has no raw.safetensors');
    const bad = exportCli([run('averaged', 'last'), '--out', run('never'), '--weights', 'ema']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('--weights must be average or raw');
    expect(existsSync(run('never'))).toBe(false);
  }, 60_000);
});
