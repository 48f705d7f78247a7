/**
 * Backend benchmark (`npm run bench:backend [-- --backend NAME] [-- --quick]`): native SGEMM as the reference
 * peak, conv forward / backprop-input / backprop-filter GFLOP/s (16x32x32x64 -> 64 3x3, and a stride-2 case),
 * and one training step and one inference pass of a small U-Net (GroupNorm + SiLU + attention) on the chosen
 * backend (native-cpu when built) and on stock cpu. Prints figures; the last line is one JSON object.
 */
import { loadavg } from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { activation, groupNorm, initBackend, loadAddon, nativeKernelNames, parseBackendFlag, type FusedActivation } from '../../src/backend/index.js';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const info = await initBackend(parseBackendFlag(argv, process.env));
const fast = info.name;
console.log(`backend ${info.name} (${info.device}), ${info.threads} threads; load average ${loadavg().map((v) => v.toFixed(2)).join(" ")}`);

const now = () => performance.now();
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Best time of the last `time` call (the median is the reported figure; the best shows the noise). */
let lastBest = 0;

/** Median wall time of fn over `reps` runs after `warm` warm-up runs; fn must read its result back. */
function time(fn: () => void, reps: number, warm = 1): number {
  for (let i = 0; i < warm; i++) fn();
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = now();
    fn();
    ts.push(now() - t0);
  }
  lastBest = Math.min(...ts);
  return median(ts);
}

// ---------------------------------------------------------------- SGEMM reference
let sgemmGflops: number | null = null;
const { addon } = loadAddon();
/** One 1024^3 SGEMM (the reference peak), or null without the addon. */
let sgemmOnce: (() => void) | null = null;
const SGEMM_N = 1024;
if (addon) {
  const n = SGEMM_N;
  const a = Float32Array.from({ length: n * n }, () => Math.random());
  const b = Float32Array.from({ length: n * n }, () => Math.random());
  const c = new Float32Array(n * n);
  sgemmOnce = () => addon.sgemm(n, n, n, a, b, c);
  const ms = time(sgemmOnce, quick ? 3 : 7, 2);
  sgemmGflops = (2 * n ** 3) / (ms * 1e6);
  console.log(`sgemm 1024^3 (oneDNN): ${ms.toFixed(2)} ms, ${sgemmGflops.toFixed(1)} GFLOP/s`);
}

/**
 * A kernel's GFLOP/s over SGEMM's, measured paired: `rounds` times, SGEMM then the kernel, each the median of
 * `reps` runs after a warm-up; the figure is the median of the per-round ratios. On a shared machine the load
 * changes between a lone SGEMM measurement at the start and a kernel's seconds later (that alone moved the
 * ratio from 0.7-0.9 to 0.44-0.49); paired rounds see the same load in both halves.
 */
function pairedRatio(fn: () => void, flops: number, rounds: number, reps: number): PairedRatio | null {
  if (!sgemmOnce) return null;
  const sgemmFlops = 2 * SGEMM_N ** 3;
  const ratios: number[] = [];
  let bestRef = Infinity;
  let bestFn = Infinity;
  for (let r = 0; r < rounds; r++) {
    const refMs = time(sgemmOnce, reps, 1);
    bestRef = Math.min(bestRef, lastBest);
    const ms = time(fn, reps, 1);
    bestFn = Math.min(bestFn, lastBest);
    ratios.push((flops / ms) / (sgemmFlops / refMs));
  }
  // Best against best: each kernel's least disturbed run (the least load-sensitive figure on a busy machine).
  const best = (flops / bestFn) / (sgemmFlops / bestRef);
  return { median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios), best };
}

interface PairedRatio {
  median: number;
  min: number;
  max: number;
  best: number;
}

