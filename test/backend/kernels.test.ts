/**
 * Every native kernel agrees with the stock cpu kernel, forward and through tf.grads, on randomised
 * shapes, strides, paddings, broadcasts and axes.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { compareBackends, int, nativeActive, pick, randInput, rng, type Input } from './helpers.js';

const d = nativeActive() ? describe : describe.skip;

beforeAll(async () => {
  await tf.setBackend('native-cpu');
});

d('native convolutions match stock cpu', () => {
  it('Conv2D, Conv2DBackpropInput and Conv2DBackpropFilter on random geometries', async () => {
    const r = rng(1);
    for (let i = 0; i < 8; i++) {
      const n = int(r, 1, 2), h = int(r, 3, 9), w = int(r, 3, 9), c = int(r, 1, 5), o = int(r, 1, 6);
      const k = pick(r, [1, 2, 3, 5].filter((v) => v <= Math.min(h, w)));
      const s = int(r, 1, 3);
      const pad = pick(r, ['same', 'valid', 'explicit'] as const);
      const padArg: 'same' | 'valid' | [[0, 0], [number, number], [number, number], [0, 0]] =
        pad === 'explicit' ? [[0, 0], [int(r, 0, 2), int(r, 0, 2)], [int(r, 0, 2), int(r, 0, 2)], [0, 0]] : pad;
      const what = `conv ${[n, h, w, c]} k${k} o${o} s${s} ${JSON.stringify(padArg)}`;
      await compareBackends(what, (x, f) => tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, s, padArg),
        [randInput(r, [n, h, w, c]), randInput(r, [k, k, c, o])],
        { grads: true, kernels: ['Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter'], seed: i });
    }
  });

  it('dilated and rectangular-stride forward convolutions', async () => {
    const r = rng(2);
    for (let i = 0; i < 4; i++) {
      const dil = int(r, 2, 3);
      const x = randInput(r, [int(r, 1, 2), int(r, 7, 11), int(r, 7, 11), int(r, 1, 4)]);
      const f = randInput(r, [int(r, 1, 3), int(r, 1, 3), x.shape[3]!, int(r, 1, 4)]);
      const pad = pick(r, ['same', 'valid'] as const);
      await compareBackends(`dilated conv d${dil} ${pad}`, (a, b) => tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, pad, 'NHWC', dil),
        [x, f], { kernels: ['Conv2D'] });
    }
    // Above the single-thread cut-off (4 MFLOP): the multi-threaded oneDNN primitives, all three directions.
    await compareBackends('threaded conv', (a, b) => tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same'),
      [randInput(r, [2, 16, 16, 32]), randInput(r, [3, 3, 32, 32])], { grads: true, kernels: ['Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter'] });
    await compareBackends('stride [1,2]', (a, b) => tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, [1, 2], 'same'),
      [randInput(r, [2, 6, 9, 3]), randInput(r, [3, 2, 3, 4])], { grads: true, kernels: ['Conv2D'] });
  });

  it('FusedConv2D with bias and each activation, and its gradients', async () => {
    const r = rng(3);
    for (const act of ['linear', 'relu', 'relu6', 'elu', 'sigmoid', 'leakyrelu', 'prelu'] as const) {
      const x = randInput(r, [2, 6, 7, 3]);
      const f = randInput(r, [3, 3, 3, 4]);
      const bias = randInput(r, [4]);
      const alpha = randInput(r, [4], 0.05, 0.3);
      await compareBackends(`fused conv ${act}`, (a, b, c, p) => tf.fused.conv2d({
        x: a as tf.Tensor4D, filter: b as tf.Tensor4D, strides: 1, pad: 'same', bias: c, activation: act,
        preluActivationWeights: p, leakyreluAlpha: 0.1,
      }), act === 'prelu' ? [x, f, bias, alpha] : [x, f, bias], { grads: act === 'linear' || act === 'relu', kernels: ['FusedConv2D'] });
    }
  });
});

d('native matmul matches stock cpu', () => {
  it('BatchMatMul with random ranks, broadcast batches and transposes', async () => {
    const r = rng(4);
    for (let i = 0; i < 10; i++) {
      const m = int(r, 1, 9), k = int(r, 1, 9), n = int(r, 1, 9);
      const tA = r() < 0.5, tB = r() < 0.5;
      const rank = int(r, 2, 4);
      const batch = Array.from({ length: rank - 2 }, () => int(r, 1, 3));
      const bA = r() < 0.3 ? batch.map(() => 1) : batch;
      const bB = r() < 0.3 && bA !== batch ? batch : r() < 0.3 ? batch.map(() => 1) : batch;
      const a = randInput(r, [...bA, ...(tA ? [k, m] : [m, k])]);
      const b = randInput(r, [...bB, ...(tB ? [n, k] : [k, n])]);
      // tfjs-core's BatchMatMul gradient does not reduce broadcast batch dims: gradients only without broadcast.
      const broadcast = bA.join() !== bB.join();
      await compareBackends(`matmul ${a.shape} x ${b.shape} tA${tA} tB${tB}`, (x, y) => tf.matMul(x!, y!, tA, tB), [a, b],
        { grads: !broadcast, kernels: ['BatchMatMul'], seed: i });
    }
  });

  it('large batched matmul (multi-threaded primitive) forward and backward', async () => {
    const r = rng(41);
    await compareBackends('threaded matmul', (x, y) => tf.matMul(x!, y!, false, true), [randInput(r, [2, 128, 96]), randInput(r, [2, 160, 96])],
      { grads: true, kernels: ['BatchMatMul'] });
  });

  it('_FusedMatMul with vector and matrix bias and activations', async () => {
    const r = rng(5);
    for (const [act, biasShape] of [['linear', [5]], ['relu', [5]], ['sigmoid', [1, 5]], ['elu', [4, 5]], ['prelu', [5]], ['leakyrelu', [5]]] as const) {
      const inputs = [randInput(r, [4, 3]), randInput(r, [3, 5]), randInput(r, [...biasShape])];
      if (act === 'prelu') inputs.push(randInput(r, [5], 0.1, 0.3));
      await compareBackends(`fused matmul ${act} bias ${biasShape}`, (a, b, c, p) => tf.fused.matMul({
        a: a as tf.Tensor2D, b: b as tf.Tensor2D, bias: c, activation: act, leakyreluAlpha: 0.15, preluActivationWeights: p,
      }), inputs,
      { grads: act === 'linear' || act === 'relu', kernels: ['_FusedMatMul'] });
    }
  });
});

/** A random pair of broadcast-compatible shapes. */
function broadcastPair(r: () => number): [number[], number[]] {
  const rank = int(r, 0, 4);
  const full = Array.from({ length: rank }, () => int(r, 1, 5));
  const a = full.map((d) => (r() < 0.3 ? 1 : d));
  const b = full.map((d) => (r() < 0.3 ? 1 : d));
  return [a.slice(int(r, 0, Math.min(1, rank))), b.slice(int(r, 0, Math.min(2, rank)))];
}

