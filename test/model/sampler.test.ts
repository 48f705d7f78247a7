import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imagesToTensor } from '../../src/data/index.js';
import {
  Sampler,
  SpacedDiffusion,
  candidateSeed,
  sample,
  sampleBestOf,
  sampleWithLatents,
  rollOutEpisodes,
  spacedTimesteps,
  type CddIcm,
  type SampleRequest,
} from '../../src/model/index.js';
import { drawScene, makeTurns, perturb, tinyModel } from './fixtures.js';

let model: CddIcm;
beforeAll(() => {
  model = tinyModel();
  perturb(model, 0.05);
});
afterAll(() => model.dispose());

const turn = makeTurns()[5]!;
const req = (over: Partial<SampleRequest> = {}): SampleRequest => ({
  text: turn.text,
  reference: turn.reference,
  steps: 4,
  guidanceScale: 1,
  icmGuidanceScale: 0,
  seed: 7,
  ...over,
});
const maxDiff = (a: tf.Tensor, b: tf.Tensor): number => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
const same = (a: { data: Uint8Array }, b: { data: Uint8Array }): boolean => a.data.every((x, i) => x === b.data[i]);

/** One DDIM step from x_T done by hand with the model's pieces, with eps = phi eps(c) + (1 - phi) eps(0). */
function manualFirstStep(r: SampleRequest): tf.Tensor4D {
  return tf.tidy(() => {
    const pixels = imagesToTensor([r.reference]);
    const cond = model.encodeCondition(pixels, [r.text]);
    const ref = model.encodeImage(pixels);
    const x = tf.randomNormal([1, 16, 16, 3], 0, 1, 'float32', r.seed) as tf.Tensor4D;
    const sp = new SpacedDiffusion(model.diffusion, spacedTimesteps(1000, r.steps));
    const i = r.steps - 1;
    const t = tf.tensor1d([sp.timestepMap[i]!], 'int32');
    const epsC = model.diffusion.splitOutput(model.denoise(x, ref, t, cond.c, cond.context)).eps;
    const epsU = model.diffusion.splitOutput(model.denoise(x, ref, t, tf.zerosLike(cond.c), tf.zerosLike(cond.context))).eps;
    const eps = tf.add(tf.mul(r.guidanceScale, epsC), tf.mul(1 - r.guidanceScale, epsU)) as tf.Tensor4D;
    return model.diffusion.ddimStep(x, eps, [{ diffusion: sp, index: i }]).sample;
  });
}

/** x after one sampler step (decoded is identity in pixel space, so predX0 / x are comparable). */
function samplerFirstStep(r: SampleRequest): tf.Tensor4D {
  const sampler = new Sampler(model);
  const s = sampler.prepare(r);
  sampler.step([s]);
  const x = tf.clone((s as unknown as { x: tf.Tensor4D }).x);
  s.dispose();
  return x;
}

