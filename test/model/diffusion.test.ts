import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import {
  GaussianDiffusion,
  SpacedDiffusion,
  approxStandardNormalCdf,
  cosineBetas,
  discretizedGaussianLogLikelihood,
  normalKl,
  p2Weight,
  spacedTimesteps,
} from '../../src/model/index.js';

const T = 1000;
const diffusion = new GaussianDiffusion(cosineBetas(T));
afterAll(() => diffusion.dispose());

const s = (u: number): number => Math.cos(((u + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
const val = (t: tf.Tensor): number[] => Array.from(t.dataSync());
const close = (a: number[], b: number[], tol = 1e-5): void => {
  expect(a.length).toBe(b.length);
  a.forEach((x, i) => expect(Math.abs(x - b[i]!)).toBeLessThan(tol * Math.max(1, Math.abs(b[i]!))));
};

describe('cosine schedule (Eq. 4)', () => {
  it('gives alphabar_t = s(t)/s(0) until the beta clip at 0.999', () => {
    for (const i of [0, 1, 10, 100, 500, 900, 980]) expect(diffusion.alphasCumprod[i]).toBeCloseTo(s((i + 1) / T) / s(0), 10);
    expect(Math.max(...diffusion.betas)).toBeCloseTo(0.999, 12);
    expect(diffusion.betas[T - 1]).toBeCloseTo(0.999, 12);
    // alpha_t = s(t) / s(t-1) where unclipped
    expect(diffusion.alphas[300]).toBeCloseTo(s(301 / T) / s(300 / T), 12);
    expect(diffusion.alphasCumprod[T - 1]).toBeLessThan(1e-4);
  });
});

describe('q(x_t | x0) (Eq. 3) and the posterior (Eq. 7)', () => {
  const x0 = tf.tensor4d([0.5, -0.25, 1, -1], [2, 1, 1, 2]);
  const noise = tf.tensor4d([1, 2, -1, 0.5], [2, 1, 1, 2]);
  const t = tf.tensor1d([3, 700], 'int32');

  it('qSample is sqrt(alphabar) x0 + sqrt(1 - alphabar) eps per item', () => {
    const xt = diffusion.qSample(x0, t, noise);
    const ab = [diffusion.alphasCumprod[3]!, diffusion.alphasCumprod[700]!];
    const want = [0.5, -0.25, 1, -1].map((x, i) => Math.sqrt(ab[i >> 1]!) * x + Math.sqrt(1 - ab[i >> 1]!) * [1, 2, -1, 0.5][i]!);
    close(val(xt), want);
  });

  it('posterior mean and variance equal the Bayes product of q(x_t|x_{t-1}) and q(x_{t-1}|x0)', () => {
    const xt = tf.tensor4d([0.3, 0.1, -0.7, 2], [2, 1, 1, 2]);
    const { mean, variance, logVariance } = diffusion.qPosteriorMeanVariance(x0, xt, t);
    const want: number[] = [];
    const wantVar: number[] = [];
    [0.5, -0.25, 1, -1].forEach((x, i) => {
      const ti = [3, 700][i >> 1]!;
      const abPrev = diffusion.alphasCumprod[ti - 1]!;
      const a = diffusion.alphas[ti]!;
      const b = diffusion.betas[ti]!;
      // N(x_{t-1}; sqrt(abPrev) x0, 1 - abPrev) * N(x_t; sqrt(a) x_{t-1}, b), completed square
      const precision = 1 / (1 - abPrev) + a / b;
      want.push(((Math.sqrt(abPrev) * x) / (1 - abPrev) + (Math.sqrt(a) * [0.3, 0.1, -0.7, 2][i]!) / b) / precision);
      wantVar.push(1 / precision);
    });
    close(val(mean), want, 1e-4);
    close(val(variance), wantVar, 1e-4);
    close(val(logVariance), wantVar.map(Math.log), 1e-4);
  });

  it('mu from epsilon (Eq. 8) equals the posterior mean at the implied x0', () => {
    const xt = diffusion.qSample(x0, t, noise);
    const mu = diffusion.meanFromEps(xt, t, noise);
    const post = diffusion.qPosteriorMeanVariance(diffusion.predictX0FromEps(xt, t, noise), xt, t).mean;
    close(val(mu), val(post), 1e-3);
    close(val(diffusion.predictX0FromEps(xt, t, noise)), val(x0), 1e-3);
  });

  it('eps from x0 inverts x0 from eps, and an eps shift from a mean shift moves the Eq. 8 mean by exactly that', () => {
    const xt = diffusion.qSample(x0, t, noise);
    close(val(diffusion.predictEpsFromX0(xt, t, diffusion.predictX0FromEps(xt, t, noise))), val(noise), 1e-3);
    const dMu = tf.tensor4d([0.01, -0.02, 0.03, 0.005], [2, 1, 1, 2]);
    const shifted = diffusion.meanFromEps(xt, t, tf.add(noise, diffusion.epsFromMeanShift(dMu, t)) as tf.Tensor4D);
    close(val(tf.sub(shifted, diffusion.meanFromEps(xt, t, noise))), val(dMu), 1e-3);
  });

  it('per-item schedule steps gather each item\'s coefficients from its own (respaced) diffusion', () => {
    const sp = new SpacedDiffusion(diffusion, spacedTimesteps(T, 10));
    const steps = [{ diffusion: sp, index: 9 }, { diffusion, index: 700 }];
    close(val(diffusion.extract('sqrtRecipm1AlphasCumprod', steps)), [sp.sqrtRecipm1AlphasCumprod[9]!, diffusion.sqrtRecipm1AlphasCumprod[700]!]);
    close(val(diffusion.extract('logBetas', [{ diffusion, index: 3 }, { diffusion, index: 700 }])), val(diffusion.extract('logBetas', t)));
    expect(() => diffusion.extract('nope', t)).toThrow(/no table/);
  });

  it('learned variance (Eq. 9) spans log beta~ (v = -1) to log beta (v = 1)', () => {
    const lo = diffusion.learnedLogVariance(tf.fill([2, 1, 1, 2], -1) as tf.Tensor4D, t);
    const hi = diffusion.learnedLogVariance(tf.fill([2, 1, 1, 2], 1) as tf.Tensor4D, t);
    const mid = diffusion.learnedLogVariance(tf.zeros([2, 1, 1, 2]) as tf.Tensor4D, t);
    close(val(lo), [3, 3, 700, 700].map((i) => Math.log(diffusion.posteriorVariance[i]!)), 1e-4);
    close(val(hi), [3, 3, 700, 700].map((i) => Math.log(diffusion.betas[i]!)), 1e-4);
    close(val(mid), [3, 3, 700, 700].map((i) => 0.5 * Math.log(diffusion.betas[i]!) + 0.5 * Math.log(diffusion.posteriorVariance[i]!)), 1e-4);
  });

  it('a DDIM step with the true noise lands exactly on q(x_{t-1} | x0) with the same noise', () => {
    const xt = diffusion.qSample(x0, t, noise);
    const prev = tf.tensor1d([1, 650], 'int32');
    // From 3 to 1 and from 700 to 650: neighbours in a respaced schedule over those timesteps.
    const sp = new SpacedDiffusion(diffusion, [1, 3, 650, 700]);
    const { sample, predX0 } = diffusion.ddimStep(xt, noise, [{ diffusion: sp, index: 1 }, { diffusion: sp, index: 3 }]);
    close(val(sample), val(diffusion.qSample(x0, prev, noise)), 1e-3);
    close(val(predX0), val(x0), 1e-3);
  });

  it('x0 estimates are clipped to the data range: [-1, 1] for pixels, x0Range for latents, none without one', () => {
    // At the last timestep alpha-bar is ~0, so a slightly wrong epsilon puts x0 far outside the data.
    const xt = tf.fill([1, 2, 2, 1], 1) as tf.Tensor4D;
    const eps = tf.fill([1, 2, 2, 1], 0.9) as tf.Tensor4D;
    const T = diffusion.numTimesteps - 1;
    const step = (d: GaussianDiffusion) => {
      const sp = new SpacedDiffusion(d, [T - 20, T]);
      return Math.max(...val(sp.ddimStep(xt, eps, [{ diffusion: sp, index: 1 }]).predX0));
    };
    const betas = cosineBetas(1000);
    expect(step(diffusion)).toBeCloseTo(1, 5);
    expect(step(new GaussianDiffusion(betas, { dataKind: 'continuous', x0Range: 2.5 }))).toBeCloseTo(2.5, 5);
    expect(step(new GaussianDiffusion(betas, { dataKind: 'continuous' }))).toBeGreaterThan(10);
    // A respaced schedule keeps its base's range.
    const spaced = new SpacedDiffusion(new GaussianDiffusion(betas, { dataKind: 'continuous', x0Range: 2.5 }), spacedTimesteps(1000, 10));
    expect(spaced.x0Range).toBe(2.5);
  });
});

describe('losses', () => {
  it('KL of identical Gaussians is 0 and matches the closed form otherwise', () => {
    const m = tf.tensor1d([0.3, -2]);
    const lv = tf.tensor1d([0.1, -1]);
    close(val(normalKl(m, lv, m, lv)), [0, 0]);
    // KL(N(0, 1) || N(1, e^2)) = log(e/1) + (1 + 1) / (2 e^2) - 1/2
    const kl = normalKl(tf.scalar(0), tf.scalar(0), tf.scalar(1), tf.scalar(2));
    expect(kl.dataSync()[0]).toBeCloseTo(1 + 2 / (2 * Math.E ** 2) - 0.5, 5);
  });

  it('the approximate normal CDF is close to the true one', () => {
    const x = [-2, -1, 0, 0.5, 1.5];
    const want = [0.02275, 0.158655, 0.5, 0.691462, 0.933193];
    close(val(approxStandardNormalCdf(tf.tensor1d(x))), want, 2e-3);
  });

  it('the discretised Gaussian likelihood sums to 1 over the 256 pixel bins', () => {
    for (const [mean, logScale] of [[0, Math.log(0.1)], [0.9, Math.log(0.02)], [-0.3, Math.log(0.5)]] as const) {
      const bins = tf.tensor1d(Float32Array.from({ length: 256 }, (_, i) => i / 127.5 - 1));
      const ll = discretizedGaussianLogLikelihood(bins, tf.fill([256], mean), tf.fill([256], logScale));
      expect(tf.sum(tf.exp(ll)).dataSync()[0]).toBeCloseTo(1, 3);
      // among the inner bins (the two end bins take the tails), the one nearest the mean is the most likely
      const p = val(tf.exp(ll)).slice(1, 255);
      const best = p.indexOf(Math.max(...p)) + 1;
      expect(Math.abs(best / 127.5 - 1 - mean)).toBeLessThanOrEqual(1 / 127.5 + 1e-6);
    }
  });
});

describe('respacing', () => {
  it('takes count uniformly spread steps including both ends', () => {
    const ts = spacedTimesteps(T, 250);
    expect(ts.length).toBe(250);
    expect(ts[0]).toBe(0);
    expect(ts[249]).toBe(999);
    expect(spacedTimesteps(T, 1)).toEqual([999]);
    expect(spacedTimesteps(10, 10)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });
  it('keeps the base alphabar at the kept steps and maps indices to original timesteps', () => {
    const sp = new SpacedDiffusion(diffusion, spacedTimesteps(T, 50));
    sp.timestepMap.forEach((t, i) => expect(sp.alphasCumprod[i]).toBeCloseTo(diffusion.alphasCumprod[t]!, 12));
    expect(sp.numTimesteps).toBe(50);
    sp.dispose();
  });
});

describe('trainingLosses (Eq. 10-11)', () => {
  it('mse is the epsilon error, and the VLB gradient reaches v but not epsilon', () => {
    const x0 = tf.randomUniform([2, 4, 4, 3], -1, 1, 'float32', 3) as tf.Tensor4D;
    const noise = tf.randomNormal([2, 4, 4, 3], 0, 1, 'float32', 4) as tf.Tensor4D;
    const out = tf.variable(tf.randomNormal([2, 4, 4, 6], 0, 0.5, 'float32', 5));
    const t = tf.tensor1d([0, 400], 'int32');
    const run = (pick: 'mse' | 'vlb' | 'loss'): tf.Tensor =>
      tf.grad((o: tf.Tensor) => tf.sum(diffusion.trainingLosses(() => o as tf.Tensor4D, x0, t, { noise, gamma: 1.5 })[pick]))(out);
    const [gEpsVlb, gVVlb] = tf.split(run('vlb'), 2, 3);
    expect(tf.max(tf.abs(gEpsVlb!)).dataSync()[0]).toBe(0);
    expect(tf.max(tf.abs(gVVlb!)).dataSync()[0]).toBeGreaterThan(0);
    // d loss / d eps == d mse / d eps (the gradient identity of the stop-gradient), = -2 (noise - eps) / numel
    const [gEpsLoss] = tf.split(run('loss'), 2, 3);
    const [eps] = tf.split(out, 2, 3);
    close(val(gEpsLoss!), val(tf.mul(-2 / 48, tf.sub(noise, eps!))), 1e-5);
    const l = diffusion.trainingLosses(() => out as unknown as tf.Tensor4D, x0, t, { noise, gamma: 1.5 });
    close(val(l.mse), val(tf.mean(tf.square(tf.sub(noise, eps!)).reshape([2, -1]), 1)), 1e-5);
    close(val(l.loss), val(tf.add(l.mse, tf.mul(1.5, l.vlb))), 1e-5);
    out.dispose();
  });

  it('P2 weighting scales each item\'s mse by 1 / (1 + SNR_t)^gamma and leaves the reported mse and vlb alone', () => {
    const x0 = tf.randomUniform([3, 4, 4, 3], -1, 1, 'float32', 6) as tf.Tensor4D;
    const noise = tf.randomNormal([3, 4, 4, 3], 0, 1, 'float32', 7) as tf.Tensor4D;
    const out = tf.randomNormal([3, 4, 4, 6], 0, 0.5, 'float32', 8) as tf.Tensor4D;
    const t = tf.tensor1d([50, 500, 950], 'int32');
    const plain = diffusion.trainingLosses(() => out, x0, t, { noise, gamma: 1.5 });
    const p2 = diffusion.trainingLosses(() => out, x0, t, { noise, gamma: 1.5, p2Gamma: 1 });
    close(val(p2.mse), val(plain.mse));
    close(val(p2.vlb), val(plain.vlb));
    const w = [50, 500, 950].map((i) => {
      const ab = diffusion.alphasCumprod[i]!;
      return 1 / (1 + ab / (1 - ab));
    });
    close(val(p2.loss), val(plain.mse).map((m, i) => w[i]! * m + 1.5 * val(plain.vlb)[i]!));
    // The weight shifts from nearly clean to noisy timesteps; gamma 0 is the paper's uniform weighting.
    expect(w[0]).toBeLessThan(0.05);
    expect(w[2]).toBeGreaterThan(0.95);
    expect(p2Weight(0.5, 0)).toBe(1);
    expect(p2Weight(0.5, 1)).toBeCloseTo(0.5, 12);
    expect(p2Weight(0.5, 0.5)).toBeCloseTo(Math.SQRT1_2, 12);
  });
});


describe('ODE solvers on the respaced schedule (DDIM, DPM-Solver++(2M))', () => {
  // Data x0 ~ N(m, s^2) per element: the exact epsilon prediction and the exact probability-flow ODE solution are
  // known. Along the ODE (x_t - alpha_t m) / sqrt(alpha_t^2 s^2 + sigma_t^2) is constant, so x_T maps to
  // x0 = m + s (x_T - alpha_T m) / sqrt(alpha_T^2 s^2 + sigma_T^2).
  const m = 0.3;
  const sd = 0.5;
  const base = new GaussianDiffusion(cosineBetas(T), { dataKind: 'continuous' });
  const xT = tf.randomNormal([1, 4, 4, 2], 0, 1, 'float32', 11) as tf.Tensor4D;
  const exact = (() => {
    const aT = base.sqrtAlphasCumprod[T - 1]!;
    const sT = base.sqrtOneMinusAlphasCumprod[T - 1]!;
    return tf.add(m, tf.mul(sd / Math.sqrt(aT * aT * sd * sd + sT * sT), tf.sub(xT, aT * m)));
  })();
  const solve = (steps: number, solver: 'ddim' | 'dpm++2m'): number =>
    tf.tidy(() => {
      const sp = new SpacedDiffusion(base, spacedTimesteps(T, steps));
      let x = xT;
      let prev: tf.Tensor4D | null = null;
      for (let index = steps - 1; index >= 0; index--) {
        const a = sp.sqrtAlphasCumprod[index]!;
        const s = sp.sqrtOneMinusAlphasCumprod[index]!;
        const eps = tf.mul(s / (a * a * sd * sd + s * s), tf.sub(x, a * m)) as tf.Tensor4D;
        const at = [{ diffusion: sp, index }];
        const x0 = sp.predictX0FromEps(x, at, eps);
        x = sp.dpmSolverStep(x, x0, prev, at, [solver === 'dpm++2m' && prev ? 2 : 1]);
        prev = x0;
      }
      return tf.max(tf.abs(tf.sub(x, exact))).dataSync()[0]!;
    });

  it('DPM-Solver++(2M) is closer to the exact ODE solution than DDIM at the same few steps, and converges', () => {
    const err = Object.fromEntries([5, 8, 10, 20].map((n) => [n, { ddim: solve(n, 'ddim'), dpm: solve(n, 'dpm++2m') }]));
    for (const n of [5, 8, 10, 20]) expect(err[n]!.dpm).toBeLessThan(err[n]!.ddim);
    // Second order: at 20 steps well below DDIM's error, and falling faster than DDIM's from 10 to 20 steps.
    expect(err[20]!.dpm).toBeLessThan(err[20]!.ddim / 3);
    expect(err[20]!.dpm / err[10]!.dpm).toBeLessThan(err[20]!.ddim / err[10]!.ddim);
    expect(err[10]!.dpm).toBeLessThan(err[5]!.dpm);
  });

  it('the first-order step is DDIM, and the last step lands on the x0 estimate', () => {
    const sp = new SpacedDiffusion(diffusion, spacedTimesteps(T, 10));
    const xt = tf.randomNormal([2, 2, 2, 1], 0, 1, 'float32', 5) as tf.Tensor4D;
    const eps = tf.randomNormal([2, 2, 2, 1], 0, 1, 'float32', 6) as tf.Tensor4D;
    const at = [{ diffusion: sp, index: 6 }, { diffusion: sp, index: 0 }];
    const ddim = sp.ddimStep(xt, eps, at, { clip: false });
    // DDIM written as q(x_{t-1} | x0) with the same epsilon (Eq. 3 at t-1).
    const x0 = sp.predictX0FromEps(xt, at, eps);
    const want = tf.add(tf.mul(sp.extract('sqrtAlphasCumprodPrev', at), x0), tf.mul(sp.extract('sqrtOneMinusAlphasCumprodPrev', at), eps));
    close(val(ddim.sample), val(want), 1e-4);
    close(val(sp.dpmSolverStep(xt, x0, null, at, [1, 1])), val(ddim.sample), 1e-5);
    // Index 0 goes to alphabar = 1: x_prev is the x0 estimate, whatever order is asked.
    close(val(sp.dpmSolverStep(xt, x0, tf.zerosLike(x0), at, [2, 2])).slice(4), val(x0).slice(4), 1e-5);
    const c = sp.solverCoefficients(0, 2);
    expect([c.a, c.b, c.c]).toEqual([0, 1, 0]);
    // A second-order step differs from the first-order one and needs the previous estimate.
    expect(sp.solverCoefficients(6, 2).c).toBeLessThan(0);
    expect(() => sp.dpmSolverStep(xt, x0, null, at, [2, 2])).toThrow(/previous x0/);
  });
});