d('native elementwise ops match stock cpu', () => {
  it('broadcasting binary ops forward and backward', async () => {
    const r = rng(6);
    const ops: Array<[string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor, number]> = [
      ['Add', tf.add, -1], ['Sub', tf.sub, -1], ['Multiply', tf.mul, -1], ['RealDiv', tf.div, 0.5],
      ['SquaredDifference', tf.squaredDifference, -1], ['Maximum', tf.maximum, -1], ['Minimum', tf.minimum, -1],
      ['Pow', tf.pow, 0.5],
    ];
    for (const [name, op, lo] of ops) {
      for (let i = 0; i < 4; i++) {
        const same = Array.from({ length: int(r, 1, 3) }, () => int(r, 1, 5));
        const [sa, sb] = i === 0 ? [same, same] : broadcastPair(r);
        // tfjs-core's SquaredDifference/Maximum/Minimum gradients do not reduce broadcast dims: gradients only for
        // equal shapes there.
        const grads = !['SquaredDifference', 'Maximum', 'Minimum'].includes(name) || sa.join() === sb.join();
        await compareBackends(`${name} ${JSON.stringify(sa)} ${JSON.stringify(sb)}`, (a, b) => op(a!, b!),
          [randInput(r, sa, lo === -1 ? -2 : lo, 2), randInput(r, sb, lo === -1 ? -2 : lo, 2)],
          { grads, kernels: [name], seed: i });
      }
    }
  });

  it('a large broadcast (rows x bias, outer broadcast) exercises the threaded path', async () => {
    const r = rng(7);
    await compareBackends('add bias', (a, b) => tf.add(a!, b!), [randInput(r, [64, 48, 48]), randInput(r, [48])], { kernels: ['Add'] });
    await compareBackends('mul outer', (a, b) => tf.mul(a!, b!), [randInput(r, [8, 1, 64, 128]), randInput(r, [8, 3, 1, 128])], { kernels: ['Multiply'] });
  });

  it('unary ops and activations forward and backward', async () => {
    const r = rng(8);
    const ops: Array<[string, (x: tf.Tensor) => tf.Tensor, number, number, boolean]> = [
      ['Neg', tf.neg, -3, 3, true], ['Exp', tf.exp, -3, 3, true], ['Log', tf.log, 0.1, 3, true],
      ['Sqrt', tf.sqrt, 0.1, 3, true], ['Rsqrt', tf.rsqrt, 0.1, 3, true], ['Square', tf.square, -3, 3, true],
      ['Abs', tf.abs, -3, 3, true], ['Sigmoid', tf.sigmoid, -6, 6, true], ['Tanh', tf.tanh, -3, 3, true],
      ['Relu', tf.relu, -3, 3, true], ['Relu6', tf.relu6, -3, 9, true], ['Elu', tf.elu, -3, 3, true],
      ['LeakyRelu', (x) => tf.leakyRelu(x, 0.13), -3, 3, true], ['Step', (x) => tf.step(x, 0.25), -3, 3, false],
      ['Erf', tf.erf, -3, 3, true], ['Sin', tf.sin, -3, 3, true], ['Cos', tf.cos, -3, 3, true],
      ['Reciprocal', tf.reciprocal, 0.2, 3, true], ['Log1p', tf.log1p, -0.5, 3, true], ['Expm1', tf.expm1, -3, 3, true],
      ['Softplus', tf.softplus, -20, 20, true], ['ClipByValue', (x) => tf.clipByValue(x, -0.5, 0.7), -2, 2, true],
      ['Sign', tf.sign, -3, 3, false], ['Floor', tf.floor, -3, 3, false], ['Ceil', tf.ceil, -3, 3, false],
      ['Selu', tf.selu, -3, 3, true],
    ];
    for (const [name, op, lo, hi, grads] of ops) {
      const shape = Array.from({ length: int(r, 1, 3) }, () => int(r, 1, 7));
      await compareBackends(name, (x) => op(x!), [randInput(r, shape, lo, hi)], { grads, kernels: [name] });
    }
    // Large enough for the OpenMP path.
    await compareBackends('Sigmoid large', (x) => tf.sigmoid(x!), [randInput(r, [400, 400], -5, 5)], { grads: true, kernels: ['Sigmoid'] });
  });

  it('the vectorised exp and tanh (Exp, Sigmoid, Softmax, Tanh) are accurate over the whole float range', async () => {
    await tf.setBackend('native-cpu');
    const xs: number[] = [NaN, Infinity, -Infinity, 0, -0, 88.7, 88.72, 88.73, 89, -87.3, -88, -100, -103.9, -104, -110];
    for (let v = -104; v <= 88.7; v += 0.0137) xs.push(v);
    const x = tf.tensor1d(xs);
    const e = tf.exp(x).dataSync();
    const sg = tf.sigmoid(x).dataSync();
    const th = tf.tanh(tf.div(x, 10)).dataSync();
    const x10 = tf.div(x, 10).dataSync();
    x.dispose();
    xs.forEach((v0, i) => {
      const v = Math.fround(v0); // the float32 the kernel saw
      const want = Math.fround(Math.exp(v));
      const got = e[i]!;
      if (Number.isNaN(want)) expect(got).toBeNaN();
      else if (!Number.isFinite(want)) expect(got, `exp(${v})`).toBe(want);
      else if (want < 1.2e-38) expect(Math.abs(got - want), `exp(${v}) (subnormal)`).toBeLessThanOrEqual(6e-45);
      else expect(Math.abs(got - want) / want, `exp(${v})`).toBeLessThan(5e-7);
      const s = 1 / (1 + Math.exp(-v));
      if (Number.isNaN(s)) expect(sg[i]).toBeNaN();
      else expect(Math.abs(sg[i]! - s), `sigmoid(${v})`).toBeLessThan(1e-7 + 5e-7 * s);
      const t = Math.tanh(x10[i]!);
      if (Number.isNaN(t)) expect(th[i]).toBeNaN();
      else expect(Math.abs(th[i]! - t), `tanh(${x10[i]})`).toBeLessThan(1e-7 + 5e-7 * Math.abs(t));
    });
  });

  it('NaN propagates like the stock kernels', async () => {
    const values = Float32Array.from([NaN, 1, -2, 3]);
    await compareBackends('max NaN', (a, b) => [tf.maximum(a!, b!), tf.minimum(a!, b!), tf.relu(a!), tf.step(a!), tf.max(a!)],
      [{ shape: [4], values }, { shape: [4], values: Float32Array.from([0, NaN, 0, 0]) }]);
  });

  it('AddN of several tensors (and as gradient accumulation)', async () => {
    const r = rng(9);
    await compareBackends('addN', (a, b, c) => tf.addN([a!, b!, c!]), [randInput(r, [3, 4]), randInput(r, [3, 4]), randInput(r, [3, 4])],
      { grads: true, kernels: ['AddN'] });
  });
});

