/**
 * Tensor backend selection, done once at start-up. Order for `auto`: `tensorflow` (tfjs-node-gpu, then
 * tfjs-node, when installed and loadable) -> `native-cpu` (our oneDNN addon, see kernels.ts) -> stock `cpu`
 * (with a loud warning: it is orders of magnitude slower). An explicit preference is tried first; if it cannot
 * be satisfied the next one down the chain is used and the failure is logged.
 * Every program entry calls initBackend once before tensor work; it also registers tfjs' chained tensor methods and gradients.
 *
 * Configuration (read here or by the libraries, all optional):
 * - TENSOR_BACKEND / `--backend NAME`: the preference (parse with parseBackendFlag; callers pass it in).
 * - OMP_NUM_THREADS: threads of the native kernels (default: all cores); reported as BackendInfo.threads.
 * - OMP_WAIT_POLICY / GOMP_SPINCOUNT: idle OpenMP workers sleep by default (PASSIVE, see addon.ts).
 * - TFJS_NATIVE_ADDON: path of a tfjs_native.node to load instead of native/build/Release's.
 * - TENSOR_POOL_MB: idle memory the native backend keeps for reusing kernel outputs (default: RAM / 4, <= 4 GiB).
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { cpus } from 'node:os';
import { partLogger } from '../log/index.js';
import { loadAddon } from './addon.js';
import { registerTfjsRuntime } from './tfjsRuntime.js';
import { NATIVE_BACKEND, registerNativeBackend } from './kernels.js';

export type BackendName = 'tensorflow' | 'native-cpu' | 'cpu';
export interface BackendInfo {
  name: BackendName;
  device: string;
  threads: number;
}
export type BackendPreference = 'auto' | BackendName;

export { bufferPoolStats, fallbackCounts, nativeCallCounts, resetKernelCounts, nativeKernelNames, NATIVE_BACKEND } from './kernels.js';
export { loadAddon } from './addon.js';
export { activation, groupNorm, layerNorm, type FusedActivation } from './fusedOps.js';

const log = partLogger('backend');
const CHOICES: readonly BackendPreference[] = ['auto', 'tensorflow', 'native-cpu', 'cpu'];

/** True if `s` names a backend preference. */
export function isBackendPreference(s: string): s is BackendPreference {
  return (CHOICES as readonly string[]).includes(s);
}

/**
 * The backend preference of a CLI: `--backend NAME` or `--backend=NAME` in argv, else env TENSOR_BACKEND,
 * else 'auto'. Throws on an unknown name so a typo does not silently pick another backend.
 */
export function parseBackendFlag(argv: readonly string[], env: Record<string, string | undefined> = {}): BackendPreference {
  let value: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--backend') value = argv[i + 1];
    else if (a.startsWith('--backend=')) value = a.slice('--backend='.length);
  }
  value ??= env.TENSOR_BACKEND;
  if (value === undefined || value === '') return 'auto';
  if (!isBackendPreference(value)) {
    throw new Error(`unknown backend "${value}" (expected one of ${CHOICES.join(', ')})`);
  }
  return value;
}

let current: BackendInfo | null = null;
let pending: Promise<BackendInfo> | null = null;

/** Load tfjs-node-gpu or tfjs-node (optional dependencies); they register the `tensorflow` backend. */
async function tryTensorflow(): Promise<BackendInfo | string> {
  const errors: string[] = [];
  for (const [pkg, device] of [['@tensorflow/tfjs-node-gpu', 'gpu'], ['@tensorflow/tfjs-node', 'cpu']] as const) {
    try {
      // A variable specifier: these packages are optional and usually absent.
      const spec: string = pkg;
      await import(spec);
      if (!tf.findBackendFactory('tensorflow')) {
        errors.push(`${pkg} loaded but registered no "tensorflow" backend with this tfjs-core`);
        continue;
      }
      if (!(await tf.setBackend('tensorflow'))) {
        errors.push(`${pkg}: tensorflow backend failed to initialise`);
        continue;
      }
      return { name: 'tensorflow', device, threads: cpus().length };
    } catch (e) {
      errors.push(`${pkg}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  return errors.join('; ');
}

async function tryNative(): Promise<BackendInfo | string> {
  const { addon, error } = loadAddon();
  if (!addon) return error ?? 'native addon unavailable';
  try {
    registerNativeBackend(addon);
    if (!(await tf.setBackend(NATIVE_BACKEND))) return 'native-cpu backend failed to initialise';
    const info = addon.info();
    return { name: 'native-cpu', device: `cpu (oneDNN ${info.dnnl}, ${info.dnnlCpuRuntime})`, threads: info.threads };
  } catch (e) {
    return `native-cpu: ${(e as Error).message}`;
  }
}

async function select(preference: BackendPreference): Promise<BackendInfo> {
  const chain: BackendName[] = ['tensorflow', 'native-cpu', 'cpu'];
  const order = preference === 'auto' ? chain : chain.slice(chain.indexOf(preference));
  const failures: Record<string, string> = {};
  for (const name of order) {
    let r: BackendInfo | string;
    if (name === 'tensorflow') r = await tryTensorflow();
    else if (name === 'native-cpu') r = await tryNative();
    else {
      await tf.setBackend('cpu');
      r = { name: 'cpu', device: 'cpu', threads: 1 };
    }
    if (typeof r !== 'string') {
      await tf.ready();
      if (preference !== 'auto' && name !== preference) {
        log.error({ preference, failures }, `requested backend "${preference}" unavailable; using "${name}"`);
      }
      if (name === 'cpu' && preference !== 'cpu') {
        log.warn({ failures }, 'USING THE STOCK tfjs cpu BACKEND: training and sampling will be extremely slow. ' +
          'Install oneDNN (apt-get install libdnnl-dev libopenblas-dev) and run npm run build:native.');
      }
      log.info({ backend: r.name, device: r.device, threads: r.threads }, 'tensor backend selected');
      return r;
    }
    failures[name] = r;
    if (preference === 'auto' && name === 'tensorflow') log.debug({ reason: r }, 'tensorflow backend unavailable');
  }
  throw new Error('no tensor backend could be initialised');
}

/**
 * Choose and activate the tensor backend. Idempotent: later calls return the first result (a different
 * preference on a later call is logged and ignored).
 */
export async function initBackend(preference: BackendPreference = 'auto'): Promise<BackendInfo> {
  if (current) {
    if (preference !== 'auto' && preference !== current.name) {
      log.warn({ preference, current: current.name }, 'initBackend called again with another preference; ignored');
    }
    return current;
  }
  pending ??= (async () => {
    await registerTfjsRuntime();
    return (current = await select(preference));
  })();
  return pending;
}

/** The active backend; throws before initBackend. */
export function backendInfo(): BackendInfo {
  if (!current) throw new Error('initBackend() has not run');
  return current;
}
