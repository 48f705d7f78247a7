/**
 * The `native-cpu` tfjs backend: a MathBackendCPU (same tensor storage as stock `cpu`) whose kernel table is
 * the stock cpu table with native (oneDNN / OpenMP) kernels replacing the heavy ones. Each native kernel
 * handles float32 and the layouts it knows; anything else is passed to the stock kernel unchanged, so an
 * unsupported case is slow, never wrong. Fallbacks are counted so tests can see them.
 */
import { totalmem } from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import type { KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';
import { Act, BinaryOp, ReduceOp, UnaryOp, type NativeAddon } from './addon.js';
import { BufferPool, type BufferPoolStats } from './bufferPool.js';
import { ACTIVATION, ACTIVATION_GRAD, GROUP_NORM, GROUP_NORM_GRAD, registerFusedGradients } from './fusedOps.js';

export const NATIVE_BACKEND = 'native-cpu';

type KernelArgs = Parameters<KernelFunc>[0];
/** A native implementation: returns null when it does not handle these inputs (-> stock kernel). */
type NativeImpl = (args: KernelArgs, b: MathBackendCPU) => TensorInfo | TensorInfo[] | null;

const fallbacks = new Map<string, number>();
const nativeCalls = new Map<string, number>();

/** How often each kernel fell back to the stock implementation since start (or the last reset). */
export function fallbackCounts(): ReadonlyMap<string, number> {
  return fallbacks;
}
/** How often each kernel ran natively since start (or the last reset). */
export function nativeCallCounts(): ReadonlyMap<string, number> {
  return nativeCalls;
}
export function resetKernelCounts(): void {
  fallbacks.clear();
  nativeCalls.clear();
}

let N: NativeAddon;

/**
 * Output arrays of the native kernels (see bufferPool.ts). Idle arrays are capped at TENSOR_POOL_MB (default:
 * a quarter of RAM, at most 4 GiB): a stage-2 training step of the `small` preset recycles ~2.4 GB, and below
 * that cap arrays get dropped and re-faulted (1 GiB: 2.0 s/step, 4 GiB: 1.4 s/step, no pool: 2.9 s/step).
 */
function poolBytes(): number {
  const mb = Number(process.env.TENSOR_POOL_MB);
  if (process.env.TENSOR_POOL_MB !== undefined && Number.isFinite(mb) && mb >= 0) return mb * 2 ** 20;
  return Math.min(4 * 2 ** 30, totalmem() / 4);
}
const pool = new BufferPool(poolBytes());

/** Allocation counters of the output-array pool. */
export function bufferPoolStats(): BufferPoolStats {
  return pool.stats();
}

type DataId = object;
/**
 * The stock cpu backend, told about every data entry that holds a pooled array, so that arrays are recycled
 * only when the last tensor holding them goes and never after `readSync` has handed them out.
 */
class NativeCpuBackend extends MathBackendCPU {
  override write(values: Parameters<MathBackendCPU['write']>[0], shape: number[], dtype: tf.DataType): DataId {
    pool.retain(values);
    return super.write(values, shape, dtype);
  }
  override move(dataId: DataId, values: Parameters<MathBackendCPU['move']>[1], shape: number[], dtype: tf.DataType,
    refCount: number): void {
    pool.retain(values);
    super.move(dataId, values, shape, dtype, refCount);
  }
  override readSync(dataId: DataId): tf.backend_util.BackendValues {
    const values = super.readSync(dataId);
    pool.escape(this.data.get(dataId)?.values);
    return values;
  }
  override disposeData(dataId: DataId, force = false): boolean {
    const values = this.data.get(dataId)?.values;
    const gone = super.disposeData(dataId, force);
    if (gone && values !== undefined && !this.data.has(dataId)) pool.release(values);
    return gone;
  }
}

/** The float32 values of a tensor of this backend, or null when the native path cannot read them. */
function f32(b: MathBackendCPU, t: TensorInfo | undefined): Float32Array | null {
  if (!t || t.dtype !== 'float32') return null;
  const v = b.data.get(t.dataId)?.values;
  return v instanceof Float32Array ? v : null;
}

function out(b: MathBackendCPU, shape: number[], values: Float32Array): TensorInfo {
  return b.makeTensorInfo(shape, 'float32', values);
}

const size = (s: readonly number[]): number => s.reduce((p, d) => p * d, 1);

// ---------------------------------------------------------------- elementwise

const binaryOps: Record<string, BinaryOp> = {
  [tf.Add]: BinaryOp.Add,
  [tf.Sub]: BinaryOp.Sub,
  [tf.Multiply]: BinaryOp.Mul,
  [tf.RealDiv]: BinaryOp.Div,
  [tf.SquaredDifference]: BinaryOp.SquaredDifference,
  [tf.Maximum]: BinaryOp.Maximum,
  [tf.Minimum]: BinaryOp.Minimum,
  [tf.Pow]: BinaryOp.Pow,
};

function binary(op: BinaryOp, b: MathBackendCPU, a: TensorInfo, c: TensorInfo): TensorInfo | null {
  const av = f32(b, a);
  const cv = f32(b, c);
  if (!av || !cv) return null;
  const shape = tf.broadcast_util.assertAndGetBroadcastShape(a.shape, c.shape);
  const o = pool.alloc(size(shape));
  N.binary(op, av, a.shape, cv, c.shape, o, shape);
  return out(b, shape, o);
}

function binaryImpl(op: BinaryOp): NativeImpl {
  return ({ inputs }, b) => binary(op, b, inputs.a!, inputs.b!);
}

function unary(op: UnaryOp, b: MathBackendCPU, x: TensorInfo, alpha = 0, beta = 0): TensorInfo | null {
  const xv = f32(b, x);
  if (!xv) return null;
  const o = pool.alloc(xv.length);
  N.unary(op, xv, o, alpha, beta);
  return out(b, x.shape, o);
}

function unaryImpl(op: UnaryOp, attr?: (a: NamedAttrMap) => [number, number]): NativeImpl {
  return ({ inputs, attrs }, b) => {
    const [alpha, beta] = attr ? attr(attrs ?? {}) : [0, 0];
    return unary(op, b, inputs.x!, alpha, beta);
  };
}

const unaryOps: Record<string, UnaryOp> = {
  [tf.Neg]: UnaryOp.Neg,
  [tf.Exp]: UnaryOp.Exp,
  [tf.Log]: UnaryOp.Log,
  [tf.Sqrt]: UnaryOp.Sqrt,
  [tf.Rsqrt]: UnaryOp.Rsqrt,
  [tf.Square]: UnaryOp.Square,
  [tf.Abs]: UnaryOp.Abs,
  [tf.Sigmoid]: UnaryOp.Sigmoid,
  [tf.Tanh]: UnaryOp.Tanh,
  [tf.Relu]: UnaryOp.Relu,
  [tf.Relu6]: UnaryOp.Relu6,
  [tf.Elu]: UnaryOp.Elu,
  [tf.Erf]: UnaryOp.Erf,
  [tf.Sin]: UnaryOp.Sin,
  [tf.Cos]: UnaryOp.Cos,
  [tf.Reciprocal]: UnaryOp.Reciprocal,
  [tf.Log1p]: UnaryOp.Log1p,
  [tf.Expm1]: UnaryOp.Expm1,
  [tf.Softplus]: UnaryOp.Softplus,
  [tf.Sign]: UnaryOp.Sign,
  [tf.Floor]: UnaryOp.Floor,
  [tf.Ceil]: UnaryOp.Ceil,
  [tf.Selu]: UnaryOp.Selu,
};

/** Apply a fused-op activation (tfjs `_FusedMatMul` / `FusedConv2D` names) natively where possible. */
function activation(b: MathBackendCPU, x: TensorInfo, act: string, alpha: number, prelu?: TensorInfo): TensorInfo | null {
  switch (act) {
    case 'linear': return x;
    case 'relu': return unary(UnaryOp.Relu, b, x);
    case 'relu6': return unary(UnaryOp.Relu6, b, x);
    case 'elu': return unary(UnaryOp.Elu, b, x);
    case 'sigmoid': return unary(UnaryOp.Sigmoid, b, x);
    case 'leakyrelu': return unary(UnaryOp.LeakyRelu, b, x, alpha);
    case 'prelu': return prelu ? binary(BinaryOp.Prelu, b, x, prelu) : null;
    default: return null;
  }
}

const fusedActCode: Record<string, Act> = {
  linear: Act.Linear, relu: Act.Relu, relu6: Act.Relu6, elu: Act.Elu, leakyrelu: Act.LeakyRelu, sigmoid: Act.Sigmoid,
};

/** Post-process an unfused result: add bias and apply the activation natively, disposing intermediates. */
function biasAndActivation(b: MathBackendCPU, y: TensorInfo, bias: TensorInfo | undefined, act: string, alpha: number,
  prelu: TensorInfo | undefined): TensorInfo | null {
  let cur = y;
  if (bias) {
    const next = binary(BinaryOp.Add, b, cur, bias);
    if (!next) return null;
    cur = next;
  }
  const res = activation(b, cur, act, alpha, prelu);
  if (!res) return null;
  if (cur !== y && res !== cur) b.disposeIntermediateTensorInfo(cur);
  return res;
}

// ---------------------------------------------------------------- reductions, softmax

function reduceImpl(op: ReduceOp): NativeImpl {
  return ({ inputs, attrs }, b) => {
    const x = inputs.x!;
    const xv = f32(b, x);
    if (!xv) return null;
    // Max names its axes `reductionIndices`, the other reductions `axis`.
    const axis = (attrs!.axis ?? attrs!.reductionIndices) as number | number[];
    const axes = tf.util.parseAxisParam(axis, x.shape);
    const [outShape] = tf.backend_util.computeOutAndReduceShapes(x.shape, axes);
    if ((op === ReduceOp.Max || op === ReduceOp.Min) && xv.length === 0) return null;
    const o = pool.alloc(size(outShape), xv.length === 0);
    N.reduce(op, xv, x.shape, axes, o);
    const shape = attrs!.keepDims ? tf.backend_util.expandShapeToKeepDim(outShape, axes) : outShape;
    return out(b, shape, o);
  };
}

const softmaxImpl: NativeImpl = ({ inputs, attrs }, b) => {
  const x = inputs.logits!;
  const xv = f32(b, x);
  const dim = attrs!.dim as number;
  if (!xv || x.shape.length === 0 || (dim !== -1 && dim !== x.shape.length - 1)) return null;
  const cols = x.shape[x.shape.length - 1]!;
  if (cols === 0) return null;
  const o = pool.alloc(xv.length);
  N.softmax(xv, xv.length / cols, cols, o);
  return out(b, x.shape, o);
};

// ---------------------------------------------------------------- matmul

function matmul(b: MathBackendCPU, a: TensorInfo, c: TensorInfo, transposeA: boolean, transposeB: boolean,
  bias: Float32Array | null, act: Act, alpha: number): TensorInfo | null {
  const av = f32(b, a);
  const cv = f32(b, c);
  if (!av || !cv || a.shape.length < 2 || c.shape.length < 2) return null;
  const ra = a.shape.length;
  const rb = c.shape.length;
  const inner = transposeA ? a.shape[ra - 2]! : a.shape[ra - 1]!;
  const innerB = transposeB ? c.shape[rb - 1]! : c.shape[rb - 2]!;
  const m = transposeA ? a.shape[ra - 1]! : a.shape[ra - 2]!;
  const n = transposeB ? c.shape[rb - 2]! : c.shape[rb - 1]!;
  if (inner !== innerB) return null; // the stock kernel raises the proper error
  const outerA = a.shape.slice(0, -2);
  const outerB = c.shape.slice(0, -2);
  const batchA = size(outerA);
  const batchB = size(outerB);
  if (!(batchA === batchB || batchA === 1 || batchB === 1)) return null;
  const outer = tf.broadcast_util.assertAndGetBroadcastShape(outerA, outerB);
  const shape = [...outer, m, n];
  const o = pool.alloc(size(shape));
  if (o.length === 0 || inner === 0) return null;
  const a3 = transposeA ? [batchA, inner, m] : [batchA, m, inner];
  const b3 = transposeB ? [batchB, n, inner] : [batchB, inner, n];
  N.batchMatmul(av, a3, cv, b3, o, transposeA, transposeB, bias, act, alpha);
  return out(b, shape, o);
}

const batchMatMulImpl: NativeImpl = ({ inputs, attrs }, b) =>
  matmul(b, inputs.a!, inputs.b!, !!attrs!.transposeA, !!attrs!.transposeB, null, Act.Linear, 0);

const fusedMatMulImpl: NativeImpl = ({ inputs, attrs }, b) => {
  const { a, b: w, bias, preluActivationWeights } = inputs;
  const act = (attrs!.activation as string | undefined) ?? 'linear';
  const alpha = (attrs!.leakyreluAlpha as number | undefined) ?? 0.2;
  const tA = !!attrs!.transposeA;
  const tB = !!attrs!.transposeB;
  const n = tB ? w!.shape[w!.shape.length - 2]! : w!.shape[w!.shape.length - 1]!;
  const biasV = bias ? f32(b, bias) : null;
  if (bias && !biasV) return null;
  // A bias of n values along the last axis ([n] or [1, n]; the product has rank >= 2 so neither adds dims)
  // and a simple activation fuse into the oneDNN primitive.
  const fuseBias = !bias || (biasV!.length === n && bias.shape.length <= 2 && bias.shape[bias.shape.length - 1] === n);
  if (fuseBias && act in fusedActCode) return matmul(b, a!, w!, tA, tB, biasV, fusedActCode[act]!, alpha);
  const y = matmul(b, a!, w!, tA, tB, null, Act.Linear, 0);
  if (!y) return null;
  const res = biasAndActivation(b, y, bias, act, alpha, preluActivationWeights);
  if (!res) {
    b.disposeIntermediateTensorInfo(y);
    return null;
  }
  if (res !== y) b.disposeIntermediateTensorInfo(y);
  return res;
};

// ---------------------------------------------------------------- convolutions

type ConvInfo = ReturnType<typeof tf.backend_util.computeConv2DInfo>;

/** Geometry the native conv handles: NHWC, non-negative pads that give tfjs' output size. */
function convOk(ci: ConvInfo): boolean {
  const p = ci.padInfo;
  if (ci.dataFormat !== 'channelsLast' || p.top < 0 || p.left < 0 || p.bottom < 0 || p.right < 0) return false;
  const ekh = (ci.filterHeight - 1) * ci.dilationHeight + 1;
  const ekw = (ci.filterWidth - 1) * ci.dilationWidth + 1;
  const oh = Math.floor((ci.inHeight + p.top + p.bottom - ekh) / ci.strideHeight) + 1;
  const ow = Math.floor((ci.inWidth + p.left + p.right - ekw) / ci.strideWidth) + 1;
  return oh === ci.outHeight && ow === ci.outWidth && ci.batchSize * ci.outHeight * ci.outWidth * ci.outChannels > 0
    && ci.inChannels > 0;
}

const convGeom = (ci: ConvInfo) => ({
  x: [ci.batchSize, ci.inHeight, ci.inWidth, ci.inChannels],
  w: [ci.filterHeight, ci.filterWidth, ci.inChannels, ci.outChannels],
  y: [ci.batchSize, ci.outHeight, ci.outWidth, ci.outChannels],
  strides: [ci.strideHeight, ci.strideWidth],
  dil: [ci.dilationHeight, ci.dilationWidth],
  pads: [ci.padInfo.top, ci.padInfo.left, ci.padInfo.bottom, ci.padInfo.right],
});

type Pad = Parameters<typeof tf.backend_util.computeConv2DInfo>[4];
type Rounding = Parameters<typeof tf.backend_util.computeConv2DInfo>[5];

function conv2dInfo(xShape: number[], wShape: number[], attrs: NamedAttrMap, dilations: number | [number, number]) {
  if ((attrs.dataFormat ?? 'NHWC') !== 'NHWC') return null;
  return tf.backend_util.computeConv2DInfo(xShape as [number, number, number, number],
    wShape as [number, number, number, number], attrs.strides as [number, number], dilations, attrs.pad as Pad,
    attrs.dimRoundingMode as Rounding, false, 'channelsLast');
}

function conv(b: MathBackendCPU, x: TensorInfo, w: TensorInfo, attrs: NamedAttrMap, bias: Float32Array | null,
  act: Act, alpha: number): TensorInfo | null {
  const xv = f32(b, x);
  const wv = f32(b, w);
  if (!xv || !wv || x.shape.length !== 4 || w.shape.length !== 4) return null;
  const ci = conv2dInfo(x.shape, w.shape, attrs, (attrs.dilations as number | [number, number] | undefined) ?? 1);
  if (!ci || !convOk(ci)) return null;
  const g = convGeom(ci);
  const o = pool.alloc(size(g.y));
  N.conv2d(xv, g.x, wv, g.w, o, g.y, g.strides, g.dil, g.pads, bias, act, alpha);
  return out(b, g.y, o);
}

const conv2dImpl: NativeImpl = ({ inputs, attrs }, b) => conv(b, inputs.x!, inputs.filter!, attrs!, null, Act.Linear, 0);

const fusedConv2dImpl: NativeImpl = ({ inputs, attrs }, b) => {
  const { x, filter, bias, preluActivationWeights } = inputs;
  const act = (attrs!.activation as string | undefined) ?? 'linear';
  const alpha = (attrs!.leakyreluAlpha as number | undefined) ?? 0.2;
  const outC = filter!.shape[3]!;
  const biasV = bias ? f32(b, bias) : null;
  if (bias && !biasV) return null;
  if ((!bias || (bias.shape.length === 1 && biasV!.length === outC)) && act in fusedActCode) {
    return conv(b, x!, filter!, attrs!, biasV, fusedActCode[act]!, alpha);
  }
  const y = conv(b, x!, filter!, attrs!, null, Act.Linear, 0);
  if (!y) return null;
  const res = biasAndActivation(b, y, bias, act, alpha, preluActivationWeights);
  if (!res) {
    b.disposeIntermediateTensorInfo(y);
    return null;
  }
  if (res !== y) b.disposeIntermediateTensorInfo(y);
  return res;
};

const conv2dBackpropInputImpl: NativeImpl = ({ inputs, attrs }, b) => {
  const { dy, filter } = inputs;
  const dyv = f32(b, dy);
  const wv = f32(b, filter);
  if (!dyv || !wv) return null;
  const ci = conv2dInfo(attrs!.inputShape as number[], filter!.shape, attrs!, 1);
  if (!ci || !convOk(ci)) return null;
  const g = convGeom(ci);
  if (size(g.y) !== dyv.length) return null;
  const o = pool.alloc(size(g.x));
  N.conv2dBackpropInput(dyv, g.y, wv, g.w, o, g.x, g.strides, g.dil, g.pads);
  return out(b, g.x, o);
};

const conv2dBackpropFilterImpl: NativeImpl = ({ inputs, attrs }, b) => {
  const { x, dy } = inputs;
  const xv = f32(b, x);
  const dyv = f32(b, dy);
  if (!xv || !dyv || x!.shape.length !== 4) return null;
  const ci = conv2dInfo(x!.shape, attrs!.filterShape as number[], attrs!, 1);
  if (!ci || !convOk(ci)) return null;
  const g = convGeom(ci);
  if (size(g.y) !== dyv.length) return null;
  const o = pool.alloc(size(g.w));
  N.conv2dBackpropFilter(xv, g.x, dyv, g.y, o, g.w, g.strides, g.dil, g.pads);
  return out(b, g.w, o);
};

// ---------------------------------------------------------------- data movement

const transposeImpl: NativeImpl = ({ inputs, attrs }, b) => {
  const x = inputs.x!;
  const xv = f32(b, x);
  if (!xv) return null;
  const perm = attrs!.perm as number[];
  const shape = perm.map((p) => x.shape[p]!);
  const o = pool.alloc(xv.length);
  N.transpose(xv, x.shape, perm, o);
  return out(b, shape, o);
};

function sliceF32(b: MathBackendCPU, x: TensorInfo, xv: Float32Array, begin: number[], sz: number[]): TensorInfo {
  if (tf.slice_util.isSliceContinous(x.shape, begin, sz)) {
    // A contiguous slice is a view, as in the stock kernel (tensor data is never written in place).
    const off = tf.slice_util.computeFlatOffset(begin, tf.util.computeStrides(x.shape));
    return out(b, sz, xv.subarray(off, off + size(sz)));
  }
  const o = pool.alloc(size(sz));
  N.slice(xv, x.shape, begin, sz, o);
  return out(b, sz, o);
}

const sliceImpl: NativeImpl = ({ inputs, attrs }, b) => {
  const x = inputs.x!;
  const xv = f32(b, x);
  if (!xv) return null;
  const [begin, sz] = tf.slice_util.parseSliceParams(x as tf.Tensor, attrs!.begin as number[], attrs!.size as number[]);
  tf.slice_util.assertParamsValid(x as tf.Tensor, begin, sz);
  return sliceF32(b, x, xv, begin, sz);
};

const splitVImpl: NativeImpl = ({ inputs, attrs }, b) => {
  const x = inputs.x!;
  const xv = f32(b, x);
  if (!xv) return null;
  const axis = tf.util.parseAxisParam(attrs!.axis as number, x.shape)[0]!;
  const splits = tf.backend_util.prepareSplitSize(x, attrs!.numOrSizeSplits as number | number[], axis);
  const begin = new Array<number>(x.shape.length).fill(0);
  return splits.map((s) => {
    const sz = [...x.shape];
    sz[axis] = s;
    const r = sliceF32(b, x, xv, [...begin], sz);
    begin[axis]! += s;
    return r;
  });
};

const concatImpl: NativeImpl = ({ inputs, attrs }, b) => {
  const all = Object.values(inputs) as TensorInfo[];
  if (all.length === 0) return null;
  const axis = tf.util.parseAxisParam(attrs!.axis as number, all[0]!.shape)[0]!;
  const shapes = all.map((t) => t.shape);
  tf.backend_util.assertParamsConsistent(shapes, axis);
  const outShape = tf.backend_util.computeOutShape(shapes, axis);
  const parts = all.filter((t) => size(t.shape) > 0);
  if (size(outShape) === 0 || parts.length < 2) return null;
  const vals = parts.map((t) => f32(b, t));
  if (vals.some((v) => !v)) return null;
  const outer = size(outShape.slice(0, axis));
  const o = pool.alloc(size(outShape));
  N.concat(vals as Float32Array[], parts.map((t) => size(t.shape.slice(axis))), outer, o);
  return out(b, outShape, o);
};

const padImpl: NativeImpl = ({ inputs, attrs }, b) => {
  const x = inputs.x!;
  const xv = f32(b, x);
  if (!xv) return null;
  const paddings = attrs!.paddings as Array<[number, number]>;
  if (paddings.some(([l, r]) => l < 0 || r < 0)) return null;
  const shape = x.shape.map((d, i) => d + paddings[i]![0] + paddings[i]![1]);
  const o = pool.alloc(size(shape));
  N.pad(xv, x.shape, paddings.map((p) => p[0]), shape, (attrs!.constantValue as number | undefined) ?? 0, o);
  return out(b, shape, o);
};

const tileImpl: NativeImpl = ({ inputs, attrs }, b) => {
  const x = inputs.x!;
  const xv = f32(b, x);
  const reps = attrs!.reps as number[];
  if (!xv || x.shape.length === 0 || reps.length !== x.shape.length) return null;
  const shape = x.shape.map((d, i) => d * reps[i]!);
  const o = pool.alloc(size(shape));
  N.tile(xv, x.shape, reps, o);
  return out(b, shape, o);
};

/**
 * UnsortedSegmentSum (the gradient of Gather, i.e. of every embedding lookup). The stock kernel loops over all
 * numSegments with whole-tensor ops (O(vocab x tokens)); this is one pass over the ids. Ids outside
 * [0, numSegments) are dropped, as in the stock kernel.
 */
const unsortedSegmentSumImpl: NativeImpl = ({ inputs, attrs }, b) => {
  const { x, segmentIds } = inputs;
  const xv = f32(b, x);
  if (!xv || !segmentIds || segmentIds.dtype !== 'int32') return null;
  const ids = b.data.get(segmentIds.dataId)?.values;
  if (!(ids instanceof Int32Array)) return null;
  const num = attrs!.numSegments as number;
  const rest = x!.shape.slice(segmentIds.shape.length);
  const inner = size(rest);
  if (ids.length * inner !== xv.length) return null;
  const o = pool.alloc(num * inner, true);
  for (let i = 0; i < ids.length; i++) {
    const s = ids[i]!;
    if (s < 0 || s >= num) continue;
    const dst = s * inner;
    const src = i * inner;
    for (let j = 0; j < inner; j++) o[dst + j]! += xv[src + j]!;
  }
  return out(b, [num, ...rest], o);
};

/** GatherV2 along axis 0 (embedding lookups): whole-row copies instead of the stock per-element indexing. */
const gatherImpl: NativeImpl = ({ inputs, attrs }, b) => {
  const { x, indices } = inputs;
  const xv = f32(b, x);
  if (!xv || !indices || indices.dtype !== 'int32' || ((attrs!.batchDims as number | undefined) ?? 0) !== 0) return null;
  if (tf.util.parseAxisParam(attrs!.axis as number, x!.shape)[0] !== 0) return null;
  const ids = b.data.get(indices.dataId)?.values;
  if (!(ids instanceof Int32Array)) return null;
  const rows = x!.shape[0]!;
  const rest = x!.shape.slice(1);
  const inner = size(rest);
  const o = pool.alloc(ids.length * inner);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (id < 0 || id >= rows) return null; // the stock kernel reports the bad index
    o.set(xv.subarray(id * inner, (id + 1) * inner), i * inner);
  }
  return out(b, [...indices.shape, ...rest], o);
};