d('native reductions and softmax match stock cpu', () => {
  it('Sum, Mean, Max, Min, Prod over random axes with and without keepDims', async () => {
    const r = rng(10);
    const ops: Array<[string, (x: tf.Tensor, axes: number[], keep: boolean) => tf.Tensor, boolean]> = [
      ['Sum', tf.sum, true], ['Mean', tf.mean, true], ['Max', tf.max, true], ['Min', tf.min, true], ['Prod', tf.prod, false],
    ];
    for (const [name, op, grads] of ops) {
      for (let i = 0; i < 5; i++) {
        const shape = Array.from({ length: int(r, 1, 4) }, () => int(r, 1, 6));
        const axes = shape.map((_, k) => k).filter(() => r() < 0.5);
        if (axes.length === 0) axes.push(int(r, 0, shape.length - 1));
        const keep = r() < 0.5;
        await compareBackends(`${name} ${shape} axes ${axes} keep ${keep}`, (x) => op(x!, axes, keep),
          [randInput(r, shape, name === 'Prod' ? 0.5 : -2, name === 'Prod' ? 1.5 : 2)], { grads, kernels: [name], seed: i });
      }
    }
  });

  it('long reductions (bias gradient and GroupNorm moments shapes) stay accurate', async () => {
    const r = rng(11);
    await compareBackends('sum rows', (x) => tf.sum(x!, 0), [randInput(r, [20000, 16])], { kernels: ['Sum'] });
    await compareBackends('mean inner', (x) => tf.mean(x!, [1, 3], true), [randInput(r, [2, 4096, 4, 8])], { kernels: ['Mean'] });
    await compareBackends('sum all', (x) => tf.sum(x!), [randInput(r, [300000])], { kernels: ['Sum'] });
    // Each reduction layout: long kept inner rows (bias gradients), long reduced inner rows, short runs.
    await compareBackends('bias grad', (x) => tf.sum(x!, [0, 1, 2]), [randInput(r, [4, 16, 16, 64])], { kernels: ['Sum'] });
    await compareBackends('max kept rows', (x) => tf.max(x!, 1), [randInput(r, [64, 40, 48])], { kernels: ['Max'] });
    await compareBackends('min reduced rows', (x) => tf.min(x!, -1), [randInput(r, [300, 100])], { kernels: ['Min'] });
    await compareBackends('mean reduced rows, threads', (x) => tf.mean(x!, [0, 2]), [randInput(r, [3, 400, 500])], { kernels: ['Mean'] });
    await compareBackends('sum kept rows, threads', (x) => tf.sum(x!, 0), [randInput(r, [600, 400])], { kernels: ['Sum'] });
    await compareBackends('sum short runs, threads', (x) => tf.sum(x!, [1, 3]), [randInput(r, [16, 4096, 4, 8])], { kernels: ['Sum'] });
  });

  it('Softmax forward and backward', async () => {
    const r = rng(12);
    for (const shape of [[7], [3, 5], [2, 4, 33], [64, 129]]) {
      await compareBackends(`softmax ${shape}`, (x) => tf.softmax(x!), [randInput(r, shape, -5, 5)], { grads: true, kernels: ['Softmax'] });
    }
  });
});