describe('guidance', () => {
  it('phi = 1 (and psi = 0) is exactly the conditional prediction', () => {
    const a = samplerFirstStep(req({ guidanceScale: 1 }));
    const b = manualFirstStep(req({ guidanceScale: 1 }));
    expect(maxDiff(a, b)).toBeLessThan(1e-5);
    // and differs from the unconditional one
    const u = manualFirstStep(req({ guidanceScale: 0 }));
    expect(maxDiff(a, u)).toBeGreaterThan(1e-4);
  });

  it('phi = 3 combines the conditional and null predictions as Eq. 15', () => {
    const a = samplerFirstStep(req({ guidanceScale: 3 }));
    const b = manualFirstStep(req({ guidanceScale: 3 }));
    expect(maxDiff(a, b)).toBeLessThan(1e-4);
    expect(maxDiff(a, manualFirstStep(req({ guidanceScale: 1 })))).toBeGreaterThan(1e-4);
  });

  it('the ICM-guidance shift (Eq. 14) raises the N-ICM matching score', () => {
    tf.tidy(() => {
      const target = imagesToTensor([turn.target, drawScene([{ color: 'blue', place: 'top' }])]);
      const cond = model.encodeCondition(imagesToTensor([turn.reference, turn.reference]), [turn.text, 'add a blue square on the top']);
      const t = tf.tensor1d([300, 600], 'int32');
      const xt = model.diffusion.qSample(target, t, tf.randomNormal(target.shape, 0, 1, 'float32', 3) as tf.Tensor4D);
      const logVar = model.diffusion.learnedLogVariance(tf.zeros(xt.shape) as tf.Tensor4D, t);
      const before = model.matchingScore(xt, t, cond.c).dataSync();
      const shift = model.icmGuidanceShift(xt, t, cond.c, logVar, [2, 2]);
      const after = model.matchingScore(tf.add(xt, shift) as tf.Tensor4D, t, cond.c).dataSync();
      for (let i = 0; i < 2; i++) expect(after[i]!).toBeGreaterThan(before[i]!);
      expect(tf.max(tf.abs(model.icmGuidanceShift(xt, t, cond.c, logVar, [0, 0]))).dataSync()[0]).toBe(0);
    });
  });

  it('psi != 0 changes the sample and psi = 0 switches ICM guidance off', () => {
    const off = samplerFirstStep(req({ icmGuidanceScale: 0 }));
    const on = samplerFirstStep(req({ icmGuidanceScale: 2 }));
    expect(maxDiff(on, off)).toBeGreaterThan(1e-6);
    expect(maxDiff(off, manualFirstStep(req()))).toBeLessThan(1e-5);
  });
});

