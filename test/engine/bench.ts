/**
 * Engine benchmark (no server): N sessions submit one turn each at the same moment; the engine runs them with
 * batching on and off. Prints per-mode wall time, turn latency p50/p95, time to first progress, throughput, the
 * mean batch size, and the speed-up of batching. Last line: one JSON object.
 *
 *   npx tsx test/engine/bench.ts [--preset tiny|small] [--sessions 1,4,8] [--steps 10] [--guidance 3] [--icm 0]
 *     [--candidates 1] [--max-batch 8]
 *
 * Weights are random (timing only). `small` is the 64x64 latent model with the small autoencoder codec.
 */
import { parseArgs } from 'node:util';
import { register } from 'node:module';
import type { CddIcm } from '../../src/model/index.js';
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
const { AutoencoderCodec, WordTokenizer, createAutoencoder, createModel } = await import('../../src/model/index.js');
const { createEngine } = await import('../../src/engine/index.js');
const { CORPUS, RecordingHooks } = await import('./recorder.js');

const { values } = parseArgs({
  options: {
    preset: { type: 'string', default: 'tiny' },
    sessions: { type: 'string', default: '1,4,8' },
    steps: { type: 'string', default: '10' },
    guidance: { type: 'string', default: '3' },
    icm: { type: 'string', default: '0' },
    candidates: { type: 'string', default: '1' },
    'max-batch': { type: 'string', default: '8' },
    backend: { type: 'string', default: 'auto' },
  },
});

const info = await initBackend(values.backend as 'auto');
const tokenizer = WordTokenizer.fromCorpus(CORPUS, { contextLength: 12 });
const model: CddIcm =
  values.preset === 'small'
    ? createModel('small', { tokenizer, codec: new AutoencoderCodec(createAutoencoder('small')) })
    : createModel(values.preset!, { tokenizer });
const size = model.config.imageSize;
const steps = Number(values.steps);
const sessionCounts = values.sessions!.split(',').map(Number);
const candidates = Number(values.candidates);
const maxBatchSize = Number(values['max-batch']);

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
  firstProgressMs: number;
  turnsPerMin: number;
  meanBatch: number;
  stepMs: number;
}

async function run(n: number, batching: boolean): Promise<Row> {
  const hooks = new RecordingHooks();
  (hooks as { background: unknown }).background = blankImage(size, size, [60, 60, 60]);
  const ids = Array.from({ length: n }, (_, i) => `t${i}`);
  ids.forEach((id, i) => hooks.add(id, `s${i}`, { steps, guidanceScale: Number(values.guidance), icmGuidanceScale: Number(values.icm), candidates }));
  const batches: BatchInfo[] = [];
  const engine = createEngine({ model, hooks, batching, maxBatchSize, previewEvery: 5, onBatch: (b) => batches.push(b) });
  const t0 = Date.now();
  ids.forEach((id, i) => engine.enqueue(`s${i}`, id));
  await Promise.all(ids.map((id) => hooks.outcome(id)));
  const wallMs = Date.now() - t0;
  await engine.drain();
  const latencies = ids.map((id) => hooks.of('finished', id)[0]!.at - t0);
  const firstProgress = ids.map((id) => (hooks.of('progress', id)[0]?.at ?? t0) - t0);
  return {
    sessions: n,
    batching,
    wallMs,
    p50Ms: pct(latencies, 0.5),
    p95Ms: pct(latencies, 0.95),
    firstProgressMs: pct(firstProgress, 0.5),
    turnsPerMin: Math.round((n / wallMs) * 60_000 * 10) / 10,
    meanBatch: Math.round((batches.reduce((a, b) => a + b.size, 0) / batches.length) * 100) / 100,
    stepMs: Math.round(batches.reduce((a, b) => a + b.stepMs, 0) / batches.length),
  };
}

// Warm-up: the first call at each batch shape pays for kernel set-up (native primitives are cached per shape).
for (const n of sessionCounts) await run(n, true);
const rows: Row[] = [];
for (const n of sessionCounts) {
  for (const batching of [true, false]) {
    const r = await run(n, batching);
    rows.push(r);
    console.log(
      `sessions=${n} batching=${batching ? 'on ' : 'off'} wall=${r.wallMs}ms p50=${r.p50Ms}ms p95=${r.p95Ms}ms ` +
        `firstProgress=${r.firstProgressMs}ms ${r.turnsPerMin} turns/min meanBatch=${r.meanBatch} step=${r.stepMs}ms`,
    );
  }
}
const speedup = Object.fromEntries(
  sessionCounts.map((n) => {
    const on = rows.find((r) => r.sessions === n && r.batching)!;
    const off = rows.find((r) => r.sessions === n && !r.batching)!;
    return [n, Math.round((off.wallMs / on.wallMs) * 100) / 100];
  }),
);
console.log(`speed-up of batching (wall time off / on): ${JSON.stringify(speedup)}`);
console.log(JSON.stringify({ bench: 'engine', backend: info.name, threads: info.threads, preset: values.preset, steps, candidates, maxBatchSize, guidance: Number(values.guidance), icm: Number(values.icm), rows, speedup }));
model.dispose();