d('native data movement matches stock cpu', () => {
  it('Transpose with random permutations', async () => {
    const r = rng(13);
    for (let i = 0; i < 10; i++) {
      const rank = int(r, 2, 5);
      const shape = Array.from({ length: rank }, () => int(r, 1, 6));
      const perm = shape.map((_, k) => k).sort(() => r() - 0.5);
      await compareBackends(`transpose ${shape} ${perm}`, (x) => tf.transpose(x!, perm), [randInput(r, shape)], { grads: true, seed: i });
    }
    await compareBackends('transpose big 2d', (x) => tf.transpose(x!), [randInput(r, [520, 300])], { kernels: ['Transpose'] });
    await compareBackends('attention heads', (x) => tf.transpose(x!, [0, 2, 1, 3]), [randInput(r, [2, 64, 4, 16])], { kernels: ['Transpose'] });
  });

  it('Slice, SplitV and Concat on random axes', async () => {
    const r = rng(14);
    for (let i = 0; i < 8; i++) {
      const rank = int(r, 1, 4);
      const shape = Array.from({ length: rank }, () => int(r, 2, 6));
      const begin = shape.map((s) => int(r, 0, s - 1));
      const size = shape.map((s, k) => int(r, 1, s - begin[k]!));
      await compareBackends(`slice ${shape} ${begin} ${size}`, (x) => tf.slice(x!, begin, size), [randInput(r, shape)], { grads: true, seed: i });
      const axis = int(r, 0, rank - 1);
      const first = int(r, 1, shape[axis]! - 1);
      await compareBackends(`split ${shape} axis ${axis}`, (x) => tf.split(x!, [first, shape[axis]! - first], axis), [randInput(r, shape)],
        { grads: true, kernels: ['SplitV'], seed: i });
      const others: Input[] = [randInput(r, shape), randInput(r, shape.map((s, k) => (k === axis ? int(r, 1, 4) : s))), randInput(r, shape)];
      await compareBackends(`concat ${shape} axis ${axis}`, (a, b, c) => tf.concat([a!, b!, c!], axis), others,
        { grads: true, kernels: ['Concat'], seed: i });
    }
    await compareBackends('big concat', (a, b) => tf.concat([a!, b!], 1), [randInput(r, [300, 256]), randInput(r, [300, 300])], { kernels: ['Concat'] });
    await compareBackends('big slice', (a) => tf.slice(a!, [0, 7], [512, 300]), [randInput(r, [512, 400])], { kernels: ['Slice'] });
    // A non-contiguous slice must copy through the native kernel.
    await compareBackends('strided slice', (x) => tf.slice(x!, [0, 1, 2], [3, 2, 3]), [randInput(r, [3, 4, 6])], { kernels: ['Slice'] });
  });

  it('Tile with random reps', async () => {
    const r = rng(19);
    for (let i = 0; i < 5; i++) {
      const shape = Array.from({ length: int(r, 1, 4) }, () => int(r, 1, 4));
      const reps = shape.map(() => int(r, 1, 3));
      await compareBackends(`tile ${shape} x ${reps}`, (x) => tf.tile(x!, reps), [randInput(r, shape)], { grads: true, kernels: ['Tile'], seed: i });
    }
    await compareBackends('tile big', (x) => tf.tile(x!, [1, 300, 2]), [randInput(r, [4, 1, 200])], { kernels: ['Tile'] });
  });

  it('UnsortedSegmentSum (the embedding gradient) with repeated and out-of-range ids', async () => {
    const r = rng(20);
    const ids = { shape: [15], values: Float32Array.from([0, 2, 2, 7, 1, 0, 0, -1, 9, 3, 3, 3, 8, 2, 0]), dtype: 'int32' as const };
    await compareBackends('unsortedSegmentSum', (x, s) => tf.unsortedSegmentSum(x!, s as tf.Tensor1D, 9),
      [randInput(r, [15, 4]), ids], { kernels: ['UnsortedSegmentSum'] });
    // Through the gradient of an embedding lookup (Gather).
    const tokens = { shape: [2, 6], values: Float32Array.from([1, 4, 4, 0, 9, 9, 2, 2, 2, 5, 11, 0]), dtype: 'int32' as const };
    await compareBackends('embedding grad', (table, t) => tf.grad((w: tf.Tensor) => tf.sum(tf.square(tf.gather(w, t!))))(table!),
      [randInput(r, [12, 8]), tokens], { kernels: ['UnsortedSegmentSum', 'GatherV2'] });
    await compareBackends('gather rows', (table, t) => tf.gather(table!, t!), [randInput(r, [12, 3, 5]), tokens], { kernels: ['GatherV2'] });
    // A bad index reaches the stock kernel, which reports it.
    await tf.setBackend('native-cpu');
    const table = tf.zeros([4, 2]);
    const bad = tf.tensor1d([1, 7], 'int32');
    expect(() => tf.gather(table, bad)).toThrow(/index value 7/);
    tf.dispose([table, bad]);
    // Other axes go to the stock kernel.
    await compareBackends('gather axis 1', (table, t) => tf.gather(table!, t!, 1), [randInput(r, [3, 12, 2]), tokens]);
  });

  it('PadV2 with random paddings and constant', async () => {
    const r = rng(15);
    for (let i = 0; i < 4; i++) {
      const shape = Array.from({ length: int(r, 1, 4) }, () => int(r, 1, 5));
      const pads = shape.map(() => [int(r, 0, 2), int(r, 0, 2)] as [number, number]);
      await compareBackends(`pad ${shape} ${JSON.stringify(pads)}`, (x) => tf.pad(x!, pads, 0.5), [randInput(r, shape)], { grads: true, kernels: ['PadV2'], seed: i });
    }
  });
});

