/**
 * The codec check on the shipped i-CLEVR model and detector: its decoder keeps the ground truth's objects through
 * repeated round trips, and a damaged decoder shows up as lost objects.
 */
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateIclevrEpisodes, type Episode } from '../../src/data/index.js';
import { AutoencoderCodec, loadCheckpoint, type CddIcm } from '../../src/model/index.js';
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
    const r = checkCodec(model, detector, episodes, { rounds: 2, batchSize: 16 });
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
      const r = checkCodec(model, detector, episodes.slice(0, 4), { rounds: 1 });
      expect(r.rounds[1]!.scores.recall).toBeLessThan(r.rounds[0]!.scores.recall - 0.1);
      const lost = r.rounds[1]!.lost.reduce((s, [, n]) => s + n, 0);
      expect(lost).toBeGreaterThan(2);
      expect(r.rounds[0]!.lost.reduce((s, [, n]) => s + n, 0)).toBeLessThan(lost);
    } finally {
      for (const [n, v] of decoder) v.assign(saved.get(n)!);
      tf.dispose([...saved.values()]);
    }
  }, 60_000);

  it('the CLI refuses --rounds without --codec-check', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/eval/cli.ts', '--model', 'models/iclevr-default', '--episodes', 'nope.jsonl', '--rounds', '2'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--rounds applies to --codec-check');
  }, 30_000);
});
