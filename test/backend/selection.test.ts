/** Backend selection, configuration parsing, and the stock-kernel fallback of native-cpu. */
import * as tf from '@tensorflow/tfjs-core';
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { backendInfo, fallbackCounts, initBackend, loadAddon, nativeKernelNames, parseBackendFlag } from '../../src/backend/index.js';
import { compareBackends, nativeActive, randInput, rng } from './helpers.js';

describe('parseBackendFlag', () => {
  it('reads --backend NAME and --backend=NAME, the flag winning over TENSOR_BACKEND', () => {
    expect(parseBackendFlag(['node', 'cli', '--backend', 'cpu'], { TENSOR_BACKEND: 'native-cpu' })).toBe('cpu');
    expect(parseBackendFlag(['--backend=tensorflow'], {})).toBe('tensorflow');
    expect(parseBackendFlag(['--steps', '3'], { TENSOR_BACKEND: 'native-cpu' })).toBe('native-cpu');
  });
  it('defaults to auto and rejects unknown names', () => {
    expect(parseBackendFlag([], {})).toBe('auto');
    expect(parseBackendFlag([], { TENSOR_BACKEND: '' })).toBe('auto');
    expect(() => parseBackendFlag(['--backend', 'gpu'], {})).toThrow(/unknown backend "gpu"/);
    expect(() => parseBackendFlag([], { TENSOR_BACKEND: 'webgl' })).toThrow(/unknown backend/);
  });
});

describe('initBackend', () => {
  it('is idempotent and reports the active backend, device and thread count', async () => {
    const a = await initBackend();
    const b = await initBackend('cpu'); // a later, different preference is ignored
    expect(b).toBe(a);
    expect(backendInfo()).toBe(a);
    expect(['tensorflow', 'native-cpu', 'cpu']).toContain(a.name);
    expect(a.threads).toBeGreaterThanOrEqual(1);
    expect(a.device.length).toBeGreaterThan(0);
  });

  it('picks native-cpu when the addon is built and neither tfjs-node package is installed', async () => {
    const tfjsNode = await Promise.any([import('@tensorflow/tfjs-node-gpu' as string), import('@tensorflow/tfjs-node' as string)])
      .then(() => true, () => false);
    const wanted = process.env.TENSOR_BACKEND;
    if (tfjsNode || (wanted && wanted !== 'auto' && wanted !== 'native-cpu')) return;
    expect(loadAddon().addon !== null).toBe(backendInfo().name === 'native-cpu');
    if (loadAddon().addon) {
      expect(tf.getBackend()).toBe('native-cpu');
      expect(backendInfo().threads).toBe(loadAddon().addon!.info().threads);
    }
  });
});

const d = nativeActive() ? describe : describe.skip;

d('native-cpu fallback to stock kernels', () => {
  it('registers every stock cpu kernel, with the issue\'s kernel list native', () => {
    const natives = nativeKernelNames();
    for (const k of ['Conv2D', 'FusedConv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter', 'BatchMatMul', '_FusedMatMul',
      'Add', 'Sub', 'Multiply', 'RealDiv', 'SquaredDifference', 'Maximum', 'Minimum', 'Sum', 'Mean', 'Max', 'Slice', 'SplitV',
      'Concat', 'Transpose', 'Sigmoid', 'Relu', 'Step', 'Exp', 'Sqrt', 'Rsqrt', 'Square', 'Neg', 'Tanh', 'Erf', 'Softmax',
      'ResizeBilinear', 'ResizeBilinearGrad', 'ResizeNearestNeighbor', 'ResizeNearestNeighborGrad']) {
      expect(natives).toContain(k);
    }
    const stock = new Set(tf.getKernelsForBackend('cpu').map((k) => k.kernelName));
    const ours = new Set(tf.getKernelsForBackend('native-cpu').map((k) => k.kernelName));
    expect([...stock].filter((k) => !ours.has(k))).toEqual([]);
  });

  it('keeps a single threading runtime in the process: GNU OpenMP only, no OpenBLAS/TBB/Intel or LLVM OpenMP', () => {
    if (!existsSync('/proc/self/maps')) return;
    const libs = new Set(readFileSync('/proc/self/maps', 'utf8').split('\n').map((l) => l.split(/\s+/)[5] ?? '').filter((p) => p.includes('.so')));
    const names = [...libs].map((p) => p.split('/').pop()!);
    expect(names.some((n) => n.startsWith('libdnnl'))).toBe(true);
    expect(names.some((n) => n.startsWith('libgomp'))).toBe(true);
    expect(names.filter((n) => /^(libopenblas|libtbb|libiomp|libomp\.)/.test(n))).toEqual([]);
  });

  it('int32 inputs go to the stock kernels and give the stock results', async () => {
    const before = new Map(fallbackCounts());
    const ints = { shape: [2, 3], values: Float32Array.from([1, -2, 3, 4, 5, -6]), dtype: 'int32' as const };
    await compareBackends('int32 ops', (a, b) => [tf.add(a!, b!), tf.mul(a!, b!), tf.sum(a!, 1), tf.transpose(a!), tf.max(a!, 0),
      tf.slice(a!, [0, 1], [2, 1]), tf.concat([a!, b!], 1), tf.neg(a!)], [ints, ints]);
    for (const k of ['Add', 'Multiply', 'Sum', 'Transpose', 'Max', 'Slice', 'Concat', 'Neg']) {
      expect((fallbackCounts().get(k) ?? 0) - (before.get(k) ?? 0), `${k} fell back`).toBeGreaterThan(0);
    }
  });

  it('an NCHW convolution (a layout the native conv does not handle) falls back and matches stock', async () => {
    const r = rng(21);
    const before = fallbackCounts().get('Conv2D') ?? 0;
    await compareBackends('NCHW conv', (x, f) => tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, 1, 'same', 'NCHW'),
      [randInput(r, [1, 3, 5, 5]), randInput(r, [3, 3, 3, 2])]);
    expect((fallbackCounts().get('Conv2D') ?? 0) - before).toBeGreaterThan(0);
  });

  it('Softmax on a non-last axis is never computed natively', async () => {
    // tfjs only defines softmax over the last axis; the kernel must refuse other dims rather than guess.
    await tf.setBackend('native-cpu');
    const before = fallbackCounts().get('Softmax') ?? 0;
    const x = tf.tensor2d([[1, 2], [3, 4]]);
    expect(() => tf.engine().runKernel('Softmax', { logits: x }, { dim: 0 })).toThrow();
    expect((fallbackCounts().get('Softmax') ?? 0) - before).toBe(1);
    x.dispose();
  });
});
