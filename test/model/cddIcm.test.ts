import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UNet, type CddIcm, type ParameterGroupName } from '../../src/model/index.js';
import { makeTurns, perturb, seededRng, tinyModel, toBatch } from './fixtures.js';

describe('U-Net', () => {
  const cfg = { channels: 3, modelChannels: 8, channelMult: [1, 2], numResBlocks: 1, attentionResolutions: [2], headChannels: 8, groups: 4, condDim: 6, contextDim: 5 };
  const inputs = () => ({
    x: tf.randomNormal([2, 8, 8, 3], 0, 1, 'float32', 1) as tf.Tensor4D,
    ref: tf.randomUniform([2, 8, 8, 3], -1, 1, 'float32', 2) as tf.Tensor4D,
    t: tf.tensor1d([10, 900], 'int32'),
    c: tf.randomNormal([2, 6], 0, 1, 'float32', 3) as tf.Tensor2D,
    ctx: tf.randomNormal([2, 4, 5], 0, 1, 'float32', 4) as tf.Tensor3D,
  });

  it('outputs 2x channels (epsilon, v), all zero at initialisation (zero-initialised output conv)', () => {
    const net = new UNet(cfg);
    const i = inputs();
    const out = net.apply(i.x, i.ref, i.t, i.c, i.ctx);
    expect(out.shape).toEqual([2, 8, 8, 6]);
    expect(tf.max(tf.abs(out)).dataSync()[0]).toBe(0);
    net.dispose();
  });

  it('depends on x_t, the reference, t, the condition c and the context, item by item', () => {
    const net = new UNet(cfg);
    for (const [k, v] of net.namedParameters()) tf.tidy(() => v.assign(tf.add(v, tf.randomNormal(v.shape, 0, 0.1, 'float32', k.length))));
    const i = inputs();
    const base = net.apply(i.x, i.ref, i.t, i.c, i.ctx);
    const diff = (o: tf.Tensor): number[] => [0, 1].map((b) => tf.max(tf.abs(tf.sub(o, base).slice(b, 1))).dataSync()[0]!);
    // change only item 1 of each input: item 1 moves, item 0 does not
    const only1 = <T extends tf.Tensor>(a: T, b: T): T => tf.concat([a.slice(0, 1), b.slice(1, 1)]) as T;
    const changed = [
      net.apply(only1(i.x, tf.add(i.x, 0.5)), i.ref, i.t, i.c, i.ctx),
      net.apply(i.x, only1(i.ref, tf.neg(i.ref)), i.t, i.c, i.ctx),
      net.apply(i.x, i.ref, tf.tensor1d([10, 300], 'int32'), i.c, i.ctx),
      net.apply(i.x, i.ref, i.t, only1(i.c, tf.zerosLike(i.c)), i.ctx),
      net.apply(i.x, i.ref, i.t, i.c, only1(i.ctx, tf.zerosLike(i.ctx))),
    ];
    for (const o of changed) {
      const [d0, d1] = diff(o);
      expect(d0).toBeLessThan(1e-5);
      expect(d1).toBeGreaterThan(1e-4);
    }
    net.dispose();
  });
});