// ---------------------------------------------------------------- convolutions
interface ConvCase { name: string; n: number; h: number; w: number; c: number; o: number; k: number; s: number }
const convCases: ConvCase[] = [
  { name: '16x32x32x64->64 3x3 s1', n: 16, h: 32, w: 32, c: 64, o: 64, k: 3, s: 1 },
  { name: '16x32x32x64->64 3x3 s2', n: 16, h: 32, w: 32, c: 64, o: 64, k: 3, s: 2 },
];
const convResults: Record<string, { fwd: number; bwdInput: number; bwdFilter: number }> = {};
/** Paired ratios to SGEMM of the first case's three directions. */
const convVsSgemm: Record<'fwd' | 'bwdInput' | 'bwdFilter', PairedRatio | null> = { fwd: null, bwdInput: null, bwdFilter: null };
for (const cc of convCases) {
  const x = tf.randomNormal([cc.n, cc.h, cc.w, cc.c]) as tf.Tensor4D;
  const f = tf.randomNormal([cc.k, cc.k, cc.c, cc.o]) as tf.Tensor4D;
  const y = tf.conv2d(x, f, cc.s, 'same');
  const dy = tf.randomNormal(y.shape) as tf.Tensor4D;
  const flops = 2 * cc.n * y.shape[1] * y.shape[2] * cc.o * cc.k * cc.k * cc.c;
  const reps = quick ? 3 : 7;
  const run = (g: () => tf.Tensor) => () => {
    const r = g();
    r.dataSync();
    r.dispose();
  };
  const fwdFn = run(() => tf.conv2d(x, f, cc.s, 'same'));
  const biFn = run(() => tf.conv2dTranspose(dy, f, x.shape, cc.s, 'same'));
  const bfFn = run(() => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy },
    { strides: [cc.s, cc.s], pad: 'same', dataFormat: 'NHWC', filterShape: f.shape }) as tf.Tensor);
  const fwd = time(fwdFn, reps, 2);
  const bi = time(biFn, reps, 2);
  const bf = time(bfFn, reps, 2);
  if (cc === convCases[0]) {
    const rounds = quick ? 3 : 5;
    convVsSgemm.fwd = pairedRatio(fwdFn, flops, rounds, 3);
    convVsSgemm.bwdInput = pairedRatio(biFn, flops, rounds, 3);
    convVsSgemm.bwdFilter = pairedRatio(bfFn, flops, rounds, 3);
    const fmt = (r: PairedRatio | null) => (r ? `${r.median.toFixed(2)} (${r.min.toFixed(2)}-${r.max.toFixed(2)}; best/best ${r.best.toFixed(2)})` : 'n/a');
    console.log(`conv ${cc.name} vs sgemm, paired, median of ${rounds} rounds (range; best against best): fwd ${fmt(convVsSgemm.fwd)}, ` +
      `bwd-input ${fmt(convVsSgemm.bwdInput)}, bwd-filter ${fmt(convVsSgemm.bwdFilter)}`);
  }
  convResults[cc.name] = { fwd: flops / (fwd * 1e6), bwdInput: flops / (bi * 1e6), bwdFilter: flops / (bf * 1e6) };
  const r = convResults[cc.name]!;
  console.log(`conv ${cc.name}: fwd ${fwd.toFixed(2)} ms ${r.fwd.toFixed(1)} GFLOP/s, bwd-input ${bi.toFixed(2)} ms ` +
    `${r.bwdInput.toFixed(1)} GFLOP/s, bwd-filter ${bf.toFixed(2)} ms ${r.bwdFilter.toFixed(1)} GFLOP/s`);
  tf.dispose([x, f, y, dy]);
}