const addNImpl: NativeImpl = ({ inputs }, b) => {
  const all = Object.values(inputs) as TensorInfo[];
  const vals = all.map((t) => f32(b, t));
  if (all.length === 0 || vals.some((v) => !v) || all.some((t) => !tf.util.arraysEqual(t.shape, all[0]!.shape))) return null;
  const o = pool.alloc(vals[0]!.length);
  N.addN(vals as Float32Array[], o);
  return out(b, all[0]!.shape, o);
};

// ---------------------------------------------------------------- resize

function resizeImpl(kind: 'bilinear' | 'nearest'): NativeImpl {
  return ({ inputs, attrs }, b) => {
    const x = inputs.images!;
    const xv = f32(b, x);
    if (!xv || x.shape.length !== 4) return null;
    const [h, w] = attrs!.size as [number, number];
    const shape = [x.shape[0]!, h, w, x.shape[3]!];
    const o = pool.alloc(size(shape));
    const fn = kind === 'bilinear' ? N.resizeBilinear : N.resizeNearest;
    fn(xv, x.shape, [h, w], !!attrs!.alignCorners, !!attrs!.halfPixelCenters, o);
    return out(b, shape, o);
  };
}

function resizeGradImpl(kind: 'bilinear' | 'nearest'): NativeImpl {
  return ({ inputs, attrs }, b) => {
    const { images, dy } = inputs;
    const dyv = f32(b, dy);
    if (!dyv || !images || images.shape.length !== 4 || dy!.shape.length !== 4) return null;
    const o = pool.alloc(size(images.shape));
    const fn = kind === 'bilinear' ? N.resizeBilinearGrad : N.resizeNearestGrad;
    // The gradient is the exact adjoint of the forward pass (halfPixelCenters included).
    fn(dyv, images.shape, [dy!.shape[1]!, dy!.shape[2]!], !!attrs!.alignCorners, !!attrs!.halfPixelCenters, o);
    return out(b, images.shape, o);
  };
}

