/**
 * Registers tfjs-core's gradient functions (needed by tf.grads / optimizers on every backend).
 *
 * tfjs-core's Node (CommonJS) bundle ships without them, and its ES module build
 * (`dist/register_all_gradients.js`) uses directory imports that plain Node (and so tsx) cannot load;
 * only bundlers such as vitest's can. So we bundle that file once into CommonJS with esbuild (present as a
 * dependency of tsx/vitest; scripts/postinstall.mjs does it at install time) into node_modules/.cache and
 * require it. The registries are global, so the bundled copy registers into the same engine.
 */
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';

let done: Promise<string> | null = null;

/** Where the bundled gradients live (under the project's node_modules, per tfjs-core version). */
export function gradientsBundlePath(projectRoot: string): string {
  const pkg = join(projectRoot, 'node_modules', '@tensorflow', 'tfjs-core', 'package.json');
  const version = (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
  return join(projectRoot, 'node_modules', '.cache', 'tfjs-gradients', `register_all_gradients-${version}.cjs`);
}

/** Bundle tfjs-core's gradient registrations into CommonJS (idempotent). */
export async function buildGradientsBundle(projectRoot: string): Promise<string> {
  const outfile = gradientsBundlePath(projectRoot);
  if (existsSync(outfile)) return outfile;
  const require = createRequire(join(projectRoot, 'package.json'));
  const entry = require.resolve('@tensorflow/tfjs-core/dist/register_all_gradients.js');
  mkdirSync(dirname(outfile), { recursive: true });
  const spec: string = 'esbuild';
  const esbuild = (await import(spec)) as {
    build(o: Record<string, unknown>): Promise<unknown>;
  };
  // Write aside and rename so a concurrent process never requires a half-written file.
  const tmp = `${outfile}.${process.pid}.tmp`;
  await esbuild.build({ entryPoints: [entry], bundle: true, format: 'cjs', platform: 'node', outfile: tmp, logLevel: 'silent' });
  renameSync(tmp, outfile);
  return outfile;
}

/** Register all gradients once; resolves to how it was done (for the start-up log). */
export function registerGradients(projectRoot: string): Promise<string> {
  done ??= (async () => {
    try {
      const file = await buildGradientsBundle(projectRoot);
      createRequire(import.meta.url)(file);
      return 'bundled';
    } catch (bundleError) {
      try {
        // Under a bundler (vitest) the ES module build loads directly.
        const spec: string = '@tensorflow/tfjs-core/dist/register_all_gradients.js';
        await import(spec);
        return 'esm';
      } catch {
        throw new Error(`cannot register tfjs gradients: ${(bundleError as Error).message}`);
      }
    }
  })();
  return done;
}