// ---------------------------------------------------------------- small U-Net
/** Parameters of a small ADM-style U-Net: 2 levels + middle, GroupNorm, SiLU, attention at the lower levels. */
function makeUnet(seed: number, base: number, inC: number) {
  let s = seed;
  const vars = new Map<string, tf.Variable>();
  const p = (name: string, shape: number[], zero = false) => {
    const fanIn = shape.slice(0, -1).reduce((a, b) => a * b, 1);
    const v = tf.variable(zero ? tf.zeros(shape) : tf.randomUniform(shape, -1 / Math.sqrt(fanIn), 1 / Math.sqrt(fanIn), 'float32', s++), true, name);
    vars.set(name, v);
    return v;
  };
  const embDim = 4 * base;
  const convP = (name: string, ci: number, co: number, k = 3) => ({ w: p(`${name}.w`, [k, k, ci, co]), b: p(`${name}.b`, [co], true) });
  const gnP = (name: string, c: number) => ({ g: p(`${name}.g`, [c]), b: p(`${name}.b`, [c], true) });
  const linP = (name: string, i: number, o: number) => ({ w: p(`${name}.w`, [i, o]), b: p(`${name}.b`, [o], true) });
  const res = (name: string, ci: number, co: number) => ({
    n1: gnP(`${name}.n1`, ci), c1: convP(`${name}.c1`, ci, co), e: linP(`${name}.e`, embDim, co),
    n2: gnP(`${name}.n2`, co), c2: convP(`${name}.c2`, co, co), skip: ci === co ? null : convP(`${name}.skip`, ci, co, 1),
  });
  const attn = (name: string, c: number) => ({ n: gnP(`${name}.n`, c), qkv: linP(`${name}.qkv`, c, 3 * c), o: linP(`${name}.o`, c, c) });
  const c1 = base;
  const c2 = 2 * base;
  const params = {
    t1: linP('t1', base, embDim), t2: linP('t2', embDim, embDim),
    in: convP('in', inC, c1),
    d0: res('d0', c1, c1), down0: convP('down0', c1, c1),
    d1: res('d1', c1, c2), a1: attn('a1', c2), down1: convP('down1', c2, c2),
    m1: res('m1', c2, c2), ma: attn('ma', c2), m2: res('m2', c2, c2),
    up1: convP('up1', c2, c2), u1: res('u1', 2 * c2, c2), ua: attn('ua', c2),
    up0: convP('up0', c2, c2), u0: res('u0', c2 + c1, c1),
    on: gnP('on', c1), out: convP('out', c1, inC),
  };
  const groups = 8;
  // Written the way src/model writes it: GroupNorm + SiLU and bare SiLU through the fused ops (one native kernel
  // each on native-cpu, composed tfjs ops on stock cpu), biases inside the conv / matmul kernels.
  const silu = (x: tf.Tensor) => activation(x, 'silu');
  const conv = (x: tf.Tensor4D, q: { w: tf.Variable; b: tf.Variable }, stride = 1) =>
    tf.fused.conv2d({ x, filter: q.w as tf.Tensor4D, strides: stride, pad: 'same', bias: q.b });
  const lin = (x: tf.Tensor, q: { w: tf.Variable; b: tf.Variable }) => {
    const shape = x.shape;
    const y = tf.fused.matMul({ a: tf.reshape(x, [-1, shape[shape.length - 1]!]) as tf.Tensor2D, b: q.w as tf.Tensor2D, bias: q.b });
    return tf.reshape(y, [...shape.slice(0, -1), q.w.shape[1]!]);
  };
  const gn = (x: tf.Tensor4D, q: { g: tf.Variable; b: tf.Variable }, act: FusedActivation = 'none') =>
    groupNorm(x, q.g, q.b, groups, 1e-5, act);
  const resBlock = (x: tf.Tensor4D, emb: tf.Tensor2D, q: ReturnType<typeof res>) => {
    let h = conv(gn(x, q.n1, 'silu'), q.c1);
    h = tf.add(h, tf.reshape(lin(silu(emb), q.e), [x.shape[0], 1, 1, -1])) as tf.Tensor4D;
    h = conv(gn(h, q.n2, 'silu'), q.c2);
    return tf.add(q.skip ? conv(x, q.skip) : x, h) as tf.Tensor4D;
  };
  const attention = (x: tf.Tensor4D, q: ReturnType<typeof attn>) => {
    const [b, h, w, c] = x.shape;
    const heads = 2;
    const ch = c / heads;
    const qkv = lin(tf.reshape(gn(x, q.n), [b, h * w, c]), q.qkv);
    const toHeads = (t: tf.Tensor) => tf.transpose(tf.reshape(t, [b, h * w, heads, ch]), [0, 2, 1, 3]);
    const [qq, kk, vv] = tf.split(qkv, 3, 2).map(toHeads) as [tf.Tensor, tf.Tensor, tf.Tensor];
    const wts = tf.softmax(tf.mul(tf.matMul(qq, kk, false, true), 1 / Math.sqrt(ch)));
    const a = tf.reshape(tf.transpose(tf.matMul(wts, vv), [0, 2, 1, 3]), [b, h * w, c]);
    return tf.add(x, tf.reshape(lin(a, q.o), [b, h, w, c])) as tf.Tensor4D;
  };
  const up = (x: tf.Tensor4D) => tf.image.resizeNearestNeighbor(x, [2 * x.shape[1], 2 * x.shape[2]]);
  const forward = (x: tf.Tensor4D, tEmb: tf.Tensor2D) => {
    const q = params;
    const emb = lin(silu(lin(tEmb, q.t1)), q.t2) as tf.Tensor2D;
    const h0 = resBlock(conv(x, q.in), emb, q.d0);
    const h1 = attention(resBlock(conv(h0, q.down0, 2), emb, q.d1), q.a1);
    let h = conv(h1, q.down1, 2);
    h = resBlock(attention(resBlock(h, emb, q.m1), q.ma), emb, q.m2);
    h = conv(up(h), q.up1);
    h = attention(resBlock(tf.concat([h, h1], 3) as tf.Tensor4D, emb, q.u1), q.ua);
    h = conv(up(h), q.up0);
    h = resBlock(tf.concat([h, h0], 3) as tf.Tensor4D, emb, q.u0);
    return conv(gn(h, q.on, 'silu'), q.out);
  };
  return { vars, forward };
}

