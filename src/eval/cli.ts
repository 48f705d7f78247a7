/**
 * Evaluate a CDD-ICM checkpoint on episodes (paper Sec. 4.1 metrics).
 *
 *   npm run eval -- --model <checkpoint> --episodes <file> [--limit N] [--teacher-forced] [--steps K]
 *        [--guidance phi] [--icm-guidance psi] [--seed S] [--batch B] [--detector DIR] [--out DIR] [--json]
 *        [--codraw-dir DIR] [--backend NAME] [--sheet-episodes N] [--reencode-reference] [--candidates N]
 *        [--solver ddim|dpm++2m]
 *   npm run eval -- --codec-check --model <checkpoint or autoencoder> --episodes <file> [--limit N] [--rounds R]
 *        [--image-size S] [--json]
 *
 * Writes report.json and contact-sheet.png (the first --sheet-episodes episodes, default 8) to the output folder, prints a table; with --json the last stdout line
 * is one JSON object (precision, recall, f1, rsim, episodes, turns, detector_reference_f1, ...).
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { resolveTurnDefaults } from '../config/index.js';
import { AUTOENCODER_FORMAT, AutoencoderCodec, SOLVERS, loadAutoencoder, loadCheckpoint, type SolverName } from '../model/index.js';
import { loadDetector } from './detector.js';
import { contactSheet } from './contactSheet.js';
import { DETECTOR_TRUST_F1 } from './trust.js';
import { DATASET_INFO } from './datasets.js';
import { paraphraseEpisodes, type Episode } from '../data/index.js';
import { evaluateModel, type ModelEvalReport } from './evaluate.js';
import { checkCodec, type CheckedCodec } from './codecCheck.js';
import { CliError, Progress, fmtMs, initBackendFromArgs, loadEpisodesArg, num, optNum, parse, runCli, str } from './cliUtil.js';

const USAGE = `usage: npm run eval -- --model CHECKPOINT --episodes FILE [--limit N] [--teacher-forced] [--steps K]
  [--guidance PHI] [--icm-guidance PSI] [--seed S] [--batch B] [--detector DIR] [--out DIR] [--json]
  [--codraw-dir DIR] [--backend auto|native-cpu|cpu|tensorflow] [--sheet-episodes N] [--reencode-reference]
  [--candidates N] [--solver ddim|dpm++2m] [--select-at F] [--icm-before-selection yes|no] [--paraphrase SEED]
  --select-at F: best-of-n keeps one candidate after that share of the steps, by the ICM score of the x0
  estimates (default: the checkpoint's sampling.selectAt, else 1: at the end)
  --icm-before-selection no: with an early selection, only the kept candidate gets ICM guidance (its remaining
  steps); default: the checkpoint's sampling.icmBeforeSelection, else yes
  --paraphrase SEED: i-CLEVR turns worded by the held-out paraphrase generator (src/data/iclevrHeldOutPhrasing.ts)
  instead of the canonical grammar; the scene targets are unchanged
  --steps / --guidance / --icm-guidance / --candidates / --solver default to the checkpoint's recommended sampling
  settings (config.json's "sampling", as the server), else 50 steps, phi 3, psi 2, 1 candidate, DDIM
  --solver: DDIM (eta 0) or DPM-Solver++(2M) on the same respaced schedule, guidance applied alike
  --candidates N: best-of-N per turn, kept by the model's clean-image ICM score (not the paper's; N times the
  sampling work, the N candidates of a batch's B episodes denoised together)
       npm run eval -- --codec-check --model CHECKPOINT|AUTOENCODER --episodes FILE [--limit N] [--rounds R]
         [--image-size S] [--json]
  scores the model's image codec instead of the model: the detector on every ground-truth turn against the detector
  on decode(encode(turn)), R times over (default 1); generates nothing, writes nothing. --model may also be an
  autoencoder folder (npm run train -- --stage ae writes <out>/autoencoder), checked before any diffusion is trained
  on it; --image-size is the canvas size it is checked at (a checkpoint's own size by default; an autoencoder's:
  required, it is the size it was trained at)`;

function table(r: ModelEvalReport): string {
  const f = (v: number) => v.toFixed(4).padStart(9);
  const lines = ['turn   count precision    recall        f1'];
  r.perTurn.forEach((t, i) => lines.push(`${String(i + 1).padStart(4)} ${String(t.count).padStart(7)} ${f(t.precision)} ${f(t.recall)} ${f(t.f1)}`));
  lines.push(` all ${String(r.turns).padStart(7)} ${f(r.precision)} ${f(r.recall)} ${f(r.f1)}`);
  lines.push(`RSIM (final turns of ${r.episodes} episodes): ${r.rsim.toFixed(4)}`);
  const d = r.detectorReference;
  lines.push(`detector on ground truth vs annotations: precision ${d.precision.toFixed(4)} recall ${d.recall.toFixed(4)} f1 ${d.f1.toFixed(4)}`);
  const rel = r.relations;
  if (rel)
    lines.push(
      `spatial relations held: ${rel.accuracy.toFixed(4)} of ${rel.judged} judged turns (of ${rel.asked} asking one; ` +
        `ground truth ${rel.referenceAccuracy.toFixed(4)})`,
    );
  return lines.join('\n');
}

async function main(): Promise<void> {
  const a = parse(
    process.argv.slice(2),
    {
      model: { type: 'string' },
      episodes: { type: 'string' },
      limit: { type: 'string' },
      'teacher-forced': { type: 'boolean' },
      steps: { type: 'string' },
      guidance: { type: 'string' },
      'icm-guidance': { type: 'string' },
      seed: { type: 'string' },
      batch: { type: 'string' },
      detector: { type: 'string' },
      out: { type: 'string' },
      json: { type: 'boolean' },
      'codraw-dir': { type: 'string' },
      backend: { type: 'string' },
      'sheet-episodes': { type: 'string' },
      'reencode-reference': { type: 'boolean' },
      candidates: { type: 'string' },
      solver: { type: 'string' },
      'select-at': { type: 'string' },
      'icm-before-selection': { type: 'string' },
      'codec-check': { type: 'boolean' },
      rounds: { type: 'string' },
      paraphrase: { type: 'string' },
      'image-size': { type: 'string' },
    },
    USAGE,
  );
  if (a.rounds !== undefined && a['codec-check'] !== true) throw new CliError('--rounds applies to --codec-check');
  if (a['image-size'] !== undefined && a['codec-check'] !== true) throw new CliError('--image-size applies to --codec-check (a model generates at its own size)');
  const modelDir = str(a.model, 'model');
  const episodesFile = str(a.episodes, 'episodes');
  const limit = optNum(a.limit, 'limit', { int: true, min: 1 });
  const teacherForced = a['teacher-forced'] === true;
  const sheetEpisodes = num(a['sheet-episodes'], 'sheet-episodes', 8, { int: true, min: 1 });
  // Unset: the model's recommended sampling settings, else TURN_DEFAULTS (the server resolves them alike).
  const asked = {
    defaultSteps: optNum(a.steps, 'steps', { int: true, min: 1 }),
    defaultGuidanceScale: optNum(a.guidance, 'guidance', { min: 0 }),
    defaultIcmGuidanceScale: optNum(a['icm-guidance'], 'icm-guidance', { min: 0 }),
    defaultCandidates: optNum(a.candidates, 'candidates', { int: true, min: 1 }),
  };
  const askedSolver = a.solver === undefined ? undefined : str(a.solver, 'solver');
  if (askedSolver !== undefined && !(SOLVERS as readonly string[]).includes(askedSolver)) throw new CliError(`--solver must be one of ${SOLVERS.join(', ')}`);
  const askedSelectAt = optNum(a['select-at'], 'select-at', { min: 0 });
  if (askedSelectAt !== undefined && !(askedSelectAt > 0 && askedSelectAt <= 1)) throw new CliError('--select-at must be in (0, 1]');
  const askedIcmBefore = a['icm-before-selection'];
  if (askedIcmBefore !== undefined && askedIcmBefore !== 'yes' && askedIcmBefore !== 'no') throw new CliError('--icm-before-selection must be yes or no');
  const seed = num(a.seed, 'seed', 0, { int: true });
  const batchSize = num(a.batch, 'batch', 4, { int: true, min: 1 });
  const json = a.json === true;
  const codrawDir = typeof a['codraw-dir'] === 'string' ? a['codraw-dir'] : undefined;
  if (!existsSync(join(modelDir, 'config.json'))) throw new CliError(`no model checkpoint at ${modelDir} (missing config.json)`);
  if (codrawDir && !existsSync(join(codrawDir, 'clipart'))) throw new CliError(`no clipart/ folder in ${codrawDir}`);
  let episodes = await loadEpisodesArg(episodesFile);
  if (episodes.length === 0) throw new CliError(`${episodesFile} holds no episodes`);
  if (limit) episodes = episodes.slice(0, limit);
  const dataset = episodes[0]!.dataset;
  const paraphraseSeed = optNum(a.paraphrase, 'paraphrase', { int: true });
  if (paraphraseSeed !== undefined) {
    if (dataset !== 'iclevr') throw new CliError('--paraphrase applies to i-CLEVR episodes (their canonical grammar is what gets reworded)');
    episodes = paraphraseEpisodes(episodes, paraphraseSeed);
  }
  if (episodes.some((e) => e.dataset !== dataset)) throw new CliError(`${episodesFile} mixes i-CLEVR and CoDraw episodes`);
  const detectorDir = str(a.detector, 'detector', join('models', 'detectors', dataset));
  if (!existsSync(join(detectorDir, 'config.json')))
    throw new CliError(`no ${dataset} detector at ${detectorDir} (train one: npm run train:detector -- --dataset ${dataset} --out ${detectorDir} --minutes 20)`);
  if (a['codec-check'] === true) {
    const imageSize = optNum(a['image-size'], 'image-size', { int: true, min: 8 });
    return codecCheck(modelDir, detectorDir, episodes, { rounds: num(a.rounds, 'rounds', 1, { int: true, min: 1 }), json, backendArg: a.backend, imageSize, ...(codrawDir ? { codrawDir } : {}) });
  }
  const outDir = str(a.out, 'out', join('eval-output', `${dataset}-${basename(resolve(modelDir))}-${new Date().toISOString().replace(/[:.]/g, '-')}`));

  const backend = await initBackendFromArgs(a.backend);
  const log = (s: string) => process.stderr.write(s + '\n');
  log(`backend ${backend.name} (${backend.device}, ${backend.threads} threads)`);
  const model = await loadCheckpoint(modelDir);
  const { steps, guidanceScale, icmGuidanceScale, candidates } = resolveTurnDefaults(asked, model.config.sampling);
  const solver: SolverName = (askedSolver as SolverName | undefined) ?? model.config.sampling?.solver ?? 'ddim';
  const selectAt = askedSelectAt ?? model.config.sampling?.selectAt ?? 1;
  const icmBeforeSelection = askedIcmBefore === undefined ? (model.config.sampling?.icmBeforeSelection ?? true) : askedIcmBefore === 'yes';
  const detector = await loadDetector(detectorDir);
  if (detector.config.dataset !== dataset) throw new CliError(`${detectorDir} is a ${detector.config.dataset} detector, episodes are ${dataset}`);
  const totalTurns = episodes.reduce((s, e) => s + e.turns.length, 0);
  log(
    `evaluating ${modelDir} on ${episodes.length} ${dataset} episodes (${totalTurns} turns), ${model.config.imageSize}px, ` +
      `${steps} ${solver} steps, phi ${guidanceScale}, psi ${icmGuidanceScale}, ${candidates > 1 ? `best of ${candidates}${selectAt < 1 ? ` selected after ${Math.ceil(selectAt * steps)} steps${icmBeforeSelection ? '' : ' (ICM guidance after the selection)'}` : ''}, ` : ''}${teacherForced ? 'teacher-forced' : 'iterative'}`,
  );
  const progress = new Progress('turns', totalTurns);
  let turnsDone = 0;
  const ac = new AbortController();
  process.once('SIGINT', () => ac.abort());
  const reencodeReference = a['reencode-reference'] === true;
  const report = await evaluateModel(model, detector, episodes, {
    teacherForced,
    reencodeReference,
    steps,
    solver,
    selectAt,
    icmBeforeSelection,
    guidanceScale,
    icmGuidanceScale,
    candidates,
    seed,
    batchSize,
    signal: ac.signal,
    ...(codrawDir ? { render: { clipartDir: join(codrawDir, 'clipart') } } : {}),
    onProgress: (done) => {
      turnsDone = done;
      progress.update(done, '', true);
    },
    onStep: (i, total) => progress.update(turnsDone, `(step ${i}/${total} of the current batch)`),
  });

  await mkdir(outDir, { recursive: true });
  const sheetPath = join(outDir, 'contact-sheet.png');
  await writeFile(sheetPath, contactSheet(report.results.slice(0, sheetEpisodes)));
  const trustF1 = DETECTOR_TRUST_F1[dataset];
  const ceiling = DATASET_INFO[dataset].rsimCeiling?.(episodes);
  const summary = {
    precision: report.precision,
    recall: report.recall,
    f1: report.f1,
    rsim: report.rsim,
    episodes: report.episodes,
    turns: report.turns,
    detector_reference_precision: report.detectorReference.precision,
    detector_reference_recall: report.detectorReference.recall,
    detector_reference_f1: report.detectorReference.f1,
    detector_trusted: report.detectorReference.f1 >= trustF1,
    ...(report.relations
      ? {
          relation_accuracy: report.relations.accuracy,
          relation_turns_judged: report.relations.judged,
          relation_turns: report.relations.asked,
          relation_accuracy_reference: report.relations.referenceAccuracy,
        }
      : {}),
    ...(ceiling ? { rsim_ceiling_iterative: ceiling.iterative, rsim_ceiling_teacher_forced: ceiling.teacherForced } : {}),
    dataset,
    model: modelDir,
    episodes_file: episodesFile,
    paraphrase: paraphraseSeed ?? null,
    detector: detectorDir,
    teacher_forced: teacherForced,
    reencode_reference: reencodeReference,
    steps,
    solver,
    select_at: selectAt,
    icm_before_selection: icmBeforeSelection,
    guidance: guidanceScale,
    icm_guidance: icmGuidanceScale,
    candidates,
    seed,
    image_size: model.config.imageSize,
    backend: backend.name,
    elapsed_ms: report.elapsedMs,
    report: join(outDir, 'report.json'),
    contact_sheet: sheetPath,
  };
  const full = {
    ...summary,
    per_turn: report.perTurn,
    per_episode: report.results.map((r) => ({
      id: r.id,
      rsim: r.rsim,
      turns: r.turns.map((t) => ({
        text: t.text,
        ...t.scores,
        annotations: t.annotations.map((o) => o.label),
        ground_truth_detections: t.gtDetections,
        generated_detections: t.genDetections,
      })),
    })),
  };
  await writeFile(join(outDir, 'report.json'), JSON.stringify(full, null, 2) + '\n');
  process.stdout.write(table(report) + '\n');
  if (ceiling)
    process.stdout.write(
      `RSIM of a perfect instruction follower on these episodes: iterative ${ceiling.iterative.toFixed(4)}, teacher-forced ${ceiling.teacherForced.toFixed(4)}\n`,
    );
  if (!summary.detector_trusted)
    log(`warning: the detector's F1 on ground truth (${report.detectorReference.f1.toFixed(4)}) is below ${trustF1}: do not trust these scores`);
  process.stdout.write(`report ${join(outDir, 'report.json')}, contact sheet ${sheetPath} (${fmtMs(report.elapsedMs)})\n`);
  if (json) process.stdout.write(JSON.stringify(summary) + '\n');
}

/** `--codec-check`: what the model's codec loses of the ground truth (src/eval/codecCheck.ts). */
async function codecCheck(
  modelDir: string,
  detectorDir: string,
  episodes: Episode[],
  o: { rounds: number; json: boolean; backendArg: string | boolean | undefined; imageSize: number | undefined; codrawDir?: string },
): Promise<void> {
  const backend = await initBackendFromArgs(o.backendArg);
  process.stderr.write(`backend ${backend.name} (${backend.device}, ${backend.threads} threads)\n`);
  const format = (JSON.parse(await readFile(join(modelDir, 'config.json'), 'utf8')) as { format?: string }).format;
  let subject: CheckedCodec & { dispose(): void };
  if (format === AUTOENCODER_FORMAT) {
    if (o.imageSize === undefined) throw new CliError(`${modelDir} is an autoencoder: --image-size S says at which canvas size to check it (the size it was trained at)`);
    const ae = await loadAutoencoder(modelDir);
    if (o.imageSize % ae.config.downFactor !== 0) throw new CliError(`--image-size ${o.imageSize} is not a multiple of the autoencoder's downFactor ${ae.config.downFactor}`);
    subject = { codec: new AutoencoderCodec(ae), imageSize: o.imageSize, dispose: () => ae.dispose() };
  } else {
    const model = await loadCheckpoint(modelDir);
    subject = { codec: model.codec, imageSize: o.imageSize ?? model.config.imageSize, dispose: () => model.dispose() };
  }
  const detector = await loadDetector(detectorDir);
  if (detector.config.dataset !== episodes[0]!.dataset) throw new CliError(`${detectorDir} is a ${detector.config.dataset} detector, episodes are ${episodes[0]!.dataset}`);
  const total = episodes.reduce((s, e) => s + e.turns.length, 0);
  const progress = new Progress('images', total);
  const r = checkCodec(subject, detector, episodes, {
    rounds: o.rounds,
    ...(o.codrawDir ? { render: { clipartDir: join(o.codrawDir, 'clipart') } } : {}),
    onProgress: (done) => progress.update(done),
  });
  const f = (v: number) => v.toFixed(4).padStart(9);
  const lines = [`codec of ${modelDir} on ${r.images} ground-truth turns at ${subject.imageSize}x${subject.imageSize}`, 'round precision    recall        f1  most lost'];
  for (const x of r.rounds) {
    const lost = x.lost.slice(0, 4).map(([l, n]) => `${l} ${n}`).join(', ');
    lines.push(`${String(x.round).padStart(5)} ${f(x.scores.precision)} ${f(x.scores.recall)} ${f(x.scores.f1)}  ${lost}`);
  }
  lines.push('(round 0: the ground truth itself; round k: after k decode(encode(.)) round trips)');
  process.stdout.write(lines.join('\n') + '\n');
  if (o.json) process.stdout.write(JSON.stringify({ model: modelDir, imageSize: subject.imageSize, images: r.images, rounds: r.rounds }) + '\n');
  subject.dispose();
  detector.dispose();
}

runCli(main);