describe('CddIcm training API', () => {
  let model: CddIcm;
  const turns = makeTurns().filter((_, i) => i % 4 === 0);
  beforeAll(() => {
    model = tinyModel();
    perturb(model);
  });
  afterAll(() => model.dispose());

  const gradsFor = (stage: 1 | 2 | 3, opts: { delta?: number; conditionDropout?: number } = {}) => {
    const batch = toBatch(turns);
    const all = model.parameters();
    const { value, grads } = tf.variableGrads(
      () => model.losses(batch, { stage, gamma: 1.5, delta: opts.delta ?? 0.1, conditionDropout: opts.conditionDropout ?? 0.2, rng: seededRng(5) }).total,
      all,
    );
    const norm = new Map<tf.Variable, number>();
    for (const v of all) {
      const g = grads[v.name];
      norm.set(v, g ? tf.max(tf.abs(g)).dataSync()[0]! : 0);
    }
    tf.dispose([value, batch.reference, batch.target, ...Object.values(grads)]);
    return norm;
  };

  const groupsOf = (names: ParameterGroupName[]): Set<tf.Variable> => {
    const g = model.parameterGroups();
    return new Set(names.flatMap((n) => g[n].vars));
  };

  it('partitions every variable into exactly one parameter group, backbones inside their groups', () => {
    const g = model.parameterGroups();
    const seen = new Set<tf.Variable>();
    for (const grp of Object.values(g)) {
      for (const v of grp.vars) {
        expect(seen.has(v)).toBe(false);
        seen.add(v);
      }
      for (const b of grp.backbone) expect(grp.vars).toContain(b);
    }
    expect(seen.size).toBe(model.parameters().length);
    expect(g.imageEncoder.backbone.length).toBeGreaterThan(0);
    expect(g.imageEncoder.backbone.length).toBeLessThan(g.imageEncoder.vars.length);
  });

  for (const stage of [1, 2, 3] as const) {
    it(`stage ${stage}: gradients reach every variable of the stage's groups and no other`, () => {
      const norm = gradsFor(stage);
      const mine = groupsOf(model.stageGroups(stage));
      const names = new Map([...model.namedParameters()].map(([k, v]) => [v, k]));
      const missing = [...mine].filter((v) => !(norm.get(v)! > 0)).map((v) => names.get(v));
      const leaked = model.parameters().filter((v) => !mine.has(v) && norm.get(v)! > 0).map((v) => names.get(v));
      expect(missing).toEqual([]);
      expect(leaked).toEqual([]);
    });
  }

  it('stage 3 touches only the noisy image encoder (and its N-ICM temperature)', () => {
    expect(model.stageGroups(3)).toEqual(['noisyImageEncoder']);
    const norm = gradsFor(3);
    const noisy = new Set(model.noisyImageEncoder.parameters());
    for (const [v, n] of norm) if (n > 0) expect(noisy.has(v) || v === model.nicm.logTau).toBe(true);
  });

  it('condition dropout replaces c and the context by the null condition', () => {
    // with delta = 0 the fusion is reached only through c and the context: dropping every condition cuts it off
    const dropped = gradsFor(2, { delta: 0, conditionDropout: 1 });
    const kept = gradsFor(2, { delta: 0, conditionDropout: 0 });
    for (const v of model.fusion.parameters()) {
      expect(dropped.get(v)).toBe(0);
      expect(kept.get(v)!).toBeGreaterThan(0);
    }
  });

  it('hard-negative instructions enter L_icm and L_n-icm as extra negatives and reach the text encoder', () => {
    const batch = toBatch(turns);
    const swap = (t: string) => (/left|right/.test(t) ? t.replace(/left|right/, (w) => (w === 'left' ? 'right' : 'left')) : null);
    const hard = { ...batch, hardNegativeTexts: batch.texts.map(swap) };
    expect(hard.hardNegativeTexts.some((t) => t !== null)).toBe(true);
    const none = { ...batch, hardNegativeTexts: batch.texts.map(() => null) };
    const loss = (b: typeof batch, stage: 1 | 3) => tf.tidy(() => model.losses(b, { stage, rng: seededRng(3) }).total.dataSync()[0]!);
    for (const stage of [1, 3] as const) {
      expect(loss(hard, stage)).toBeGreaterThan(loss(batch, stage));
      expect(loss(none, stage)).toBeCloseTo(loss(batch, stage), 6);
    }
    const textVars = model.parameterGroups().textEncoder.vars;
    const grad = (b: typeof batch) => tf.variableGrads(() => model.losses(b, { stage: 1, rng: seededRng(3) }).total, textVars).grads;
    const g0 = grad(batch);
    const g1 = grad(hard);
    const diff = Math.max(...textVars.map((v) => tf.tidy(() => tf.max(tf.abs(tf.sub(g0[v.name]!, g1[v.name]!))).dataSync()[0]!)));
    expect(diff).toBeGreaterThan(0);
    // Several negatives per turn: the same as one per turn when they repeat it, more loss when they add one.
    const twice = { ...batch, hardNegativeTexts: hard.hardNegativeTexts.map((t) => (t === null ? [] : [t])) };
    const more = { ...batch, hardNegativeTexts: batch.texts.map((t) => (swap(t) === null ? null : [swap(t)!, t.replace(/ (cube|sphere|cylinder) /, ' cone ')])) };
    for (const stage of [1, 3] as const) {
      expect(loss(twice, stage)).toBeCloseTo(loss(hard, stage), 6);
      expect(loss(more, stage)).toBeGreaterThan(loss(hard, stage));
    }
    expect(() => model.losses({ ...batch, hardNegativeTexts: [null] }, { stage: 1 })).toThrow(/hardNegativeTexts/);
    tf.dispose([batch.reference, batch.target, ...Object.values(g0), ...Object.values(g1)]);
  });

  it('reports the loss terms of each stage and leaks no tensors', () => {
    const batch = toBatch(turns);
    const run = (stage: 1 | 2 | 3) => {
      const l = model.losses(batch, { stage, gamma: 1.5, delta: 0.1, conditionDropout: 0.2, rng: seededRng(1) });
      const out = Object.fromEntries(Object.entries(l).map(([k, v]) => [k, (v as tf.Scalar).dataSync()[0]!]));
      tf.dispose(Object.values(l));
      return out;
    };
    run(2); // first use allocates the diffusion's lookup tables
    const before = tf.memory().numTensors;
    const s1 = run(1);
    const s2 = run(2);
    const s3 = run(3);
    expect(tf.memory().numTensors).toBe(before);
    expect(Object.keys(s1).sort()).toEqual(['icm', 'total']);
    expect(Object.keys(s2).sort()).toEqual(['cdd', 'icm', 'mse', 'total', 'vlb']);
    expect(Object.keys(s3).sort()).toEqual(['nicm', 'total']);
    expect(s2.total).toBeCloseTo(s2.cdd! + 0.1 * s2.icm!, 4);
    expect(s2.cdd).toBeCloseTo(s2.mse! + 1.5 * s2.vlb!, 4);
    expect(s1.icm).toBeGreaterThan(0);
    tf.dispose([batch.reference, batch.target]);
  });
});