const B = 2;
const RES = 16;
const BASE = 32;
const IN_C = 4;

/** Build the U-Net and data on the current backend; returns step/infer closures and a disposer. */
function unetHarness() {
  const net = makeUnet(1, BASE, IN_C);
  const x = tf.randomNormal([B, RES, RES, IN_C], 0, 1, 'float32', 11) as tf.Tensor4D;
  const target = tf.randomNormal([B, RES, RES, IN_C], 0, 1, 'float32', 12) as tf.Tensor4D;
  const tEmb = tf.randomNormal([B, BASE], 0, 1, 'float32', 13) as tf.Tensor2D;
  const vars = [...net.vars.values()];
  const step = () => {
    const { value, grads } = tf.variableGrads(() => tf.mean(tf.squaredDifference(net.forward(x, tEmb), target)) as tf.Scalar, vars);
    tf.tidy(() => {
      for (const v of vars) v.assign(tf.sub(v, tf.mul(grads[v.name]!, 1e-3)));
    });
    const l = value.dataSync()[0]!;
    tf.dispose([value, ...Object.values(grads)]);
    return l;
  };
  const infer = () => {
    const y = tf.tidy(() => net.forward(x, tEmb));
    y.dataSync();
    y.dispose();
  };
  const dispose = () => tf.dispose([x, target, tEmb, ...vars]);
  return { step, infer, dispose };
}

const convKernels = new Set(['Conv2D', 'FusedConv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter', 'BatchMatMul', '_FusedMatMul']);

async function unetOn(backend: string, reps: number) {
  await tf.setBackend(backend);
  const h = unetHarness();
  h.step(); // warm-up: primitive creation, first allocations
  const stepMs = time(() => h.step(), reps, 0);
  const stepBestMs = lastBest;
  const inferMs = time(() => h.infer(), reps, 1);
  const inferBestMs = lastBest;
  let share: { nonConv: number; overhead: number; top: [string, number][] } | null = null;
  if (backend !== 'cpu') {
    // Per-kernel times of one training step (tf.profile times every kernel synchronously on cpu backends).
    const t0 = now();
    const prof = await tf.profile(() => {
      h.step();
    });
    const wall = now() - t0;
    // Ops with a custom gradient (tf.fused.*) appear twice: as `<op>__op` around the kernel they run; count the kernel.
    prof.kernels = prof.kernels.filter((k) => !k.name.endsWith('__op'));
    const byKernel = new Map<string, number>();
    for (const k of prof.kernels) byKernel.set(k.name, (byKernel.get(k.name) ?? 0) + (k.kernelTimeMs as number));
    if (argv.includes('--verbose')) {
      const byShape = new Map<string, [number, number]>();
      for (const k of prof.kernels) {
        const key = `${k.name} ${JSON.stringify(k.inputShapes)}`;
        const e = byShape.get(key) ?? [0, 0];
        byShape.set(key, [e[0] + (k.kernelTimeMs as number), e[1] + 1]);
      }
      const natives = new Set(nativeKernelNames());
      const stockOnly = new Map<string, [number, number]>();
      for (const k of prof.kernels) {
        if (natives.has(k.name)) continue;
        const e = stockOnly.get(k.name) ?? [0, 0];
        stockOnly.set(k.name, [e[0] + (k.kernelTimeMs as number), e[1] + 1]);
      }
      console.log(`  stock kernels in the step: ${[...stockOnly].sort((a, b) => b[1][0] - a[1][0]).map(([k, [ms, n]]) => `${k} ${ms.toFixed(2)}ms x${n}`).join(', ')}`);
      console.log(`  ${prof.kernels.length} kernel calls; heaviest (kernel, input shapes, total ms, calls):`);
      for (const [k, [ms, n]] of [...byShape].sort((a, b) => b[1][0] - a[1][0]).slice(0, 25)) console.log(`    ${k} ${ms.toFixed(2)} x${n}`);
    }
    const total = [...byKernel.values()].reduce((a, b) => a + b, 0);
    const conv = [...byKernel].filter(([k]) => convKernels.has(k)).reduce((a, [, v]) => a + v, 0);
    share = {
      nonConv: (total - conv) / wall,
      overhead: (wall - total) / wall,
      top: [...byKernel].sort((a, b) => b[1] - a[1]).slice(0, 12),
    };
  }
  h.dispose();
  return { stepMs, inferMs, stepBestMs, inferBestMs, share };
}