describe('Sampler', () => {
  it('the same seed gives the same image, another seed another one', async () => {
    const [a] = await sample(model, [req({ seed: 11, guidanceScale: 3, icmGuidanceScale: 2 })]);
    const [b] = await sample(model, [req({ seed: 11, guidanceScale: 3, icmGuidanceScale: 2 })]);
    const [c] = await sample(model, [req({ seed: 12, guidanceScale: 3, icmGuidanceScale: 2 })]);
    expect(a!.width).toBe(16);
    expect(same(a!, b!)).toBe(true);
    expect(same(a!, c!)).toBe(false);
    // Seed 0 too (tfjs would draw unseeded noise for it).
    const [z1] = await sample(model, [req({ seed: 0 })]);
    const [z2] = await sample(model, [req({ seed: 0 })]);
    expect(same(z1!, z2!)).toBe(true);
  });

  it('batches items with different conditions, step counts and positions like running them alone', () => {
    const sampler = new Sampler(model);
    const ra = req({ seed: 3, steps: 4, guidanceScale: 3 });
    const rb = req({ seed: 4, steps: 3, text: 'add a green square on the left', icmGuidanceScale: 2 });
    const alone = (r: SampleRequest) => {
      const s = sampler.prepare(r);
      while (!s.done) sampler.step([s]);
      const img = s.result();
      s.dispose();
      return img;
    };
    const a1 = alone(ra);
    const b1 = alone(rb);
    const before = tf.memory().numTensors;
    const a = sampler.prepare(ra);
    sampler.step([a]);
    sampler.step([a]);
    const b = sampler.prepare(rb); // joins between steps
    const seen: number[][] = [];
    while (!a.done || !b.done) {
      sampler.step([a, b]);
      seen.push([a.stepIndex, b.stepIndex]);
    }
    expect(seen).toEqual([[3, 1], [4, 2], [4, 3]]);
    expect(a.totalSteps).toBe(4);
    expect(b.totalSteps).toBe(3);
    const x0 = a.predX0();
    expect(x0.shape).toEqual([16, 16, 3]);
    x0.dispose();
    // same pixels up to float rounding in the batched kernels
    const close = (p: { data: Uint8Array }, q: { data: Uint8Array }) => p.data.every((v, i) => Math.abs(v - q.data[i]!) <= 1);
    expect(close(a.result(), a1)).toBe(true);
    expect(close(b.result(), b1)).toBe(true);
    a.dispose();
    b.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('calls onStep with previews and stops within one step when cancelled, leaking nothing', async () => {
    const before = tf.memory().numTensors;
    const ac = new AbortController();
    const calls: Array<[number, number, number]> = [];
    const p = sample(model, [req({ steps: 10 }), req({ seed: 8, steps: 10 })], {
      signal: ac.signal,
      onStep: (i, total, predX0) => {
        // Previews are decoded on demand: the first step reads them, the second does not.
        const previews = i === 1 ? predX0() : [];
        calls.push([i, total, previews.length]);
        if (i === 1) expect(previews[0]!.width).toBe(16);
        if (i === 2) ac.abort();
      },
    });
    await expect(p).rejects.toMatchObject({ name: 'AbortError' });
    expect(calls).toEqual([[1, 10, 2], [2, 10, 0]]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects bad step counts', () => {
    const sampler = new Sampler(model);
    expect(() => sampler.prepare(req({ steps: 0 }))).toThrow(/steps/);
    expect(() => sampler.prepare(req({ steps: 1001 }))).toThrow(/steps/);
  });

  it('returns each result in codec space, and a reference latent replaces the reference encoding in the U-Net', async () => {
    const before = tf.memory().numTensors;
    const [r] = await sampleWithLatents(model, [req({ guidanceScale: 3 })]);
    expect(r!.latent.length).toBe(16 * 16 * 3);
    // The latent is what the image was decoded from (pixel codec: the unquantised pixels).
    let worst = 0;
    r!.latent.forEach((v, i) => (worst = Math.max(worst, Math.abs(Math.round(((Math.max(-1, Math.min(1, v)) + 1) / 2) * 255) - r!.image.data[i]!))));
    expect(worst).toBeLessThanOrEqual(1);
    // The reference's own encoding handed in as the latent: exactly the plain request.
    const enc = tf.tidy(() => model.encodeImage(imagesToTensor([turn.reference])));
    const encoded = Float32Array.from(enc.dataSync());
    enc.dispose();
    const [plain] = await sample(model, [req({ guidanceScale: 3 })]);
    const [viaLatent] = await sample(model, [req({ guidanceScale: 3, referenceLatent: encoded })]);
    expect(same(plain!, viaLatent!)).toBe(true);
    // Another latent (the reference pushed towards white) changes the result: the U-Net reads the latent, not the image.
    const [other] = await sample(model, [req({ guidanceScale: 3, referenceLatent: encoded.map((v) => Math.min(1, v + 0.5)) })]);
    expect(same(plain!, other!)).toBe(false);
    expect(() => new Sampler(model).prepare(req({ referenceLatent: new Float32Array(5) }))).toThrow(/referenceLatent has 5 values/);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('best-of-n keeps, per request, the candidate with the highest clean-image ICM score', async () => {
    const before = tf.memory().numTensors;
    const other = makeTurns()[2]!;
    const reqs = [req({ guidanceScale: 3 }), req({ text: other.text, reference: other.reference, seed: 21, guidanceScale: 3 })];
    const best = await sampleBestOf(model, reqs, 3);
    for (const [i, r] of reqs.entries()) {
      // Every candidate is the plain sample of its derived seed (candidate 0: the request's own seed) ...
      const cands = await sampleWithLatents(model, [0, 1, 2].map((k) => ({ ...r, seed: candidateSeed(r.seed, k) })));
      expect(new Set([0, 1, 2].map((k) => candidateSeed(r.seed, k))).size).toBe(3);
      // ... scored by cos(image encoder(image), c) ...
      const scores = tf.tidy(() =>
        Array.from(
          model
            .compositionalMatch(imagesToTensor(cands.map(() => r.reference)), cands.map(() => r.text), imagesToTensor(cands.map((c) => c.image)))
            .dataSync(),
        ),
      );
      best[i]!.scores.forEach((s, k) => expect(s).toBeCloseTo(scores[k]!, 4));
      // ... and the kept one is the argmax, image and latent alike.
      const k = scores.indexOf(Math.max(...scores));
      expect(best[i]!.candidate).toBe(k);
      expect(same(best[i]!.image, cands[k]!.image)).toBe(true);
      expect(Array.from(best[i]!.latent)).toEqual(Array.from(cands[k]!.latent));
    }
    // The candidates differ, and the kept ones are not all the first (else picking candidate 0 would pass).
    expect(best.some((b) => b.candidate !== 0)).toBe(true);
    expect(best[0]!.scores[0]).not.toBeCloseTo(best[0]!.scores[1]!, 6);
    // n = 1 is plain sampling with the request's seed.
    const [one] = await sampleBestOf(model, [reqs[0]!], 1);
    const [plain] = await sample(model, [reqs[0]!]);
    expect(same(one!.image, plain!)).toBe(true);
    await expect(sampleBestOf(model, reqs, 0)).rejects.toThrow(/candidates/);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('a best-of-n state steps in a shared batch beside plain ones; its preview is candidate 0, its result the kept one', async () => {
    const before = tf.memory().numTensors;
    const other = makeTurns()[2]!;
    const r = req({ guidanceScale: 3, steps: 4 });
    const plainReq = req({ text: other.text, reference: other.reference, seed: 21, guidanceScale: 3, steps: 6 });
    const sampler = new Sampler(model);
    const group = sampler.prepare({ ...r, candidates: 3 });
    const lone = sampler.prepare(plainReq);
    const first = sampler.prepare({ ...r, seed: candidateSeed(r.seed, 0) });
    expect([group.width, lone.width]).toEqual([3, 1]);
    sampler.step([group, lone, first]);
    // After one step the group's preview is its candidate 0's x0, i.e. the plain request's.
    const [a, b] = [group.predX0(), first.predX0()];
    expect(Array.from(a.dataSync())).toEqual(Array.from(b.dataSync()));
    tf.dispose([a, b]);
    expect(() => group.result()).toThrow(/not finished/);
    while (!lone.done) sampler.step([group, lone]);
    expect([group.done, group.stepIndex, lone.stepIndex]).toEqual([true, 4, 6]);
    const [bestOf] = await sampleBestOf(model, [r], 3);
    expect(group.choice()).toEqual({ candidate: bestOf!.candidate, scores: bestOf!.scores.map((s) => expect.closeTo(s, 4)) });
    expect(same(group.result(), bestOf!.image)).toBe(true);
    // The plain item in the same batch is what it is alone.
    const [alone] = await sample(model, [plainReq]);
    expect(same(lone.result(), alone!)).toBe(true);
    for (const s of [group, lone, first]) s.dispose();
    group.dispose();
    expect(() => group.choice()).toThrow(/disposed/);
    for (const n of [0, 1.5, 65]) expect(() => sampler.prepare({ ...r, candidates: n })).toThrow(/candidates must be an integer in \[1, 64\]/);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('best-of-n with early selection (selectAt)', () => {
  it('keeps the candidate whose x0 estimate scores best at the selection step, then denoises it alone', async () => {
    const before = tf.memory().numTensors;
    const r = req({ guidanceScale: 3, steps: 4, candidates: 3 });
    const sampler = new Sampler(model);
    const early = sampler.prepare({ ...r, selectAt: 0.5 });
    const late = sampler.prepare(r);
    sampler.step([early, late]);
    expect([early.width, late.width]).toEqual([3, 3]);
    sampler.step([early, late]);
    // After 2 of 4 steps the early state keeps one candidate: the one the ICM score of the x0 estimates ranks first.
    expect([early.width, late.width]).toEqual([1, 3]);
    const x0s = (late as unknown as { members: { predX0(): tf.Tensor3D }[] }).members.map((m) => m.predX0());
    const scores = tf.tidy(() => Array.from(model.conditionMatch(tf.stack(x0s) as tf.Tensor4D, model.encodeCondition(imagesToTensor([r.reference]), [r.text]).c).dataSync()));
    tf.dispose(x0s);
    while (!early.done || !late.done) sampler.step([early, late]);
    const choice = early.choice();
    expect(choice.scores.map((x) => Math.round(x * 1e4))).toEqual(scores.map((x) => Math.round(x * 1e4)));
    expect(choice.candidate).toBe(scores.indexOf(Math.max(...scores)));
    // The kept candidate's trajectory is its own: the image is that candidate's plain sample.
    const [alone] = await sample(model, [{ ...r, candidates: 1, seed: candidateSeed(r.seed, choice.candidate) }]);
    const img = early.result();
    expect(img.data.reduce((m, v, j) => Math.max(m, Math.abs(v - alone!.data[j]!)), 0)).toBeLessThanOrEqual(1);
    expect(early.latent().length).toBe(late.latent().length);
    early.dispose();
    late.dispose();
    expect(() => sampler.prepare({ ...r, selectAt: 0 })).toThrow(/selectAt must be in \(0, 1\]/);
    expect(tf.memory().numTensors).toBe(before);
  });
  it('icmBeforeSelection false: the candidates run unguided by ICM up to the selection, the kept one guided after it', async () => {
    const before = tf.memory().numTensors;
    // psi large enough that the tiny model's ICM shift shows in two steps.
    const r = req({ guidanceScale: 3, icmGuidanceScale: 20, steps: 4, candidates: 3, selectAt: 0.5 });
    const run = (over: Partial<SampleRequest>) => {
      const sampler = new Sampler(model);
      const s = sampler.prepare({ ...r, ...over });
      while (!s.done) sampler.step([s]);
      const out = { choice: s.choice(), latent: s.latent() };
      s.dispose();
      return out;
    };
    const held = run({ icmBeforeSelection: false });
    const unguided = run({ icmGuidanceScale: 0 });
    const guided = run({});
    // Up to the selection the held candidates are the psi = 0 candidates: the same scores, the same pick.
    expect(held.choice.scores.map((x) => Math.round(x * 1e4))).toEqual(unguided.choice.scores.map((x) => Math.round(x * 1e4)));
    expect(held.choice.candidate).toBe(unguided.choice.candidate);
    expect(held.choice.scores).not.toEqual(guided.choice.scores);
    // After it ICM guidance moves the kept candidate: its image is neither the unguided one nor the all-guided one.
    const dist = (a: Float32Array, b: Float32Array) => a.reduce((m, v, j) => Math.max(m, Math.abs(v - b[j]!)), 0);
    expect(dist(held.latent, unguided.latent)).toBeGreaterThan(1e-3);
    // The model's recorded default does the same as the request's flag; without an early selection it changes nothing.
    const saved = model.config.sampling;
    model.config.sampling = { ...saved, icmBeforeSelection: false };
    try {
      expect(dist(run({}).latent, held.latent)).toBe(0);
      expect(dist(run({ selectAt: 1 }).latent, run({ selectAt: 1, icmBeforeSelection: true }).latent)).toBe(0);
    } finally {
      model.config.sampling = saved;
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('Sampler.glimpse', () => {
  it("shows a step's x0 before the step, and the step that follows reuses it: the same samples, leaking nothing", async () => {
    const before = tf.memory().numTensors;
    const other = makeTurns()[2]!;
    const reqs = [req({ guidanceScale: 3, icmGuidanceScale: 2, steps: 5, candidates: 3 }), req({ text: other.text, reference: other.reference, seed: 21, guidanceScale: 3, steps: 4 })];
    const run = (glimpseAt: number[]) => {
      const sampler = new Sampler(model);
      const states = reqs.map((r) => sampler.prepare(r));
      const seen: number[][] = [];
      for (let k = 0; states.some((s) => !s.done); k++) {
        if (glimpseAt.includes(k)) {
          const g = sampler.glimpse(states);
          expect(g.every((t) => t !== null)).toBe(true);
          sampler.step(states);
          // The glimpse is exactly the x0 the step then used (the preview of that step).
          states.forEach((s, i) => {
            const p = s.predX0();
            expect(maxDiff(g[i]!, p)).toBe(0);
            p.dispose();
          });
          tf.dispose(g as tf.Tensor[]);
        } else sampler.step(states);
        seen.push(states.map((s) => s.stepIndex));
      }
      const out = states.map((s) => s.result());
      const finished = sampler.glimpse(states);
      expect(finished).toEqual([null, null]);
      states.forEach((s) => s.dispose());
      return { out, seen };
    };
    const plain = run([]);
    const glimpsed = run([0, 2]);
    expect(glimpsed.seen).toEqual(plain.seen);
    // Batched (with the others) or alone (in a glimpse), an item's estimate is the same up to float rounding.
    plain.out.forEach((im, i) => expect(im.data.reduce((m, v, j) => Math.max(m, Math.abs(v - glimpsed.out[i]!.data[j]!)), 0)).toBeLessThanOrEqual(1));
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('DPM-Solver++(2M)', () => {
  /** x after `n` sampler steps of a request. */
  const afterSteps = (r: SampleRequest, n: number): tf.Tensor4D => {
    const sampler = new Sampler(model);
    const s = sampler.prepare(r);
    for (let i = 0; i < n; i++) sampler.step([s]);
    const x = tf.clone((s as unknown as { x: tf.Tensor4D }).x);
    s.dispose();
    return x;
  };

  it('steps as Alg. 2 on the guided prediction: first order (DDIM) first, then the 2M update from the previous x0', () => {
    const r = req({ guidanceScale: 3, steps: 6, solver: 'dpm++2m' });
    // Its first step is DDIM's; its second is not.
    expect(maxDiff(afterSteps(r, 1), afterSteps({ ...r, solver: 'ddim' }, 1))).toBeLessThan(1e-6);
    expect(maxDiff(afterSteps(r, 2), afterSteps({ ...r, solver: 'ddim' }, 2))).toBeGreaterThan(1e-4);
    // By hand with the model's pieces: eps = phi eps(c) + (1 - phi) eps(0) (Eq. 15), x0 clipped, then Alg. 2.
    const manual = tf.tidy(() => {
      const pixels = imagesToTensor([r.reference]);
      const cond = model.encodeCondition(pixels, [r.text]);
      const ref = model.encodeImage(pixels);
      const sp = new SpacedDiffusion(model.diffusion, spacedTimesteps(1000, r.steps));
      let x = tf.randomNormal([1, 16, 16, 3], 0, 1, 'float32', r.seed) as tf.Tensor4D;
      let prev: tf.Tensor4D | null = null;
      for (const index of [5, 4]) {
        const t = tf.tensor1d([sp.timestepMap[index]!], 'int32');
        const epsC = model.diffusion.splitOutput(model.denoise(x, ref, t, cond.c, cond.context)).eps;
        const epsU = model.diffusion.splitOutput(model.denoise(x, ref, t, tf.zerosLike(cond.c), tf.zerosLike(cond.context))).eps;
        const eps = tf.add(tf.mul(3, epsC), tf.mul(-2, epsU)) as tf.Tensor4D;
        const at = [{ diffusion: sp, index }];
        const x0 = tf.clipByValue(sp.predictX0FromEps(x, at, eps), -1, 1) as tf.Tensor4D;
        const k = sp.solverCoefficients(index, prev ? 2 : 1);
        x = tf.add(tf.add(tf.mul(k.a, x), tf.mul(k.b, x0)), tf.mul(k.c, prev ?? tf.zerosLike(x0))) as tf.Tensor4D;
        prev = x0;
      }
      return x;
    });
    // The second step's weight on the previous x0 is the 2M extrapolation's (negative), so this is not DDIM's step.
    expect(new SpacedDiffusion(model.diffusion, spacedTimesteps(1000, 6)).solverCoefficients(4, 2).c).toBeLessThan(0);
    expect(maxDiff(afterSteps(r, 2), manual)).toBeLessThan(1e-4);
  });

  it('batches with DDIM items and ICM guidance like running alone; the model\'s recommended solver is the default', async () => {
    const before = tf.memory().numTensors;
    const rd = req({ seed: 3, steps: 5, guidanceScale: 3, icmGuidanceScale: 2, solver: 'dpm++2m' });
    const rc = req({ seed: 4, steps: 4, text: 'add a green square on the left', guidanceScale: 3, solver: 'ddim' });
    const [d1] = await sample(model, [rd]);
    const [c1] = await sample(model, [rc]);
    const [d2, c2] = await sample(model, [rd, rc]);
    const close = (p: { data: Uint8Array }, q: { data: Uint8Array }) => p.data.every((v, i) => Math.abs(v - q.data[i]!) <= 1);
    expect(close(d1!, d2!)).toBe(true);
    expect(close(c1!, c2!)).toBe(true);
    const [ddim] = await sample(model, [{ ...rd, solver: 'ddim' }]);
    expect(same(d1!, ddim!)).toBe(false);
    // No solver on the request: the checkpoint's sampling.solver, else DDIM.
    const { solver: _s, ...noSolver } = rd;
    const [dflt] = await sample(model, [noSolver]);
    expect(same(dflt!, ddim!)).toBe(true);
    model.config.sampling = { solver: 'dpm++2m' };
    try {
      const [rec] = await sample(model, [noSolver]);
      expect(same(rec!, d1!)).toBe(true);
    } finally {
      delete model.config.sampling;
    }
    expect(() => new Sampler(model).prepare(req({ solver: 'euler' as 'ddim' }))).toThrow(/solver must be one of ddim, dpm\+\+2m/);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('rollOutEpisodes', () => {
  it('generates episodes of different lengths turn by turn, handing each result and its latent on', async () => {
    const before = tf.memory().numTensors;
    const turns = makeTurns();
    const background = turns[0]!.reference;
    const texts = [[turns[0]!.text, turns[1]!.text, turns[2]!.text], [turns[3]!.text]];
    const opts = { steps: 3, guidanceScale: 2, icmGuidanceScale: 0 };
    const batches: number[] = [];
    const out = await rollOutEpisodes(model, texts, {
      ...opts,
      backgrounds: [background, background],
      seedOf: (i, t) => 100 * i + t,
      onTurns: (n) => batches.push(n),
    });
    expect(out.map((o) => o.length)).toEqual([3, 1]);
    expect(batches).toEqual([2, 1, 1]);
    // Episode 0 by hand: each turn continues from the previous result and its latent (within 1 of 255: turn 0 ran
    // batched with episode 1).
    const close = (p: { data: Uint8Array }, q: { data: Uint8Array }) => p.data.every((v, i) => Math.abs(v - q.data[i]!) <= 1);
    for (let t = 0; t < 3; t++) {
      const prev = t === 0 ? undefined : out[0]![t - 1]!;
      const [r] = await sampleWithLatents(model, [
        { ...opts, text: texts[0]![t]!, reference: prev?.image ?? background, ...(prev ? { referenceLatent: prev.latent } : {}), seed: t },
      ]);
      expect(close(out[0]![t]!.image, r!.image)).toBe(true);
    }
    // Another next reference (a fixed image, as teacher forcing hands on the ground truth) changes the later turns only.
    const forced = await rollOutEpisodes(model, texts, {
      ...opts,
      backgrounds: [background, background],
      seedOf: (i, t) => 100 * i + t,
      nextReference: () => ({ image: turns[4]!.reference }),
    });
    expect(same(forced[0]![0]!.image, out[0]![0]!.image)).toBe(true);
    expect(same(forced[0]![1]!.image, out[0]![1]!.image)).toBe(false);
    expect(tf.memory().numTensors).toBe(before);
  });
});
