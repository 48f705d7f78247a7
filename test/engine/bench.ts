/**
 * Engine benchmark (no server), at a checkpoint's shipped sampling defaults unless told otherwise: one turn alone
 * (median of --repeats runs: ms from submit to the final image, ms to the first preview), then N sessions
 * submitting one turn each at the same moment (turns per minute; batching on, and off with --compare-batching).
 * Prints the figures; the last line is one JSON object.
 *
 *   npm run bench:engine [-- --model models/iclevr-default] [--preset tiny|small] [--sessions 8] [--repeats 5]
 *     [--steps N] [--solver ddim|dpm++2m] [--guidance PHI] [--icm PSI] [--candidates N] [--preview-every 5]
 *     [--max-batch 8] [--compare-batching]
 *
 * Default: the shipped model (models/iclevr-default) at its config.json `sampling` (resolved as the server does).
 * `--preset` uses random weights of a preset instead (timing only; `small` is the 64x64 latent model with the small
 * autoencoder codec), at 10 steps, phi 3, psi 0 unless given.
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { register } from 'node:module';
import type { CddIcm, SolverName } from '../../src/model/index.js';
import type { BatchInfo } from '../../src/engine/index.js';

process.env.LOG_LEVEL ??= 'warn';

// Under plain Node/tsx, tfjs-core's ESM registration files (imported statically by some model modules) use
// extensionless relative imports; retry them with ".js" (as src/model does at run time) before the model loads.
register(`data:text/javascript,${encodeURIComponent(`
export async function resolve(specifier, context, next) {
  try { return await next(specifier, context); } catch (e) {
    if (specifier.startsWith('.') && !specifier.endsWith('.js') && (context.parentURL ?? '').includes('/@tensorflow/tfjs-core/dist/')) {
      return next(specifier + '.js', context);
    }
    throw e;
  }
}`)}`);
const { initBackend } = await import('../../src/backend/index.js');
const { blankImage } = await import('../../src/data/index.js');
const { AutoencoderCodec, SOLVERS, WordTokenizer, createAutoencoder, createModel, loadCheckpoint } = await import('../../src/model/index.js');
const { createEngine } = await import('../../src/engine/index.js');
const { resolveTurnDefaults } = await import('../../src/config/index.js');
const { CORPUS, RecordingHooks } = await import('./recorder.js');

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    preset: { type: 'string' },
    sessions: { type: 'string', default: '8' },
    repeats: { type: 'string', default: '5' },
    steps: { type: 'string' },
    solver: { type: 'string' },
    guidance: { type: 'string' },
    icm: { type: 'string' },
    candidates: { type: 'string' },
    'preview-every': { type: 'string', default: '5' },
    'max-batch': { type: 'string', default: '8' },
    'compare-batching': { type: 'boolean', default: false },
    backend: { type: 'string', default: 'auto' },
  },
});

const info = await initBackend(values.backend as 'auto');
let model: CddIcm;
let source: string;
if (values.preset) {
  const tokenizer = WordTokenizer.fromCorpus(CORPUS, { contextLength: 12 });
  model =
    values.preset === 'small'
      ? createModel('small', { tokenizer, codec: new AutoencoderCodec(createAutoencoder('small')) })
      : createModel(values.preset, { tokenizer });
  model.config.sampling = { steps: 10, guidanceScale: 3, icmGuidanceScale: 0, candidates: 1 };
  source = `preset ${values.preset} (random weights)`;
} else {
  source = values.model ?? 'models/iclevr-default';
  model = await loadCheckpoint(source);
}
const opt = (v: string | undefined): number | undefined => (v === undefined ? undefined : Number(v));
const settings = resolveTurnDefaults(
  { defaultSteps: opt(values.steps), defaultGuidanceScale: opt(values.guidance), defaultIcmGuidanceScale: opt(values.icm), defaultCandidates: opt(values.candidates) },
  model.config.sampling,
);
const solver = (values.solver ?? model.config.sampling?.solver ?? 'ddim') as SolverName;
if (!SOLVERS.includes(solver)) throw new Error(`--solver must be one of ${SOLVERS.join(', ')}`);
// The engine passes no solver: the sampler uses the model's recommendation, so set it there.
model.config.sampling = { ...model.config.sampling, solver };
const size = model.config.imageSize;
const sessionCounts = values.sessions!.split(',').map(Number);
const repeats = Number(values.repeats);
const previewEvery = Number(values['preview-every']);
const maxBatchSize = Number(values['max-batch']);
const TEXT = 'Add a red cube at the center.';

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
};

interface Row {
  sessions: number;
  batching: boolean;
  wallMs: number;
  p50Ms: number;
  p95Ms: number;
  /** Median over turns of submit -> first progress frame carrying a preview (-1: none, e.g. fewer steps than previewEvery). */
  firstPreviewMs: number;
  turnsPerMin: number;
  meanBatch: number;
  stepMs: number;
}

