/**
 * tfjs-core's Node entry (dist/tf-core.node.js) registers neither the chained tensor methods (x.reshape, ...) that
 * the model uses nor the gradient functions that training and ICM guidance need. Their registration modules exist
 * only as ESM files whose relative imports omit extensions, which Node's ESM resolver rejects (vitest's resolver
 * accepts them). A resolve hook that retries such imports with ".js" lets both load in every runtime; the
 * registries and the Tensor class are global, so the CommonJS entry everyone imports sees them.
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

let done: Promise<void> | null = null;

/** Register tfjs-core's chained tensor methods and gradients once per process (initBackend calls this). */
export function registerTfjsRuntime(): Promise<void> {
  done ??= (async () => {
    register(`data:text/javascript,${encodeURIComponent(HOOK)}`);
    await import('@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops.js');
    await import('@tensorflow/tfjs-core/dist/register_all_gradients.js');
  })();
  return done;
}
