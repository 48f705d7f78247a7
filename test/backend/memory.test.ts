/** No tensor leaks: repeated training steps of a small U-Net-like block keep tf.memory() flat. */
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { backendInfo } from '../../src/backend/index.js';

function groupNorm(x: tf.Tensor4D, groups: number): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  const g = tf.reshape(x, [n, h * w, groups, c / groups]);
  const { mean, variance } = tf.moments(g, [1, 3], true);
  return tf.reshape(tf.mul(tf.sub(g, mean), tf.rsqrt(tf.add(variance, 1e-5))), [n, h, w, c]) as tf.Tensor4D;
}
const silu = (x: tf.Tensor) => tf.mul(x, tf.sigmoid(x));

describe(`memory on ${backendInfo().name}`, () => {
  it('training steps (conv, GroupNorm, SiLU, attention, resize, concat) do not leak tensors or bytes', () => {
    const c = 8;
    const vars = {
      w1: tf.variable(tf.randomNormal([3, 3, 4, c], 0, 0.2, 'float32', 1)),
      b1: tf.variable(tf.zeros([c])),
      wq: tf.variable(tf.randomNormal([c, 3 * c], 0, 0.2, 'float32', 2)),
      w2: tf.variable(tf.randomNormal([3, 3, 2 * c, 4], 0, 0.2, 'float32', 3)),
    };
    const x = tf.randomNormal([2, 8, 8, 4], 0, 1, 'float32', 4) as tf.Tensor4D;
    const loss = () => tf.tidy(() => {
      let h = silu(groupNorm(tf.add(tf.conv2d(x, vars.w1 as tf.Tensor4D, 1, 'same'), vars.b1) as tf.Tensor4D, 2)) as tf.Tensor4D;
      const down = tf.conv2d(tf.slice(h, [0, 0, 0, 0], [2, 8, 8, 4]), tf.slice(vars.w1 as tf.Tensor4D, [0, 0, 0, 0], [3, 3, 4, 4]), 2, 'same');
      const seq = tf.reshape(h, [2, 64, c]);
      const [q, k, v] = tf.split(tf.matMul(seq, tf.tile(tf.expandDims(vars.wq, 0), [2, 1, 1]) as tf.Tensor3D), 3, 2);
      const att = tf.matMul(tf.softmax(tf.div(tf.matMul(q!, k!, false, true), Math.sqrt(c))), v!);
      h = tf.add(h, tf.reshape(att, h.shape)) as tf.Tensor4D;
      const up = tf.image.resizeNearestNeighbor(tf.slice(tf.concat([down, down], 3), [0, 0, 0, 0], [2, 4, 4, 4]) as tf.Tensor4D, [8, 8]);
      const out = tf.conv2d(tf.concat([h, tf.tile(up, [1, 1, 1, 2])], 3) as tf.Tensor4D, vars.w2 as tf.Tensor4D, 1, 'same');
      return tf.mean(tf.square(tf.sub(out, x))) as tf.Scalar;
    });
    const step = () => {
      const { value, grads } = tf.variableGrads(loss);
      tf.tidy(() => {
        for (const [name, g] of Object.entries(grads)) {
          const v = Object.values(vars).find((t) => t.name === name)!;
          v.assign(tf.sub(v, tf.mul(g, 0.01)));
        }
      });
      const l = value.dataSync()[0]!;
      tf.dispose([value, ...Object.values(grads)]);
      return l;
    };
    const first = step();
    const m1 = tf.memory();
    let last = first;
    for (let i = 0; i < 4; i++) last = step();
    const m2 = tf.memory();
    expect(m2.numTensors).toBe(m1.numTensors);
    expect(m2.numBytes).toBe(m1.numBytes);
    expect(m2.numDataBuffers).toBe(m1.numDataBuffers);
    expect(Number.isFinite(last)).toBe(true);
    expect(last).toBeLessThan(first); // the steps optimise
    tf.dispose([x, ...Object.values(vars)]);
  });
});
