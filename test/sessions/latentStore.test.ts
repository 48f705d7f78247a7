/**
 * The shared latent store of scale-out mode against a real redis-server (the test's own).
 */
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { RedisLatentStore } from '../../src/sessions/index.js';
import { startRedis, type RedisProcess } from '../utils/cluster.js';

describe.skipIf(spawnSync('redis-server', ['--version']).status !== 0)('RedisLatentStore', () => {
  let redis: RedisProcess;
  let store: RedisLatentStore;
  beforeAll(async () => {
    redis = await startRedis();
    store = new RedisLatentStore(redis.url, 60_000);
  });
  afterAll(async () => {
    store?.close();
    await redis?.stop();
  });

  it('returns the exact latent stored for a model and image, and nothing for another model or image', async () => {
    const latent = Float32Array.from({ length: 4 * 16 * 16 }, (_, i) => Math.sin(i) * 3.7e-3 + i);
    await store.set('models/iclevr-default', 'a'.repeat(64), latent);
    const back = await store.get('models/iclevr-default', 'a'.repeat(64));
    expect(back).not.toBeNull();
    expect(Array.from(back!)).toEqual(Array.from(latent));
    expect(await store.get('models/codraw', 'a'.repeat(64))).toBeNull();
    expect(await store.get('models/iclevr-default', 'b'.repeat(64))).toBeNull();
  });

  it('a value that is not a float32 array (a foreign write under the key) reads as a miss', async () => {
    const raw = new Redis(redis.url);
    await raw.set(`codraw:latent:m:${'c'.repeat(64)}`, Buffer.from([1, 2, 3, 4, 5]));
    raw.disconnect();
    expect(await store.get('m', 'c'.repeat(64))).toBeNull();
  });
});