d('native resize ops', () => {
  it('ResizeBilinear and ResizeNearestNeighbor forward match stock for every corner mode', async () => {
    const r = rng(16);
    for (const [align, half] of [[false, false], [true, false], [false, true]] as const) {
      for (let i = 0; i < 3; i++) {
        const x = randInput(r, [int(r, 1, 2), int(r, 2, 7), int(r, 2, 7), int(r, 1, 4)]);
        const size: [number, number] = [int(r, 1, 12), int(r, 1, 12)];
        await compareBackends(`bilinear ${x.shape} -> ${size} a${align} h${half}`, (t) => tf.image.resizeBilinear(t as tf.Tensor4D, size, align, half), [x], { kernels: ['ResizeBilinear'] });
        await compareBackends(`nearest ${x.shape} -> ${size} a${align} h${half}`, (t) => tf.image.resizeNearestNeighbor(t as tf.Tensor4D, size, align, half), [x], { kernels: ['ResizeNearestNeighbor'] });
      }
    }
  });

  it('resize gradients match stock where the stock gradient is exact', async () => {
    const r = rng(17);
    for (const align of [false, true]) {
      // The stock bilinear gradient returns [batch, width, height, depth]: only square images compare.
      for (const [h, w, oh, ow] of [[4, 4, 8, 8], [5, 5, 2, 7], [6, 6, 3, 3]]) {
        const x = randInput(r, [2, h!, w!, 3]);
        await compareBackends(`bilinear grad ${h}x${w}->${oh}x${ow} a${align}`, (t) => tf.image.resizeBilinear(t as tf.Tensor4D, [oh!, ow!], align), [x],
          { grads: true, kernels: ['ResizeBilinearGrad'] });
        // The stock nearest-neighbour gradient indexes dy with the image's batch stride: exact only for batch 1.
        const x1 = randInput(r, [1, h!, w!, 3]);
        await compareBackends(`nearest grad ${h}x${w}->${oh}x${ow} a${align}`, (t) => tf.image.resizeNearestNeighbor(t as tf.Tensor4D, [oh!, ow!], align), [x1],
          { grads: true, kernels: ['ResizeNearestNeighborGrad'] });
      }
    }
  });

  it('resize gradients are the adjoint of the forward pass in every mode (incl. halfPixelCenters)', async () => {
    // <resize(x), dy> == <x, grad(dy)> for a linear map; the stock grad kernels ignore halfPixelCenters.
    await tf.setBackend('native-cpu');
    const r = rng(18);
    for (const kind of ['bilinear', 'nearest'] as const) {
      for (const [align, half] of [[false, false], [true, false], [false, true]] as const) {
        const xs = randInput(r, [2, 5, 6, 3]);
        const xShape = xs.shape as [number, number, number, number];
        const size: [number, number] = [int(r, 2, 11), int(r, 2, 11)];
        const dys = randInput(r, [2, ...size, 3]);
        const [lhs, rhs] = tf.tidy(() => {
          const x = tf.tensor4d(xs.values, xShape);
          const dy = tf.tensor(dys.values, dys.shape);
          const f = (t: tf.Tensor) => kind === 'bilinear'
            ? tf.image.resizeBilinear(t as tf.Tensor4D, size, align, half)
            : tf.image.resizeNearestNeighbor(t as tf.Tensor4D, size, align, half);
          const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(f(t), dy)))(x);
          return [tf.sum(tf.mul(f(x), dy)).dataSync()[0]!, tf.sum(tf.mul(x, g)).dataSync()[0]!];
        });
        const tol = 1e-4 * Math.max(1, Math.abs(lhs));
        if (Math.abs(lhs - rhs) > tol) throw new Error(`${kind} a${align} h${half}: <Ax,dy>=${lhs} <x,A'dy>=${rhs}`);
      }
    }
  });
});
