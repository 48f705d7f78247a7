import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import { ICLEVR_LABELS, CODRAW_CLASSES, renderScene, generateIclevrEpisodes } from '../../src/data/index.js';
import {
  ObjectDetector,
  classWeightsFrom,
  defaultDetectorConfig,
  evaluateDetector,
  loadDetector,
  locate,
  makeTargets,
  saveDetector,
  sceneSource,
  trainDetector,
  trainingSource,
  type DetectorConfig,
  type TrainSample,
} from '../../src/eval/index.js';

// The committed CoDraw clip-art sample (test/fixtures/codraw/README.md), so the tests need no shared/ datasets
// folder; it holds only some clip-art (e.g. p_5s.png, the tent), so render only classes that it has.
const CLIPART = fileURLToPath(new URL('../fixtures/codraw/clipart', import.meta.url));
const TENT = CODRAW_CLASSES.indexOf('tent'); // p_5s.png

const dirs: string[] = [];
async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'eval-det-'));
  dirs.push(d);
  return d;
}
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** A detector small enough for the stock cpu backend: 32x32 input, two stages. */
function tinyConfig(dataset: 'iclevr' | 'codraw' = 'iclevr'): DetectorConfig {
  return { ...defaultDetectorConfig(dataset, 3), inputSize: 32, channels: [8, 16], hidden: 64 };
}

describe('ObjectDetector', () => {
  it('outputs per-class presence logits and per-class coordinates in [0, 1]', () => {
    for (const [ds, k, c] of [['iclevr', 24, 2], ['codraw', 58, 3]] as const) {
      const det = new ObjectDetector(tinyConfig(ds));
      const x = tf.randomUniform([3, 32, 32, 3], -1, 1) as tf.Tensor4D;
      const { logits, coords } = det.forward(x);
      expect(logits.shape).toEqual([3, k]);
      expect(coords.shape).toEqual([3, k, c]);
      const cv = coords.dataSync();
      expect(Math.min(...cv)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...cv)).toBeLessThanOrEqual(1);
      tf.dispose([x, logits, coords]);
      det.dispose();
    }
  });

  it('detect() resizes any image size and reports labels, positions, depth levels and scores above the threshold', () => {
    const det = new ObjectDetector({ ...tinyConfig('codraw'), threshold: 0 }); // threshold 0: every class is reported
    const img = renderScene('codraw', [{ cls: TENT, x: 0.5, y: 0.6, z: 1, flip: false }], 48, { clipartDir: CLIPART });
    const [dets] = det.detect([img]);
    expect(dets).toHaveLength(58);
    for (const d of dets!) {
      expect(CODRAW_CLASSES).toContain(d.label);
      expect(d.label).toBe(CODRAW_CLASSES[d.classIndex]);
      expect([0, 1, 2]).toContain(d.z);
      expect(d.score).toBeGreaterThan(0);
      expect(d.score).toBeLessThan(1);
    }
    const strict = new ObjectDetector({ ...tinyConfig('iclevr'), threshold: 1.01 }); // nothing passes
    expect(strict.detect([img, img])).toEqual([[], []]);
    det.dispose();
    strict.dispose();
  });

  it('round-trips through a checkpoint folder (float16 weights)', async () => {
    const dir = await tmp();
    const det = new ObjectDetector({ ...tinyConfig('iclevr'), threshold: 0 });
    await saveDetector(det, dir);
    const cfg = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as DetectorConfig;
    expect(cfg.classes).toEqual([...ICLEVR_LABELS]);
    const back = await loadDetector(dir);
    const img = renderScene('iclevr', [{ shape: 'cube', color: 'red', x: 0.4, y: 0.5 }], 32);
    const [a] = det.detect([img]);
    const [b] = back.detect([img]);
    expect(b!.map((d) => d.label)).toEqual(a!.map((d) => d.label));
    b!.forEach((d, i) => {
      expect(d.score).toBeCloseTo(a![i]!.score, 2);
      expect(d.x).toBeCloseTo(a![i]!.x, 2);
    });
    await expect(loadDetector(join(dir, 'nope'))).rejects.toThrow(/no detector checkpoint/);
  });
});

