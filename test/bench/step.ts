/**
 * Where one denoising step of a real checkpoint spends its time (`npm run bench:step [-- --model DIR]
 * [--candidates 4] [--steps 10] [--guidance 5] [--icm 2] [--repeats 5] [--verbose]`): the median wall time of a
 * `Sampler.step` over the first steps of a turn, then one step under tf.profile, split into kernel time by kernel
 * and the rest (tfjs dispatch, allocation, tidy bookkeeping, the JS between kernels). bench:backend does the same
 * for a synthetic U-Net; this is the product's own step: U-Net passes, classifier-free and ICM guidance, the solver.
 * Prints figures; the last line is one JSON object.
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, nativeKernelNames } from '../../src/backend/index.js';
import { blankImage } from '../../src/data/index.js';
import { Sampler, loadCheckpoint } from '../../src/model/index.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/iclevr-default' },
    candidates: { type: 'string', default: '4' },
    steps: { type: 'string', default: '10' },
    guidance: { type: 'string', default: '5' },
    icm: { type: 'string', default: '2' },
    repeats: { type: 'string', default: '5' },
    backend: { type: 'string', default: 'auto' },
    verbose: { type: 'boolean', default: false },
  },
});
const int = (v: string | undefined, name: string, min: number) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}`);
  return n;
};
const candidates = int(values.candidates, 'candidates', 1);
const steps = int(values.steps, 'steps', 2);
const repeats = int(values.repeats, 'repeats', 1);
const guidanceScale = Number(values.guidance);
const icmGuidanceScale = Number(values.icm);

const info = await initBackend(values.backend as 'auto');
const model = await loadCheckpoint(values.model!);
const sampler = new Sampler(model);
const size = model.config.imageSize;
console.log(`${values.model} on ${info.name} (${info.threads} threads), ${candidates} candidates, phi ${guidanceScale}, psi ${icmGuidanceScale}; load average ${loadavg().map((v) => v.toFixed(2)).join(' ')}`);

const request = (seed: number) => ({
  text: 'add a red metal cube in the middle', reference: blankImage(size, size), steps, guidanceScale, icmGuidanceScale,
  seed, candidates, selectAt: 1,
});
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

// Wall time of a step (the second: the first of a fresh state also computes its glimpse's cached x0). The cpu
// backends run kernels synchronously, so the step's work is done when step() returns.
const wall: number[] = [];
for (let r = 0; r < repeats; r++) {
  const state = sampler.prepare(request(r + 1));
  sampler.step([state]);
  const t0 = performance.now();
  sampler.step([state]);
  wall.push(performance.now() - t0);
  state.dispose();
}
const stepMs = median(wall);
console.log(`step: median ${stepMs.toFixed(1)} ms (${wall.map((w) => w.toFixed(0)).join(', ')})`);

// One step profiled kernel by kernel (the cpu backends time every kernel synchronously).
const state = sampler.prepare(request(99));
sampler.step([state]);
const t0 = performance.now();
const prof = await tf.profile(() => {
  sampler.step([state]);
});
const profiledWall = performance.now() - t0;
state.dispose();
// Ops with a custom gradient appear twice (`<op>__op` around the kernel it runs): count the kernel.
const kernels = prof.kernels.filter((k) => !k.name.endsWith('__op'));
const byKernel = new Map<string, { ms: number; calls: number }>();
for (const k of kernels) {
  const e = byKernel.get(k.name) ?? { ms: 0, calls: 0 };
  e.ms += k.kernelTimeMs as number;
  e.calls += 1;
  byKernel.set(k.name, e);
}
const kernelMs = [...byKernel.values()].reduce((a, b) => a + b.ms, 0);
const natives = new Set(nativeKernelNames());
const stockMs = [...byKernel].filter(([k]) => !natives.has(k)).reduce((a, [, v]) => a + v.ms, 0);
const top = [...byKernel].sort((a, b) => b[1].ms - a[1].ms);
console.log(`profiled step: ${profiledWall.toFixed(1)} ms wall, ${kernels.length} kernel calls, kernels ${kernelMs.toFixed(1)} ms ` +
  `(${(100 * kernelMs / profiledWall).toFixed(1)}%; stock tfjs kernels ${stockMs.toFixed(1)} ms), outside kernels ` +
  `${(profiledWall - kernelMs).toFixed(1)} ms (${(100 * (profiledWall - kernelMs) / profiledWall).toFixed(1)}%)`);
console.log(`  heaviest kernels (ms, calls): ${top.slice(0, values.verbose ? 40 : 14).map(([k, v]) => `${k} ${v.ms.toFixed(1)} x${v.calls}`).join(', ')}`);
console.log(JSON.stringify({
  model: values.model, backend: info.name, threads: info.threads, candidates, guidance: guidanceScale, icm: icmGuidanceScale,
  step_ms: Number(stepMs.toFixed(1)), profiled_wall_ms: Number(profiledWall.toFixed(1)), kernel_ms: Number(kernelMs.toFixed(1)),
  stock_kernel_ms: Number(stockMs.toFixed(1)), outside_kernels_share: Number(((profiledWall - kernelMs) / profiledWall).toFixed(3)),
  kernel_calls: kernels.length, load_avg_1m: Number(loadavg()[0].toFixed(2)),
}));