// ---------------------------------------------------------------- fused norm / activation (fusedOps.ts)

/** [N, HW, C] of a GroupNorm input; LayerNorm (`layer`) normalises each row of the last axis. */
function normGeom(shape: number[], layer: boolean): [number, number, number] {
  const c = shape[shape.length - 1] ?? 1;
  return layer ? [size(shape) / c, 1, c] : [shape[0]!, size(shape.slice(1, -1)), c];
}

function f32Strict(b: MathBackendCPU, t: TensorInfo | undefined, what: string): Float32Array {
  const v = f32(b, t);
  if (!v) throw new Error(`${what}: float32 tensor expected`);
  return v;
}

const groupNormKernel: KernelFunc = ({ inputs, attrs, backend }) => {
  const b = backend as MathBackendCPU;
  const { x, gamma, beta } = inputs;
  const [n, hw, c] = normGeom(x!.shape, !!attrs!.layer);
  const xv = f32Strict(b, x, 'groupNorm x');
  const y = pool.alloc(xv.length);
  N.groupNorm(xv, n, hw, c, attrs!.groups as number, f32Strict(b, gamma, 'groupNorm gamma'),
    f32Strict(b, beta, 'groupNorm beta'), attrs!.eps as number, attrs!.act as number, y);
  return out(b, x!.shape, y);
};