async function run(n: number, batching: boolean, seed: number): Promise<Row> {
  const hooks = new RecordingHooks();
  (hooks as { background: unknown }).background = blankImage(size, size, [128, 128, 128]);
  const ids = Array.from({ length: n }, (_, i) => `t${i}`);
  ids.forEach((id, i) => hooks.add(id, `s${i}`, { ...settings, text: TEXT, seed: seed + i }));
  const batches: BatchInfo[] = [];
  const engine = createEngine({ model, hooks, batching, maxBatchSize, previewEvery, onBatch: (b) => batches.push(b) });
  const t0 = Date.now();
  ids.forEach((id, i) => engine.enqueue(`s${i}`, id));
  await Promise.all(ids.map((id) => hooks.outcome(id)));
  const wallMs = Date.now() - t0;
  await engine.drain();
  const latencies = ids.map((id) => hooks.of('finished', id)[0]!.at - t0);
  const firstPreview = ids.map((id) => {
    const p = hooks.of('progress', id).find((e) => e.p.previewPng !== null);
    return p ? p.at - t0 : -1;
  });
  return {
    sessions: n,
    batching,
    wallMs,
    p50Ms: pct(latencies, 0.5),
    p95Ms: pct(latencies, 0.95),
    firstPreviewMs: median(firstPreview),
    turnsPerMin: Math.round((n / wallMs) * 60_000 * 10) / 10,
    meanBatch: Math.round((batches.reduce((a, b) => a + b.size, 0) / batches.length) * 100) / 100,
    stepMs: Math.round(batches.reduce((a, b) => a + b.stepMs, 0) / batches.length),
  };
}

// Early selection and where ICM guidance applies come from the checkpoint's config.json, as in the server.
const recommended = model.config.sampling ?? {};
const selection = settings.candidates > 1 && (recommended.selectAt ?? 1) < 1
  ? ` selected after ${Math.ceil((recommended.selectAt ?? 1) * settings.steps)} steps${recommended.icmBeforeSelection === false ? ', ICM guidance after the selection only' : ''}`
  : '';
const label = `${settings.steps} ${solver} steps, phi ${settings.guidanceScale}, psi ${settings.icmGuidanceScale}, ${settings.candidates > 1 ? `best of ${settings.candidates}${selection}` : 'plain'}`;
console.log(`${source}: ${label}; backend ${info.name}, ${info.threads} threads; load average ${loadavg().map((v) => v.toFixed(2)).join(' ')}`);
// Warm-up: the first call at each batch shape pays for kernel set-up (native primitives are cached per shape).
await run(1, true, 1000);
for (const n of sessionCounts) if (n > 1) await run(n, true, 2000);

const alone: Row[] = [];
for (let r = 0; r < repeats; r++) alone.push(await run(1, true, 10 + r));
const turnMs = median(alone.map((r) => r.wallMs));
const firstPreviewMs = median(alone.map((r) => r.firstPreviewMs));
console.log(
  `one turn alone (median of ${repeats}): ${Math.round(turnMs)} ms submit -> final image (min ${Math.min(...alone.map((r) => r.wallMs))}, ` +
    `max ${Math.max(...alone.map((r) => r.wallMs))}); first preview ${Math.round(firstPreviewMs)} ms (every ${previewEvery} steps); step ${median(alone.map((r) => r.stepMs))} ms`,
);
const rows: Row[] = [];
for (const n of sessionCounts) {
  for (const batching of values['compare-batching'] ? [true, false] : [true]) {
    const r = await run(n, batching, 100);
    rows.push(r);
    console.log(
      `sessions=${n} batching=${batching ? 'on ' : 'off'} wall=${r.wallMs}ms p50=${r.p50Ms}ms p95=${r.p95Ms}ms ` +
        `firstPreview=${r.firstPreviewMs}ms ${r.turnsPerMin} turns/min meanBatch=${r.meanBatch} step=${r.stepMs}ms`,
    );
  }
}
const most = rows.filter((r) => r.batching).sort((a, b) => b.sessions - a.sessions)[0];
console.log(
  JSON.stringify({
    bench: 'engine', model: source, backend: info.name, threads: info.threads, ...settings, solver, selectAt: recommended.selectAt ?? 1, icmBeforeSelection: recommended.icmBeforeSelection ?? true, previewEvery, maxBatchSize,
    turnMsMedian: Math.round(turnMs), turnMsAll: alone.map((r) => r.wallMs), firstPreviewMsMedian: Math.round(firstPreviewMs),
    sessions: most?.sessions ?? null, turnsPerMin: most?.turnsPerMin ?? null, rows, loadAvg1mAtEnd: Number(loadavg()[0]!.toFixed(2)),
  }),
);
model.dispose();
