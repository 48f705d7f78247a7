/**
 * tfjs-core's Node entry (dist/tf-core.node.js) registers neither the chained tensor methods (x.reshape, ...) that
 * nn.ts uses nor the gradient kernels that training and ICM guidance need. Their registration modules exist only as
 * ESM files whose relative imports omit extensions, which Node's ESM resolver rejects (vitest's resolver accepts
 * them). A resolve hook that retries such imports with ".js" lets both load in every runtime; the registries are
 * global, so the CJS entry everyone imports sees them. Idempotent (modules are cached).
 */
import { register } from 'node:module';

const HOOK = `
export async function resolve(specifier, context, next) {
  try {
    return await next(specifier, context);
  } catch (e) {
    const parent = context.parentURL ?? '';
    if ((e?.code === 'ERR_UNSUPPORTED_DIR_IMPORT' || e?.code === 'ERR_MODULE_NOT_FOUND') && specifier.startsWith('.') &&
        parent.includes('/@tensorflow/tfjs-core/dist/') && !specifier.endsWith('.js')) {
      return next(specifier + '.js', context);
    }
    throw e;
  }
}`;

const flag = Symbol.for('codraw.tfjsDistResolveHook');
const g = globalThis as unknown as Record<symbol, boolean | undefined>;
if (!g[flag] && typeof register === 'function') {
  register(`data:text/javascript,${encodeURIComponent(HOOK)}`);
  g[flag] = true;
}

await import('@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops.js');
await import('@tensorflow/tfjs-core/dist/register_all_gradients.js');

export {};