const groupNormGradKernel: KernelFunc = ({ inputs, attrs, backend }) => {
  const b = backend as MathBackendCPU;
  const { x, gamma, beta, dy } = inputs;
  const [n, hw, c] = normGeom(x!.shape, !!attrs!.layer);
  const xv = f32Strict(b, x, 'groupNormGrad x');
  const dx = pool.alloc(xv.length);
  const dgamma = new Float32Array(c);
  const dbeta = new Float32Array(c);
  N.groupNormGrad(xv, n, hw, c, attrs!.groups as number, f32Strict(b, gamma, 'groupNormGrad gamma'),
    f32Strict(b, beta, 'groupNormGrad beta'), attrs!.eps as number, attrs!.act as number,
    f32Strict(b, dy, 'groupNormGrad dy'), dx, dgamma, dbeta);
  return [out(b, x!.shape, dx), out(b, gamma!.shape, dgamma), out(b, beta!.shape, dbeta)];
};

const activationKernel: KernelFunc = ({ inputs, attrs, backend }) => {
  const b = backend as MathBackendCPU;
  const xv = f32Strict(b, inputs.x, 'activation x');
  const y = pool.alloc(xv.length);
  N.activation(attrs!.act as number, xv, y);
  return out(b, inputs.x!.shape, y);
};

