/** The install step and start-up without the native library: the program must still run on stock cpu. */
import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { addonPath } from '../../src/backend/addon.js';

const root = new URL('../../', import.meta.url).pathname;

describe('install and start-up without oneDNN', () => {
  it('postinstall prints the exact apt-get line and exits 0 when oneDNN is missing (and builds nothing)', () => {
    const addon = addonPath();
    const before = addon ? statSync(addon).mtimeMs : null;
    const r = spawnSync(process.execPath, ['scripts/postinstall.mjs'], {
      cwd: root, encoding: 'utf8', env: { ...process.env, TFJS_NATIVE_PREFIXES: '/nonexistent-prefix', CPATH: '', LIBRARY_PATH: '' },
    });
    expect(r.status).toBe(0);
    expect(r.stdout.split('\n')).toContain('apt-get install libdnnl-dev libopenblas-dev');
    if (addon) expect(statSync(addon).mtimeMs).toBe(before);
  });

  it('auto selection falls back to stock cpu (with a warning) when the addon cannot be loaded', () => {
    const script = `
      import { initBackend } from './src/backend/index.ts';
      import * as tf from '@tensorflow/tfjs-core';
      const info = await initBackend('auto');
      const y = tf.conv2d(tf.ones([1, 3, 3, 1]), tf.ones([2, 2, 1, 1]), 1, 'valid');
      console.log(JSON.stringify({ info, backend: tf.getBackend(), y: Array.from(y.dataSync()) }));`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: root, encoding: 'utf8', env: { ...process.env, TFJS_NATIVE_ADDON: '/nonexistent/tfjs_native.node', LOG_LEVEL: 'warn', TENSOR_BACKEND: '' },
    });
    expect(r.status, r.stderr).toBe(0);
    const resultLine = r.stdout.trim().split('\n').find((l) => l.startsWith('{"info"'));
    const out = JSON.parse(resultLine ?? '{}') as { info: { name: string }; backend: string; y: number[] };
    expect(out.info.name).toBe('cpu');
    expect(out.backend).toBe('cpu');
    expect(out.y).toEqual([4, 4, 4, 4]);
    expect(r.stdout).toMatch(/USING THE STOCK tfjs cpu BACKEND/);
  });

  it('an unsatisfiable preference (tensorflow without tfjs-node) logs an error and falls down the chain', () => {
    const script = `
      import { initBackend } from './src/backend/index.ts';
      console.log(JSON.stringify(await initBackend('tensorflow')));`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: root, encoding: 'utf8', env: { ...process.env, LOG_LEVEL: 'error' },
    });
    expect(r.status, r.stderr).toBe(0);
    // pino writes its log lines asynchronously, so they may come after the result line: pick the result by shape.
    const resultLine = r.stdout.trim().split('\n').find((l) => l.startsWith('{') && !l.includes('"level"'));
    const info = JSON.parse(resultLine ?? '{}') as { name: string };
    const tfjsNodeInstalled = spawnSync(process.execPath, ['-e', "require.resolve('@tensorflow/tfjs-node')"], { cwd: root }).status === 0
      || spawnSync(process.execPath, ['-e', "require.resolve('@tensorflow/tfjs-node-gpu')"], { cwd: root }).status === 0;
    if (tfjsNodeInstalled) return;
    expect(info.name).toBe(addonPath() ? 'native-cpu' : 'cpu');
    expect(r.stdout).toMatch(/requested backend \\"tensorflow\\" unavailable|requested backend "tensorflow" unavailable/);
  });
});
