/**
 * The detector's own accuracy on ground-truth renderings against the episodes' annotations.
 *
 *   npm run eval:detector -- --dataset iclevr|codraw --episodes <file> [--detector DIR] [--limit N] [--size PX]
 *        [--codraw-dir DIR] [--json] [--backend NAME]
 *
 * Prints precision / recall / F1 (per image, averaged over every turn); with --json the last line is one JSON
 * object with at least precision, recall, f1.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadDetector } from './detector.js';
import { evaluateDetector } from './detectorEval.js';
import { DETECTOR_TRUST_F1 } from './trust.js';
import { CliError, Progress, datasetArg, initBackendFromArgs, loadEpisodesArg, optNum, parse, runCli, str } from './cliUtil.js';

const USAGE = `usage: npm run eval:detector -- --dataset iclevr|codraw --episodes FILE [--detector DIR] [--limit N]
  [--size PX] [--codraw-dir DIR] [--json] [--backend auto|native-cpu|cpu|tensorflow]`;

async function main(): Promise<void> {
  const a = parse(
    process.argv.slice(2),
    {
      dataset: { type: 'string' },
      episodes: { type: 'string' },
      detector: { type: 'string' },
      limit: { type: 'string' },
      size: { type: 'string' },
      'codraw-dir': { type: 'string' },
      json: { type: 'boolean' },
      backend: { type: 'string' },
    },
    USAGE,
  );
  const dataset = datasetArg(a.dataset);
  const episodesFile = str(a.episodes, 'episodes');
  const detectorDir = str(a.detector, 'detector', join('models', 'detectors', dataset));
  const limit = optNum(a.limit, 'limit', { int: true, min: 1 });
  const size = optNum(a.size, 'size', { int: true, min: 8 });
  const codrawDir = typeof a['codraw-dir'] === 'string' ? a['codraw-dir'] : undefined;
  if (codrawDir && !existsSync(join(codrawDir, 'clipart'))) throw new CliError(`no clipart/ folder in ${codrawDir}`);
  if (!existsSync(join(detectorDir, 'config.json'))) throw new CliError(`no detector checkpoint at ${detectorDir} (missing config.json)`);
  let episodes = await loadEpisodesArg(episodesFile);
  const other = episodes.find((e) => e.dataset !== dataset);
  if (other) throw new CliError(`${episodesFile}: episode ${other.id} is ${other.dataset}, not ${dataset}`);
  if (episodes.length === 0) throw new CliError(`${episodesFile} holds no episodes`);
  if (limit) episodes = episodes.slice(0, limit);

  const backend = await initBackendFromArgs(a.backend);
  process.stderr.write(`backend ${backend.name} (${backend.device}, ${backend.threads} threads)\n`);
  const det = await loadDetector(detectorDir);
  if (det.config.dataset !== dataset) throw new CliError(`${detectorDir} holds a ${det.config.dataset} detector, not ${dataset}`);
  const t0 = Date.now();
  const images = episodes.reduce((s, e) => s + e.turns.length, 0);
  const progress = new Progress('images', images);
  const s = evaluateDetector(det, episodes, {
    ...(size ? { size } : {}),
    ...(codrawDir ? { render: { clipartDir: join(codrawDir, 'clipart') } } : {}),
    onProgress: (done) => progress.update(done),
  });
  const trusted = s.f1 >= DETECTOR_TRUST_F1[dataset];
  process.stdout.write(
    `${dataset} detector ${detectorDir} on ${s.images} ground-truth renderings (${s.episodes} episodes, ${size ?? det.config.inputSize}px):\n` +
      `  precision ${s.precision.toFixed(4)}  recall ${s.recall.toFixed(4)}  f1 ${s.f1.toFixed(4)}` +
      `  (required ${DETECTOR_TRUST_F1[dataset]}: ${trusted ? 'met' : 'NOT met'})\n` +
      `  localisation of found classes: mean |dx| ${s.meanAbsX.toFixed(4)}, mean |dy| ${s.meanAbsY.toFixed(4)}` +
      (s.depthAccuracy === null ? '' : `, depth accuracy ${s.depthAccuracy.toFixed(4)}`) +
      '\n',
  );
  if (a.json === true)
    process.stdout.write(
      JSON.stringify({
        precision: s.precision,
        recall: s.recall,
        f1: s.f1,
        images: s.images,
        episodes: s.episodes,
        mean_abs_x: s.meanAbsX,
        mean_abs_y: s.meanAbsY,
        depth_accuracy: s.depthAccuracy,
        required_f1: DETECTOR_TRUST_F1[dataset],
        trusted,
        dataset,
        detector: detectorDir,
        episodes_file: episodesFile,
        size: size ?? det.config.inputSize,
        backend: backend.name,
        elapsed_ms: Date.now() - t0,
      }) + '\n',
    );
}

runCli(main);
