/** Configuration: read once from the environment and flags, validated, with defaults. */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, databaseTarget, loadConfig, resolveTurnDefaults, servedModels } from '../../src/config/index.js';

describe('loadConfig', () => {
  it('has defaults for everything', () => {
    const c = loadConfig({}, []);
    expect(c).toMatchObject({ host: '127.0.0.1', port: 4000, backend: 'auto', batching: true, previewEvery: 5 });
    // Both shipped models, one per dataset.
    expect(servedModels(c)).toEqual({ iclevr: 'models/iclevr-default', codraw: 'models/codraw' });
    expect(c.limits.maxQueuedTurnsPerSession).toBe(8);
    // Turn defaults are unset, so the model's recommendation (else the paper's phi and psi at 50 steps) applies.
    expect(c.defaultGuidanceScale).toBeUndefined();
    expect(resolveTurnDefaults(c)).toEqual({ steps: 50, guidanceScale: 3, icmGuidanceScale: 2, candidates: 1 });
    expect(c.limits.maxCandidates).toBe(8);
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

  it('MODELS maps datasets to checkpoints; MODEL_PATH serves one model for every dataset; MODELS wins', () => {
    expect(servedModels(loadConfig({ MODELS: 'iclevr=models/a, codraw=/m/b' }, []))).toEqual({ iclevr: 'models/a', codraw: '/m/b' });
    expect(servedModels(loadConfig({ MODELS: 'codraw=models/codraw' }, []))).toEqual({ codraw: 'models/codraw' });
    expect(servedModels(loadConfig({ MODEL_PATH: '/one' }, []))).toEqual({ iclevr: '/one', codraw: '/one' });
    expect(servedModels(loadConfig({ MODEL_PATH: '/one' }, ['--models', 'iclevr=/two']))).toEqual({ iclevr: '/two' });
    expect(() => loadConfig({ MODELS: 'clevr=models/a' }, [])).toThrow(/models/);
    expect(() => loadConfig({ MODELS: 'models/a' }, [])).toThrow(/models/);
    expect(() => loadConfig({ MODELS: 'iclevr=' }, [])).toThrow(/models/);
  });

  it('turn defaults: the configuration over the model\'s recommendation over the paper\'s', () => {
    const recommended = { guidanceScale: 5, steps: 30, candidates: 4 };
    expect(resolveTurnDefaults(loadConfig({}, []), recommended)).toEqual({ steps: 30, guidanceScale: 5, icmGuidanceScale: 2, candidates: 4 });
    const set = loadConfig({ DEFAULT_GUIDANCE_SCALE: '1.5', DEFAULT_ICM_GUIDANCE_SCALE: '0', DEFAULT_CANDIDATES: '2' }, []);
    expect(resolveTurnDefaults(set, recommended)).toEqual({ steps: 30, guidanceScale: 1.5, icmGuidanceScale: 0, candidates: 2 });
    expect(() => loadConfig({ DEFAULT_CANDIDATES: '0' }, [])).toThrow(/defaultCandidates/);
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
