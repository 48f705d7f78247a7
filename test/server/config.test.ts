/** Configuration: read once from the environment and flags, validated, with defaults. */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, databaseTarget, loadConfig } from '../../src/config/index.js';

describe('loadConfig', () => {
  it('has defaults for everything', () => {
    const c = loadConfig({}, []);
    expect(c).toMatchObject({ host: '127.0.0.1', port: 4000, modelPath: 'models/iclevr-default', backend: 'auto', batching: true, previewEvery: 5 });
    expect(c.limits.maxQueuedTurnsPerSession).toBe(8);
    // The scores in README / model cards are measured at these (npm run eval's defaults): the paper's phi and psi.
    expect(c).toMatchObject({ defaultSteps: 50, defaultGuidanceScale: 3, defaultIcmGuidanceScale: 2 });
    expect(databaseTarget(c)).toEqual({ kind: 'sqlite', file: path.resolve('data', 'codraw.db') });
  });

  it('reads the environment, and flags override it', () => {
    const c = loadConfig(
      { PORT: '5000', TENSOR_BACKEND: 'cpu', BATCHING: 'false', MAX_TEXT_LENGTH: '12', DATABASE_URL: 'postgres://u@h/db' },
      ['--port', '6000', '--model=/m', '--preview-every', '0'],
    );
    expect(c).toMatchObject({ port: 6000, backend: 'cpu', batching: false, modelPath: '/m', previewEvery: 0 });
    expect(c.limits.maxTextLength).toBe(12);
    expect(databaseTarget(c)).toEqual({ kind: 'postgres', url: 'postgres://u@h/db' });
    expect(loadConfig({}, ['--no-batching']).batching).toBe(false);
  });

  it('refuses bad values with a message naming the setting', () => {
    expect(() => loadConfig({ PORT: 'x' }, [])).toThrow(/port/);
    expect(() => loadConfig({ TENSOR_BACKEND: 'gpu' }, [])).toThrow(ConfigError);
    expect(() => loadConfig({ MAX_QUERY_DEPTH: '0' }, [])).toThrow(/limits.maxQueryDepth/);
    expect(() => loadConfig({ DATABASE_URL: 'mysql://x' }, [])).toThrow(/DATABASE_URL/);
    expect(() => loadConfig({}, ['--bogus'])).toThrow(/unknown option/);
    expect(() => loadConfig({}, ['--port'])).toThrow(/needs a value/);
  });
});
