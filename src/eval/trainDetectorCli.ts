/**
 * Train (or resume training) the object detector of a dataset on rendered scenes.
 *
 *   npm run train:detector -- --dataset iclevr|codraw --out models/detectors/<ds> [--steps N] [--minutes M]
 *        [--batch 32] [--lr 0.001] [--seed 1] [--noise 0.04] [--checkpoint-every 200] [--val FILE] [--val-limit N]
 *        [--codraw-dir DIR] [--backend auto|native-cpu|cpu|tensorflow]
 *
 * If --out already holds a checkpoint with training state, training continues from it (same architecture and
 * class weights; the scene stream is re-seeded so a resumed run sees new scenes).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '../data/index.js';
import { ObjectDetector, loadDetector } from './detector.js';
import { classWeightsFrom, defaultDetectorConfig, locate, sceneSource, trainingSource } from './datasets.js';
import { evaluateDetector } from './detectorEval.js';
import { trainDetector } from './train.js';
import { CliError, datasetArg, fmtMs, initBackendFromArgs, loadEpisodesArg, num, optNum, parse, runCli, str } from './cliUtil.js';

const USAGE = `usage: npm run train:detector -- --dataset iclevr|codraw --out DIR [--steps N] [--minutes M]
  [--batch 32] [--lr 0.001] [--seed 1] [--noise 0.04] [--checkpoint-every 200] [--val EPISODES] [--val-limit N]
  [--codraw-dir DIR] [--backend NAME]`;

async function main(): Promise<void> {
  const a = parse(
    process.argv.slice(2),
    {
      dataset: { type: 'string' },
      out: { type: 'string' },
      steps: { type: 'string' },
      minutes: { type: 'string' },
      batch: { type: 'string' },
      lr: { type: 'string' },
      seed: { type: 'string' },
      noise: { type: 'string' },
      'checkpoint-every': { type: 'string' },
      val: { type: 'string' },
      'val-limit': { type: 'string' },
      'codraw-dir': { type: 'string' },
      backend: { type: 'string' },
    },
    USAGE,
  );
  const dataset = datasetArg(a.dataset);
  const out = str(a.out, 'out');
  const steps = optNum(a.steps, 'steps', { int: true, min: 1 });
  const minutes = optNum(a.minutes, 'minutes', { min: 0.01 });
  if (steps === undefined && minutes === undefined) throw new CliError('give --steps N and/or --minutes M');
  const batchSize = num(a.batch, 'batch', 32, { int: true, min: 1 });
  const lr = num(a.lr, 'lr', 1e-3, { min: 0 });
  const seed = num(a.seed, 'seed', 1, { int: true });
  const noise = num(a.noise, 'noise', 0.04, { min: 0 });
  const every = num(a['checkpoint-every'], 'checkpoint-every', 200, { int: true, min: 1 });
  const codrawDir = typeof a['codraw-dir'] === 'string' ? a['codraw-dir'] : undefined;
  if (codrawDir && !existsSync(codrawDir)) throw new CliError(`CoDraw folder not found: ${codrawDir}`);
  const valEpisodes = typeof a.val === 'string' ? await loadEpisodesArg(a.val) : null;
  const valLimit = optNum(a['val-limit'], 'val-limit', { int: true, min: 1 });

  const backend = await initBackendFromArgs(a.backend);
  process.stderr.write(`backend ${backend.name} (${backend.device}, ${backend.threads} threads)\n`);

  let det: ObjectDetector;
  let startStep = 0;
  if (existsSync(join(out, 'config.json'))) {
    det = await loadDetector(out);
    if (det.config.dataset !== dataset) throw new CliError(`${out} holds a ${det.config.dataset} detector, not ${dataset}`);
    startStep = existsSync(join(out, 'trainer.json')) ? 1 : 0;
    process.stderr.write(`resuming from ${out}\n`);
  } else {
    const cfg = defaultDetectorConfig(dataset, seed);
    // Class weights from the frequencies of 2000 training scenes.
    const scenes = sceneSource(dataset, { seed: seed + 7919, ...(codrawDir ? { codrawDir } : {}) });
    const rng = new Rng(seed);
    const sample = Array.from({ length: 2000 }, () => locate(scenes.next(rng)));
    cfg.classWeights = classWeightsFrom(cfg.classes, sample);
    det = new ObjectDetector(cfg);
    process.stderr.write(`new ${dataset} detector: ${det.parameterCount()} parameters, input ${cfg.inputSize}px\n`);
  }
  // A resumed run draws a different scene stream (seeded by wall clock) so it does not replay the first run's.
  const streamSeed = startStep ? (seed * 1_000_003 + Date.now()) % 2147483647 : seed;
  const scenes = sceneSource(dataset, { seed: streamSeed, ...(codrawDir ? { codrawDir } : {}) });
  const source = trainingSource(dataset, scenes, { seed: streamSeed, size: det.config.inputSize, ...(codrawDir ? { codrawDir } : {}) });

  const ac = new AbortController();
  process.once('SIGINT', () => {
    process.stderr.write('\nstopping after this step (Ctrl-C again to abort)...\n');
    ac.abort();
  });
  let lastPrint = 0;
  let ema: number | null = null;
  const result = await trainDetector(det, source, {
    ...(steps !== undefined ? { steps } : {}),
    ...(minutes !== undefined ? { minutes } : {}),
    batchSize,
    lr,
    noise,
    dir: out,
    checkpointEvery: every,
    signal: ac.signal,
    onStep: (p) => {
      ema = ema === null ? p.loss : 0.95 * ema + 0.05 * p.loss;
      const now = Date.now();
      if (now - lastPrint < 5000 && p.runStep !== 1) return;
      lastPrint = now;
      const of = p.runSteps === null ? '' : `/${p.runSteps}`;
      process.stderr.write(
        `step ${p.step} (run ${p.runStep}${of}) loss ${ema.toFixed(4)} [bce ${p.bce.toFixed(4)} coord ${p.coord.toFixed(4)}] lr ${p.lr.toExponential(2)} ` +
          `${(p.elapsedMs / p.runStep).toFixed(0)} ms/step elapsed ${fmtMs(p.elapsedMs)} eta ${fmtMs(p.etaMs)}\n`,
      );
    },
  });
  process.stderr.write(
    `trained ${result.runSteps} steps (total ${result.step}) in ${fmtMs(result.elapsedMs)}; loss ${result.earlyMeanLoss.toFixed(4)} -> ${result.lateMeanLoss.toFixed(4)}; saved to ${out}\n`,
  );
  const summary: Record<string, unknown> = { dataset, out, step: result.step, runSteps: result.runSteps, loss: result.lateMeanLoss, elapsedMs: result.elapsedMs };
  if (valEpisodes) {
    const eps = valLimit ? valEpisodes.slice(0, valLimit) : valEpisodes;
    const s = evaluateDetector(det, eps);
    process.stderr.write(`val: precision ${s.precision.toFixed(4)} recall ${s.recall.toFixed(4)} f1 ${s.f1.toFixed(4)} on ${s.images} images\n`);
    Object.assign(summary, { val: s });
  }
  process.stdout.write(JSON.stringify(summary) + '\n');
}

runCli(main);
