import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

describe('tfjs runtime outside vitest', () => {
  it('initBackend gives a plain Node process (tsx) chained tensor methods and gradients for the model code', async () => {
    // vitest's resolver hides tfjs-core's Node packaging problems, so this runs a real Node process.
    const dir = await mkdtemp(path.join(tmpdir(), 'tfjs-runtime-'));
    const mod = (p: string) => JSON.stringify(pathToFileURL(path.resolve(p)).href);
    const pkg = (spec: string) => JSON.stringify(pathToFileURL(createRequire(path.resolve('package.json')).resolve(spec)).href);
    const script = path.join(dir, 'check.mts');
    await writeFile(script, [
      `const { initBackend } = await import(${mod('src/backend/index.ts')});`,
      `const { TextEncoder } = await import(${mod('src/model/index.ts')});`,
      `const tf = await import(${pkg('@tensorflow/tfjs-core')});`,
      `await initBackend('cpu');`,
      `const enc = new TextEncoder({ vocabSize: 8, contextLength: 4, width: 8, layers: 1, heads: 2 }, 4);`,
      `const ids = tf.tensor2d([[1, 2, 7, 0]], [1, 4], 'int32');`,
      `const { grads } = tf.variableGrads(() => tf.sum(enc.encode(ids).pooled));`,
      `process.stdout.write(JSON.stringify({ grads: Object.keys(grads).length, vars: enc.parameters().length }));`,
    ].join('\n'));
    try {
      const out = await new Promise<string>((resolve, reject) =>
        execFile(process.execPath, ['--import', 'tsx', script], { cwd: process.cwd(), timeout: 110_000, env: { ...process.env, LOG_LEVEL: 'silent' } },
          (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout))),
      );
      const r = JSON.parse(out.trim().split('\n').pop()!) as { grads: number; vars: number };
      expect(r.vars).toBeGreaterThan(0);
      expect(r.grads).toBe(r.vars);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