const activationGradKernel: KernelFunc = ({ inputs, attrs, backend }) => {
  const b = backend as MathBackendCPU;
  const xv = f32Strict(b, inputs.x, 'activationGrad x');
  const dx = pool.alloc(xv.length);
  N.activationGrad(attrs!.act as number, xv, f32Strict(b, inputs.dy, 'activationGrad dy'), dx);
  return out(b, inputs.x!.shape, dx);
};

// ---------------------------------------------------------------- registration

function nativeKernels(): Record<string, NativeImpl> {
  const k: Record<string, NativeImpl> = {};
  for (const [name, op] of Object.entries(binaryOps)) k[name] = binaryImpl(op);
  for (const [name, op] of Object.entries(unaryOps)) k[name] = unaryImpl(op);
  k[tf.LeakyRelu] = unaryImpl(UnaryOp.LeakyRelu, (a) => [(a.alpha as number | undefined) ?? 0.2, 0]);
  k[tf.Step] = unaryImpl(UnaryOp.Step, (a) => [(a.alpha as number | undefined) ?? 0, 0]);
  k[tf.ClipByValue] = unaryImpl(UnaryOp.Clip, (a) => [a.clipValueMin as number, a.clipValueMax as number]);
  k[tf.Prelu] = ({ inputs }, b) => binary(BinaryOp.Prelu, b, inputs.x!, inputs.alpha!);
  k[tf.EluGrad] = ({ inputs }, b) => binary(BinaryOp.EluGrad, b, inputs.dy!, inputs.y!);
  k[tf.AddN] = addNImpl;
  k[tf.Tile] = tileImpl;
  k[tf.GatherV2] = gatherImpl;
  k[tf.UnsortedSegmentSum] = unsortedSegmentSumImpl;
  k[tf.Sum] = reduceImpl(ReduceOp.Sum);
  k[tf.Mean] = reduceImpl(ReduceOp.Mean);
  k[tf.Max] = reduceImpl(ReduceOp.Max);
  k[tf.Min] = reduceImpl(ReduceOp.Min);
  k[tf.Prod] = reduceImpl(ReduceOp.Prod);
  k[tf.Softmax] = softmaxImpl;
  k[tf.BatchMatMul] = batchMatMulImpl;
  k[tf._FusedMatMul] = fusedMatMulImpl;
  k[tf.Conv2D] = conv2dImpl;
  k[tf.FusedConv2D] = fusedConv2dImpl;
  k[tf.Conv2DBackpropInput] = conv2dBackpropInputImpl;
  k[tf.Conv2DBackpropFilter] = conv2dBackpropFilterImpl;
  k[tf.Transpose] = transposeImpl;
  k[tf.Slice] = sliceImpl;
  k[tf.SplitV] = splitVImpl;
  k[tf.Concat] = concatImpl;
  k[tf.PadV2] = padImpl;
  k[tf.ResizeBilinear] = resizeImpl('bilinear');
  k[tf.ResizeNearestNeighbor] = resizeImpl('nearest');
  k[tf.ResizeBilinearGrad] = resizeGradImpl('bilinear');
  k[tf.ResizeNearestNeighborGrad] = resizeGradImpl('nearest');
  return k;
}

