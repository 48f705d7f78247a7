/**
 * The native backend recycles kernel output arrays (src/backend/bufferPool.ts). Reuse must never be visible:
 * arrays handed out by dataSync keep their values, views (contiguous slices) outlive their source, and a
 * deterministic computation repeated on recycled memory gives the same bits.
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { bufferPoolStats } from '../../src/backend/index.js';
import { BufferPool } from '../../src/backend/bufferPool.js';
import { nativeActive } from './helpers.js';

describe('BufferPool', () => {
  it('recycles an array once the last holder releases it, and only then', () => {
    const pool = new BufferPool(1 << 20, 16);
    const a = pool.alloc(64);
    pool.retain(a);
    const view = a.subarray(8, 16);
    pool.retain(view); // a second data entry on the same buffer
    pool.release(a);
    expect(pool.alloc(64)).not.toBe(a); // the view still holds it
    pool.release(view);
    expect(pool.stats().recycled).toBe(1);
    a.fill(7);
    const again = pool.alloc(64);
    expect(again).toBe(a);
    expect(pool.alloc(64, true).every((v) => v === 0)).toBe(true);
  });

  it('never reuses an escaped array, ignores foreign and small arrays, and respects its cap', () => {
    const pool = new BufferPool(64 * 4, 16);
    const a = pool.alloc(64);
    pool.retain(a);
    pool.escape(a);
    pool.release(a);
    expect(pool.alloc(64)).not.toBe(a);

    const foreign = new Float32Array(64);
    pool.retain(foreign);
    pool.release(foreign);
    expect(pool.stats().recycled).toBe(0);

    const small = pool.alloc(8);
    pool.retain(small);
    pool.release(small);
    expect(pool.stats().recycled).toBe(0);

    const [b, c] = [pool.alloc(64), pool.alloc(64)];
    for (const x of [b, c]) pool.retain(x);
    pool.release(b);
    pool.release(c); // over the 64-float cap: left to the GC
    expect(pool.stats()).toMatchObject({ recycled: 1, freeBytes: 256 });
  });
});

describe.runIf(nativeActive())('native-cpu output recycling', () => {
  const big = [64, 1024]; // above the pool's minimum size

  it('reuses output arrays across kernels', () => {
    const before = bufferPoolStats().reused;
    const x = tf.randomNormal(big, 0, 1, 'float32', 1);
    for (let i = 0; i < 5; i++) tf.tidy(() => tf.add(tf.mul(x, 2), 1));
    expect(bufferPoolStats().reused).toBeGreaterThan(before);
    x.dispose();
  });

  it('keeps the values dataSync handed out after the tensor is disposed', () => {
    const x = tf.randomNormal(big, 0, 1, 'float32', 2);
    const y = tf.mul(x, 3);
    const held = y.dataSync();
    const copy = Float32Array.from(held);
    y.dispose();
    for (let i = 0; i < 5; i++) tf.tidy(() => tf.sub(tf.mul(x, -5), 9).dataSync());
    expect(held).toEqual(copy);
    x.dispose();
  });

  it('keeps a contiguous slice (a view of its source) intact after the source is disposed', () => {
    const x = tf.randomNormal(big, 0, 1, 'float32', 3);
    const src = tf.add(x, 1);
    const part = tf.slice(src, [32, 0], [32, 1024]); // contiguous: a view of src's array
    const expected = tf.tidy(() => tf.add(tf.slice(x, [32, 0], [32, 1024]), 1).arraySync());
    src.dispose();
    for (let i = 0; i < 5; i++) tf.tidy(() => tf.neg(tf.add(x, 100)));
    expect(part.arraySync()).toEqual(expected);
    tf.dispose([x, part]);
  });

  it('gives bit-identical gradients when a training step is repeated on recycled memory', () => {
    const w = tf.variable(tf.randomNormal([3, 3, 8, 8], 0, 0.2, 'float32', 4));
    const x = tf.randomNormal([4, 16, 16, 8], 0, 1, 'float32', 5) as tf.Tensor4D;
    const grad = () => {
      const { value, grads } = tf.variableGrads(() => tf.tidy(() => {
        const h = tf.conv2d(x, w as tf.Tensor4D, 1, 'same');
        const g = tf.mul(h, tf.sigmoid(h));
        return tf.mean(tf.square(tf.sub(tf.concat([g, h], 3), tf.concat([x, x], 3)))) as tf.Scalar;
      }));
      const out = Float32Array.from(grads[w.name]!.dataSync());
      tf.dispose([value, ...Object.values(grads)]);
      return out;
    };
    const first = grad();
    const reusedBefore = bufferPoolStats().reused;
    for (let i = 0; i < 3; i++) expect(grad()).toEqual(first);
    expect(bufferPoolStats().reused).toBeGreaterThan(reusedBefore);
    tf.dispose([w, x]);
  });
});