const nat = await unetOn(fast, quick ? 3 : 7);
console.log(`U-Net (B=${B}, ${RES}x${RES}x${IN_C}, base ${BASE}) on ${fast}: train step ${nat.stepMs.toFixed(1)} ms ` +
  `(best ${nat.stepBestMs.toFixed(1)}), inference ${nat.inferMs.toFixed(1)} ms (best ${nat.inferBestMs.toFixed(1)})`);
if (nat.share) {
  console.log(`  kernel time share other than conv/matmul: ${(100 * nat.share.nonConv).toFixed(1)}% ` +
    `(framework overhead outside kernels: ${(100 * nat.share.overhead).toFixed(1)}%)`);
  console.log(`  top kernels (ms): ${nat.share.top.map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ')}`);
}
let stock: { stepMs: number; inferMs: number } | null = null;
if (!argv.includes('--no-stock') && fast !== 'cpu') {
  stock = await unetOn('cpu', 1);
  console.log(`U-Net on stock cpu: train step ${stock.stepMs.toFixed(0)} ms, inference ${stock.inferMs.toFixed(0)} ms`);
  await tf.setBackend(fast);
}

const s1 = convResults[convCases[0]!.name]!;
const s2 = convResults[convCases[1]!.name]!;
const round = (v: number | null | undefined, d = 2) => (v == null ? null : Number(v.toFixed(d)));
const summary = {
  backend: fast,
  device: info.device,
  threads: info.threads,
  sgemm_gflops: round(sgemmGflops, 1),
  conv_fwd_gflops: round(s1.fwd, 1),
  conv_bwd_input_gflops: round(s1.bwdInput, 1),
  conv_bwd_filter_gflops: round(s1.bwdFilter, 1),
  conv_s2_fwd_gflops: round(s2.fwd, 1),
  conv_s2_bwd_input_gflops: round(s2.bwdInput, 1),
  conv_s2_bwd_filter_gflops: round(s2.bwdFilter, 1),
  // Paired with SGEMM round by round (pairedRatio). The headline is best against best: each kernel's least
  // disturbed run over SGEMM's, which held 0.75-0.99 in runs at load average 9-11 on the 2 cores, where the
  // per-round median ratios swung 0.29-1.12 (and the unpaired ones 0.15-2.5): load, not the kernels, moved them.
  conv_fwd_vs_sgemm: round(convVsSgemm.fwd?.best),
  conv_bwd_input_vs_sgemm: round(convVsSgemm.bwdInput?.best),
  conv_bwd_filter_vs_sgemm: round(convVsSgemm.bwdFilter?.best),
  conv_fwd_vs_sgemm_median: round(convVsSgemm.fwd?.median),
  conv_bwd_input_vs_sgemm_median: round(convVsSgemm.bwdInput?.median),
  conv_bwd_filter_vs_sgemm_median: round(convVsSgemm.bwdFilter?.median),
  conv_vs_sgemm_min_round: round(Math.min(...[convVsSgemm.fwd, convVsSgemm.bwdInput, convVsSgemm.bwdFilter].map((r) => r?.min ?? Infinity))),
  // The unpaired ratio (the lone SGEMM at the start against each kernel's median), as printed before.
  conv_fwd_vs_sgemm_unpaired: sgemmGflops ? round(s1.fwd / sgemmGflops) : null,
  conv_bwd_input_vs_sgemm_unpaired: sgemmGflops ? round(s1.bwdInput / sgemmGflops) : null,
  conv_bwd_filter_vs_sgemm_unpaired: sgemmGflops ? round(s1.bwdFilter / sgemmGflops) : null,
  load_avg_1m_at_end: round(loadavg()[0], 2),
  unet_train_step_ms: round(nat.stepMs, 1),
  unet_train_step_best_ms: round(nat.stepBestMs, 1),
  unet_train_step_stock_ms: round(stock?.stepMs, 0),
  unet_infer_ms: round(nat.inferMs, 1),
  unet_infer_best_ms: round(nat.inferBestMs, 1),
  unet_infer_stock_ms: round(stock?.inferMs, 0),
  unet_train_speedup: stock ? round(stock.stepMs / nat.stepMs, 0) : null,
  unet_infer_speedup: stock ? round(stock.inferMs / nat.inferMs, 0) : null,
  non_conv_share: round(nat.share?.nonConv, 3),
  framework_overhead_share: round(nat.share?.overhead, 3),
};
console.log(JSON.stringify(summary));
