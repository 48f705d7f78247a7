/**
 * Loader and typed surface of the native kernels addon (`native/`, built by `npm install` through
 * scripts/postinstall.mjs or by `npm run build:native`). Loading never throws: a missing or broken build
 * yields `null` plus the reason, and the caller falls back to another backend.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Activation codes shared with native/src (conv.cc, matmul.cc). */
export enum Act {
  Linear = 0,
  Relu = 1,
  Relu6 = 2,
  Elu = 3,
  LeakyRelu = 4,
  Sigmoid = 5,
}

/** Unary op codes (native/src/elementwise.cc `Unary`). */
export enum UnaryOp {
  Neg, Exp, Log, Sqrt, Rsqrt, Square, Abs, Sigmoid, Tanh, Relu, Relu6, Elu, LeakyRelu, Step, Erf, Sin, Cos,
  Reciprocal, Log1p, Expm1, Softplus, Clip, Sign, Floor, Ceil, Selu, Identity,
}

/** Binary op codes (native/src/elementwise.cc `Binary`). */
export enum BinaryOp {
  Add, Sub, Mul, Div, SquaredDifference, Maximum, Minimum, Pow, Prelu, EluGrad,
}

/** Reduction op codes (native/src/reduce.cc `Op`). */
export enum ReduceOp {
  Sum, Mean, Max, Min, Prod,
}

type Shape = readonly number[];
type F32 = Float32Array;

/** The functions the addon exports. Every output buffer is allocated by the caller. */
export interface NativeAddon {
  info(): { threads: number; dnnl: string; dnnlCpuRuntime: string; isa: number; mallocTuned: boolean };
  setThreads(n: number): void;
  sgemm(m: number, n: number, k: number, a: F32, b: F32, c: F32): void;
  conv2d(x: F32, xShape: Shape, w: F32, wShape: Shape, y: F32, yShape: Shape, strides: Shape, dilations: Shape,
    pads: Shape, bias: F32 | null, act: number, alpha: number): void;
  conv2dBackpropInput(dy: F32, dyShape: Shape, w: F32, wShape: Shape, dx: F32, dxShape: Shape, strides: Shape,
    dilations: Shape, pads: Shape): void;
  conv2dBackpropFilter(x: F32, xShape: Shape, dy: F32, dyShape: Shape, dw: F32, wShape: Shape, strides: Shape,
    dilations: Shape, pads: Shape): void;
  convImpl(xShape: Shape, wShape: Shape, yShape: Shape, strides: Shape, dilations: Shape, pads: Shape): string;
  batchMatmul(a: F32, aShape: Shape, b: F32, bShape: Shape, out: F32, transposeA: boolean, transposeB: boolean,
    bias: F32 | null, act: number, alpha: number): void;
  unary(op: number, x: F32, out: F32, alpha: number, beta: number): void;
  groupNorm(x: F32, n: number, hw: number, c: number, groups: number, gamma: F32, beta: F32, eps: number, act: number,
    y: F32): void;
  groupNormGrad(x: F32, n: number, hw: number, c: number, groups: number, gamma: F32, beta: F32, eps: number,
    act: number, dy: F32, dx: F32, dgamma: F32, dbeta: F32): void;
  activation(act: number, x: F32, y: F32): void;
  activationGrad(act: number, x: F32, dy: F32, dx: F32): void;
  binary(op: number, a: F32, aShape: Shape, b: F32, bShape: Shape, out: F32, outShape: Shape): void;
  addN(inputs: F32[], out: F32): void;
  reduce(op: number, x: F32, shape: Shape, axes: Shape, out: F32): void;
  softmax(x: F32, rows: number, cols: number, out: F32): void;
  transpose(x: F32, shape: Shape, perm: Shape, out: F32): void;
  slice(x: F32, shape: Shape, begin: Shape, size: Shape, out: F32): void;
  concat(inputs: F32[], inner: Shape, outer: number, out: F32): void;
  pad(x: F32, shape: Shape, before: Shape, outShape: Shape, value: number, out: F32): void;
  tile(x: F32, shape: Shape, reps: Shape, out: F32): void;
  resizeBilinear(x: F32, xShape: Shape, size: Shape, alignCorners: boolean, halfPixelCenters: boolean, out: F32): void;
  resizeBilinearGrad(dy: F32, xShape: Shape, dySize: Shape, alignCorners: boolean, halfPixelCenters: boolean,
    dx: F32): void;
  resizeNearest(x: F32, xShape: Shape, size: Shape, alignCorners: boolean, halfPixelCenters: boolean, out: F32): void;
  resizeNearestGrad(dy: F32, xShape: Shape, dySize: Shape, alignCorners: boolean, halfPixelCenters: boolean,
    dx: F32): void;
}

const ADDON_REL = join('native', 'build', 'Release', 'tfjs_native.node');

/** The nearest ancestor of this module holding `rel` (works from src/ under tsx and from dist/). */
function findUp(rel: string): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    if (existsSync(join(dir, rel))) return dir;
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return null;
}

/** The project root: the nearest ancestor with node_modules/@tensorflow/tfjs-core. */
export function projectRoot(): string {
  return findUp(join('node_modules', '@tensorflow', 'tfjs-core')) ?? process.cwd();
}

/** The addon file (env TFJS_NATIVE_ADDON overrides the search), or null when it has not been built. */
export function addonPath(): string | null {
  const override = process.env.TFJS_NATIVE_ADDON;
  if (override) return existsSync(override) ? override : null;
  const dir = findUp(ADDON_REL);
  return dir ? join(dir, ADDON_REL) : null;
}

let cached: { addon: NativeAddon | null; error: string | null } | null = null;

/** Load the addon once; `error` says why it is unavailable. */
export function loadAddon(): { addon: NativeAddon | null; error: string | null } {
  if (cached) return cached;
  const path = addonPath();
  if (!path) {
    cached = { addon: null, error: `native addon not built (${ADDON_REL} missing; run npm run build:native)` };
    return cached;
  }
  try {
    // libgomp reads its settings when the addon pulls it in. Between kernels the JS thread works alone; spinning
    // OpenMP workers then compete with it (and with everything else) for the cores. Measured on the 2-core dev
    // box under load: U-Net train step 122 ms with PASSIVE vs 1055 ms with libgomp's default spin and 1986 ms
    // with ACTIVE. So idle workers sleep unless the user chose a policy.
    if (process.env.OMP_WAIT_POLICY === undefined && process.env.GOMP_SPINCOUNT === undefined) {
      process.env.OMP_WAIT_POLICY = 'PASSIVE';
    }
    const require = createRequire(import.meta.url);
    cached = { addon: require(path) as NativeAddon, error: null };
  } catch (e) {
    cached = { addon: null, error: `native addon failed to load: ${(e as Error).message}` };
  }
  return cached;
}