describe('training targets and weights', () => {
  it('maps labels to presence and coordinates, depth normalised by its levels and clamped to [0, 1]', () => {
    const cfg = tinyConfig('codraw');
    const samples: TrainSample[] = [
      { image: { width: 1, height: 1, data: new Uint8Array(3) }, objects: [{ label: 'boy', x: 0.25, y: 0.5, z: 2 }, { label: 'sun', x: 1.3, y: -0.1, z: 0 }] },
    ];
    const { presence, coords } = makeTargets(cfg, samples);
    const boy = CODRAW_CLASSES.indexOf('boy');
    const sun = CODRAW_CLASSES.indexOf('sun');
    expect(presence.reduce((a, b) => a + b, 0)).toBe(2);
    expect(presence[boy]).toBe(1);
    expect([...coords.slice(boy * 3, boy * 3 + 3)]).toEqual([0.25, 0.5, 1]);
    expect([...coords.slice(sun * 3, sun * 3 + 3)]).toEqual([1, 0, 0]);
    expect(() => makeTargets(cfg, [{ image: samples[0]!.image, objects: [{ label: 'unicorn', x: 0, y: 0 }] }])).toThrow(/unknown class/);
  });

  it('weighs rare classes more, with mean weight 1', () => {
    const scenes = [...Array(9).fill([{ label: 'a', x: 0, y: 0 }]), [{ label: 'b', x: 0, y: 0 }]];
    const w = classWeightsFrom(['a', 'b', 'c'], scenes);
    expect(w[1]).toBeGreaterThan(w[0]!);
    expect(w[2]).toBeGreaterThanOrEqual(w[1]!); // never seen: the maximum weight
    expect(w.reduce((s, v) => s + v, 0) / 3).toBeCloseTo(1, 3);
  });
});

describe('trainDetector', () => {
  it('lowers its loss on rendered i-CLEVR scenes within a few dozen steps, and resumes from its folder', async () => {
    const cfg = { ...tinyConfig('iclevr'), hidden: 32 };
    const det = new ObjectDetector(cfg);
    // A fixed batch of 8 rendered scenes: 30 steps must fit it clearly better (gradients reach every head).
    const fixed = trainingSource('iclevr', sceneSource('iclevr', { seed: 99 }), { seed: 99, size: 32, lowResShare: 0 })(8);
    const lossOn = (samples: TrainSample[], m: ObjectDetector = det): number => {
      const { presence, coords } = makeTargets(cfg, samples);
      return tf.tidy(() => {
        const l = m.losses(
          m.prepare(samples.map((s) => s.image)),
          tf.tensor2d(presence, [samples.length, 24]),
          tf.tensor3d(coords, [samples.length, 24, 2]),
        );
        return l.total.dataSync()[0]!;
      });
    };
    const before = lossOn(fixed);
    const dir = await tmp();
    const r = await trainDetector(det, () => fixed, { steps: 30, batchSize: 8, lr: 3e-3, warmup: 1, dir });
    const after = lossOn(fixed);
    expect(r.step).toBe(30);
    expect(after).toBeLessThan(before * 0.5);
    expect(r.lateMeanLoss).toBeLessThan(r.earlyMeanLoss);
    expect(existsSync(join(dir, 'trainer.json'))).toBe(true);
    // A second run (learning rate 0) continues the step count and the weights from the saved state.
    const again = new ObjectDetector(cfg);
    const scenes = sceneSource('iclevr', { seed: 11 });
    const r2 = await trainDetector(again, trainingSource('iclevr', scenes, { seed: 12, size: 32 }), { steps: 2, batchSize: 4, lr: 0, dir });
    expect(r2.step).toBe(32);
    expect(r2.runSteps).toBe(2);
    expect(lossOn(fixed, again)).toBeCloseTo(after, 4);
    again.dispose();
    det.dispose();
  });
});

describe('evaluateDetector', () => {
  it('scores detections against the annotations of every turn', () => {
    const episodes = generateIclevrEpisodes({ count: 2, seed: 5, split: 'val' });
    // A detector that reports every class: recall 1, precision = objects / 24.
    const all = new ObjectDetector({ ...tinyConfig('iclevr'), threshold: 0 });
    const s = evaluateDetector(all, episodes);
    expect(s.images).toBe(10);
    expect(s.recall).toBe(1);
    const expected = episodes.flatMap((e) => e.turns.map((t) => t.objects.length / 24)).reduce((a, b) => a + b, 0) / 10;
    expect(s.precision).toBeCloseTo(expected, 6);
    // One that reports nothing: all zeros (zero_division = 0).
    const none = new ObjectDetector({ ...tinyConfig('iclevr'), threshold: 1.01 });
    expect(evaluateDetector(none, episodes)).toMatchObject({ precision: 0, recall: 0, f1: 0 });
    expect(locate(episodes[0]!.turns[0]!.objects)[0]!.label).toMatch(/^(gray|red|blue|green|brown|purple|cyan|yellow) (cube|sphere|cylinder)$/);
    all.dispose();
    none.dispose();
  });
});