/** Names of the kernels that have a native implementation. */
export function nativeKernelNames(): string[] {
  return Object.keys(nativeKernels()).sort();
}

let registered = false;

/** MathBackendCPU prints an "install tfjs-node" banner on its first write; library code must not print. */
function quietBanner(backend: object): void {
  (backend as { firstUse?: boolean }).firstUse = false;
}

/**
 * Register the `native-cpu` backend: every stock cpu kernel, with the native ones in front of their stock
 * counterparts. Idempotent.
 */
export function registerNativeBackend(addon: NativeAddon, priority = 3): void {
  if (registered) return;
  N = addon;
  tf.registerBackend(NATIVE_BACKEND, () => {
    const backend = new NativeCpuBackend();
    quietBanner(backend);
    return backend;
  }, priority);
  // The stock cpu backend stays available (fallback comparisons in tests, the benchmark): silence it too.
  const stockCpu = tf.findBackend('cpu');
  if (stockCpu) quietBanner(stockCpu);
  const natives = nativeKernels();
  for (const stock of tf.getKernelsForBackend('cpu')) {
    const impl = natives[stock.kernelName];
    const config: KernelConfig = { ...stock, backendName: NATIVE_BACKEND };
    if (impl) {
      const name = stock.kernelName;
      const stockFunc = stock.kernelFunc;
      config.kernelFunc = (args: KernelArgs) => {
        const r = impl(args, args.backend as MathBackendCPU);
        if (r) {
          nativeCalls.set(name, (nativeCalls.get(name) ?? 0) + 1);
          return r;
        }
        fallbacks.set(name, (fallbacks.get(name) ?? 0) + 1);
        return stockFunc(args);
      };
    }
    tf.registerKernel(config);
  }
  // Kernels of our own (no stock counterpart): the fused ops of fusedOps.ts, which compose tfjs ops elsewhere.
  for (const [kernelName, kernelFunc] of [[GROUP_NORM, groupNormKernel], [GROUP_NORM_GRAD, groupNormGradKernel],
    [ACTIVATION, activationKernel], [ACTIVATION_GRAD, activationGradKernel]] as const) {
    tf.registerKernel({ kernelName, backendName: NATIVE_BACKEND, kernelFunc });
  }
  registerFusedGradients();
  registered = true;
}
