/**
 * The evaluation pipeline end to end on the tiny model preset: in process (iterative vs teacher-forced, report,
 * contact sheet) and through the real CLIs (JSON last line, output files, exit code 2 on bad input).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodePng, generateIclevrEpisodes, writeEpisodes, type Episode } from '../../src/data/index.js';
import { WordTokenizer, createModel, saveCheckpoint, type CddIcm } from '../../src/model/index.js';
import { ObjectDetector, contactSheet, defaultDetectorConfig, evaluateModel, saveDetector } from '../../src/eval/index.js';

let dir = '';
let model: CddIcm;
let detector: ObjectDetector;
let episodes: Episode[];
const modelDir = () => join(dir, 'model');
const detDir = () => join(dir, 'detector');
const epFile = () => join(dir, 'episodes.jsonl');

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'eval-pipe-'));
  episodes = generateIclevrEpisodes({ count: 2, seed: 3, split: 'val' });
  await writeEpisodes(epFile(), episodes);
  const texts = episodes.flatMap((e) => e.turns.map((t) => t.text));
  model = createModel('tiny', { tokenizer: WordTokenizer.fromCorpus(texts, { contextLength: 24 }) });
  await saveCheckpoint(model, modelDir());
  // An untrained detector with threshold 0 reports every class, so the scores are fully determined.
  detector = new ObjectDetector({ ...defaultDetectorConfig('iclevr', 2), inputSize: 32, channels: [8, 16], hidden: 16, threshold: 0 });
  await saveDetector(detector, detDir());
});

afterAll(async () => {
  model?.dispose();
  detector?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('evaluateModel', () => {
  it('generates every turn, feeding outputs (or, teacher-forced, ground truth) forward, and scores them', async () => {
    const one = episodes.slice(0, 1);
    const base = { steps: 2, guidanceScale: 3, icmGuidanceScale: 2, seed: 7 };
    // Fresh models zero-initialise their output layers, which makes the output ignore the reference; give those
    // layers small random weights so that what the reference is shows in the images.
    for (const v of model.parameters()) {
      if (tf.tidy(() => tf.max(tf.abs(v)).dataSync()[0]) === 0) v.assign(tf.tidy(() => tf.randomNormal(v.shape, 0, 0.05, 'float32', 5)));
    }
    let progressCalls = 0;
    const it1 = await evaluateModel(model, detector, one, { ...base, onProgress: () => progressCalls++ });
    const tf1 = await evaluateModel(model, detector, one, { ...base, teacherForced: true });
    expect(progressCalls).toBe(5);
    expect(it1).toMatchObject({ episodes: 1, turns: 5 });
    expect(it1.perTurn).toHaveLength(5);
    const r = it1.results[0]!;
    expect(r.turns).toHaveLength(5);
    expect(r.turns[0]!.generated!.width).toBe(model.config.imageSize);
    expect(r.turns[0]!.groundTruth!.width).toBe(model.config.imageSize);
    // Every class is detected in both images: precision = recall = F1 = 1, RSIM = 1 x graph agreement.
    expect(it1.f1).toBe(1);
    expect(it1.rsim).toBeGreaterThan(0);
    expect(it1.rsim).toBeLessThanOrEqual(1);
    // The detector reference compares its detections with the annotations: recall 1, precision = objects / 24.
    expect(it1.detectorReference.recall).toBe(1);
    expect(it1.detectorReference.precision).toBeCloseTo((1 + 2 + 3 + 4 + 5) / 5 / 24, 6);
    // Turns 2-5 ask for a spatial relation; every class is detected, so all four are judged.
    expect(it1.relations).toMatchObject({ asked: 4, judged: 4 });
    expect(it1.relations!.accuracy).toBeGreaterThanOrEqual(0);
    expect(it1.relations!.accuracy).toBeLessThanOrEqual(1);
    // Same seeds: turn 1 (same blank reference) is identical; turn 2 differs because its reference differs.
    const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;
    expect(same(it1.results[0]!.turns[0]!.generated!.data, tf1.results[0]!.turns[0]!.generated!.data)).toBe(true);
    expect(same(it1.results[0]!.turns[1]!.generated!.data, tf1.results[0]!.turns[1]!.generated!.data)).toBe(false);
    // Iterative turns hand the previous result's codec-space sample on as the reference latent; re-encoding the
    // 8-bit image instead (--reencode-reference) gives the same first turn and different later ones.
    const re1 = await evaluateModel(model, detector, one, { ...base, reencodeReference: true });
    const gens = (x: typeof it1) => x.results[0]!.turns.map((t) => t.generated!.data);
    expect(same(gens(it1)[0]!, gens(re1)[0]!)).toBe(true);
    expect(gens(it1).slice(1).some((g, i) => !same(g, gens(re1)[i + 1]!))).toBe(true);
    // Best-of-3 turns: each generated image is one of the turn's three candidates, and some are not the first.
    const bo3 = await evaluateModel(model, detector, one, { ...base, candidates: 3 });
    expect(gens(bo3).some((g, i) => !same(g, gens(it1)[i]!))).toBe(true);

    const png = contactSheet(it1.results);
    const img = await decodePng(png);
    expect(img.height).toBeGreaterThan(2 * 64);
    expect(img.width).toBeGreaterThan(5 * 64);
  });

  it('refuses a detector of another dataset', async () => {
    const codraw = new ObjectDetector({ ...defaultDetectorConfig('codraw'), inputSize: 32, channels: [8, 16], hidden: 16 });
    await expect(evaluateModel(model, codraw, episodes, { steps: 1, guidanceScale: 1, icmGuidanceScale: 0 })).rejects.toThrow(/codraw detector/);
    codraw.dispose();
  });
});

/** Run a CLI of the eval part in a child process (the way npm run does, through tsx). */
function cli(script: string, args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join('src', 'eval', script), ...args], {
    cwd: process.cwd(),
    encoding: 'utf8',
    env: { ...process.env, LOG_LEVEL: 'silent' },
    timeout: 240_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('CLIs', () => {
  it('npm run eval: --limit 1 writes a report and a contact sheet and ends with one JSON line', async () => {
    const out = join(dir, 'out');
    const r = cli('cli.ts', ['--model', modelDir(), '--episodes', epFile(), '--limit', '1', '--steps', '2', '--detector', detDir(), '--out', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const last = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
    for (const k of ['precision', 'recall', 'f1', 'rsim', 'episodes', 'turns', 'detector_reference_f1', 'relation_accuracy']) expect(last).toHaveProperty(k);
    expect(last).toMatchObject({ relation_turns: 4 });
    expect(last).toMatchObject({ episodes: 1, turns: 5, f1: 1 });
    expect(r.stdout).toMatch(/turn\s+count\s+precision/);
    expect(r.stderr).toMatch(/eta/);
    expect(existsSync(join(out, 'contact-sheet.png'))).toBe(true);
    const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8')) as { per_episode: unknown[] };
    expect(report.per_episode).toHaveLength(1);
  });

  it('a checkpoint exported with --default-* settings is evaluated at them unless the command line sets its own', async () => {
    const rec = join(dir, 'model-recommended');
    const exp = spawnSync(process.execPath, ['--import', 'tsx', join('src', 'train', 'cli.ts'), '--export', modelDir(), '--out', rec, '--dtype', 'float32',
      '--default-steps', '2', '--default-guidance', '4.5', '--default-icm-guidance', '0', '--default-solver', 'dpm++2m',
      '--default-icm-before-selection', 'no'], { encoding: 'utf8', env: { ...process.env, LOG_LEVEL: 'silent' } });
    expect(exp.status, exp.stderr).toBe(0);
    const cfg = JSON.parse(await readFile(join(rec, 'config.json'), 'utf8')) as { config: { sampling?: unknown } };
    expect(cfg.config.sampling).toEqual({ steps: 2, guidanceScale: 4.5, icmGuidanceScale: 0, solver: 'dpm++2m', icmBeforeSelection: false });
    const base = ['--model', rec, '--episodes', epFile(), '--limit', '1', '--detector', detDir(), '--out', join(dir, 'out-rec'), '--json'];
    const lastLine = (r: { stdout: string }) => JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
    const byModel = cli('cli.ts', base);
    expect(byModel.code, byModel.stderr).toBe(0);
    expect(lastLine(byModel)).toMatchObject({ steps: 2, guidance: 4.5, icm_guidance: 0, solver: 'dpm++2m', icm_before_selection: false });
    const asked = cli('cli.ts', [...base, '--guidance', '1', '--solver', 'ddim', '--icm-before-selection', 'yes']);
    expect(lastLine(asked)).toMatchObject({ steps: 2, guidance: 1, icm_guidance: 0, solver: 'ddim', icm_before_selection: true });
    const badFlag = cli('cli.ts', [...base, '--icm-before-selection', 'maybe']);
    expect(badFlag.code).toBe(2);
    expect(badFlag.stderr).toContain('--icm-before-selection must be yes or no');
    const unknown = cli('cli.ts', [...base, '--solver', 'euler']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('--solver must be one of ddim, dpm++2m');
    const refused = spawnSync(process.execPath, ['--import', 'tsx', join('src', 'train', 'cli.ts'), '--export', modelDir(), '--out', join(dir, 'never'), '--default-guidance=-1'], { encoding: 'utf8', env: { ...process.env, LOG_LEVEL: 'silent' } });
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain('sampling.guidanceScale must be a number >= 0');
    expect(refused.stderr).not.toContain('--resume'); // an export has no training checkpoint to point at
    expect(existsSync(join(dir, 'never', 'config.json'))).toBe(false);
  });

  it('bad arguments and malformed files give one clear line and exit code 2', async () => {
    const missing = cli('cli.ts', ['--episodes', epFile()]);
    expect(missing.code).toBe(2);
    expect(missing.stderr.trim()).toBe('error: --model is required');
    const bad = join(dir, 'bad.jsonl');
    await writeFile(bad, (await readFile(epFile(), 'utf8')) + '{"id": "x", "dataset": "iclevr", "turns": []}\n');
    const malformed = cli('cli.ts', ['--model', modelDir(), '--episodes', bad, '--detector', detDir()]);
    expect(malformed.code).toBe(2);
    expect(malformed.stderr.trim().split('\n')).toHaveLength(1);
    expect(malformed.stderr).toContain(`${bad}:3:`);
    const zero = cli('cli.ts', ['--model', modelDir(), '--episodes', epFile(), '--candidates', '0']);
    expect(zero.code).toBe(2);
    expect(zero.stderr.trim().split('\n')).toHaveLength(1);
    expect(zero.stderr).toMatch(/--candidates/);
    const det = cli('detectorCli.ts', ['--dataset', 'clevr', '--episodes', epFile()]);
    expect(det.code).toBe(2);
    expect(det.stderr).toMatch(/--dataset must be iclevr or codraw/);
    const noFile = cli('detectorCli.ts', ['--dataset', 'iclevr', '--episodes', join(dir, 'nope.jsonl'), '--detector', detDir()]);
    expect(noFile.code).toBe(2);
    expect(noFile.stderr).toMatch(/episodes file not found/);
  });

  it('npm run eval:detector reports the detector on ground-truth renderings with a JSON last line', () => {
    const r = cli('detectorCli.ts', ['--dataset', 'iclevr', '--episodes', epFile(), '--detector', detDir(), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const last = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { precision: number; recall: number; f1: number; images: number };
    expect(last.images).toBe(10);
    expect(last.recall).toBe(1);
    expect(last.precision).toBeCloseTo(3 / 24, 6); // 1..5 objects per turn, every class reported
  });
});
