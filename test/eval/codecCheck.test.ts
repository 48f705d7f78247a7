/**
 * The codec check on the shipped i-CLEVR model and detector: its decoder keeps the ground truth's objects through
 * repeated round trips, and a damaged decoder shows up as lost objects.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateIclevrEpisodes, writeEpisodes, type Episode } from '../../src/data/index.js';
import { AutoencoderCodec, createAutoencoder, loadCheckpoint, saveAutoencoder, type CddIcm } from '../../src/model/index.js';
import { checkCodec, loadDetector, type ObjectDetector } from '../../src/eval/index.js';

let model: CddIcm;
let detector: ObjectDetector;
let episodes: Episode[];

beforeAll(async () => {
  model = await loadCheckpoint('models/iclevr-default');
  detector = await loadDetector('models/detectors/iclevr');
  episodes = generateIclevrEpisodes({ count: 8, seed: 1, split: 'val' });
}, 60_000);

afterAll(() => {
  model?.dispose();
  detector?.dispose();
});

describe('checkCodec', () => {
  it("the shipped model's codec keeps the objects through two round trips", () => {
    const r = checkCodec({ codec: model.codec, imageSize: 64 }, detector, episodes, { rounds: 2, batchSize: 16 });
    expect(r.images).toBe(40);
    expect(r.rounds.map((x) => x.round)).toEqual([0, 1, 2]);
    expect(r.rounds[0]!.scores.f1).toBeGreaterThan(0.98); // the detector on the scenes themselves
    // Its first decoder lost 3.5% recall in one round trip and 18% in two (F1 0.82); the fine-tuned one, ~1%.
    expect(r.rounds[1]!.scores.recall).toBeGreaterThan(0.98);
    expect(r.rounds[2]!.scores.f1).toBeGreaterThan(0.95);
  }, 60_000);

  it('a damaged decoder loses objects, and the report names them', () => {
    const decoder = (model.codec as AutoencoderCodec).autoencoder.decoderParameters();
    const saved = new Map([...decoder].map(([n, v]) => [n, tf.clone(v)]));
    try {
      let k = 11;
      for (const v of decoder.values()) tf.tidy(() => v.assign(tf.add(v, tf.mul(tf.randomNormal(v.shape, 0, 1, 'float32', k++), tf.mul(0.5, tf.moments(v).variance.sqrt())))));
      const r = checkCodec({ codec: model.codec, imageSize: 64 }, detector, episodes.slice(0, 4), { rounds: 1 });
      expect(r.rounds[1]!.scores.recall).toBeLessThan(r.rounds[0]!.scores.recall - 0.1);
      const lost = r.rounds[1]!.lost.reduce((s, [, n]) => s + n, 0);
      expect(lost).toBeGreaterThan(2);
      expect(r.rounds[0]!.lost.reduce((s, [, n]) => s + n, 0)).toBeLessThan(lost);
    } finally {
      for (const [n, v] of decoder) v.assign(saved.get(n)!);
      tf.dispose([...saved.values()]);
    }
  }, 60_000);

  it('the CLI checks an autoencoder folder alone at the canvas size it is given, and asks for that size', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'codec-check-'));
    try {
      const ae = createAutoencoder('tiny');
      await saveAutoencoder(ae, join(dir, 'ae'));
      ae.dispose();
      await writeEpisodes(join(dir, 'val.jsonl'), episodes.slice(0, 2));
      const cli = (...extra: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'src/eval/cli.ts', '--codec-check', '--model', join(dir, 'ae'), '--episodes', join(dir, 'val.jsonl'), ...extra], { encoding: 'utf8' });
      const sizeless = cli();
      expect(sizeless.status).toBe(2);
      expect(sizeless.stderr).toContain('is an autoencoder: --image-size S');
      const r = cli('--image-size', '128', '--json');
      expect(r.status, r.stderr).toBe(0);
      const report = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { imageSize: number; images: number; rounds: { scores: { f1: number } }[] };
      expect(report.imageSize).toBe(128);
      expect(report.images).toBe(10);
      // The detector finds the 128x128 ground truth; an untrained autoencoder's round trip loses most of it.
      expect(report.rounds[0]!.scores.f1).toBeGreaterThan(0.95);
      expect(report.rounds[1]!.scores.f1).toBeLessThan(0.5);
      expect(stdoutLine(r.stdout)).toContain('at 128x128');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('the CLI refuses --rounds without --codec-check', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/eval/cli.ts', '--model', 'models/iclevr-default', '--episodes', 'nope.jsonl', '--rounds', '2'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--rounds applies to --codec-check');
  }, 30_000);
});

const stdoutLine = (out: string) => out.split('\n').find((l) => l.startsWith('codec of')) ?? '';
