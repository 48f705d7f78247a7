import { describe, expect, it } from 'vitest';
import { ValidationSchedule } from '../../src/train/schedule.js';

describe('ValidationSchedule (keep best, restore and halve on a worse loss, stop at the 5th restore)', () => {
  it('keeps improving losses, restores and halves the lr on a worse one, and stops on the 5th restoration', () => {
    const s = new ValidationSchedule(1e-4);
    expect(s.observe(1.0, 100)).toBe('improved');
    expect(s.observe(0.8, 200)).toBe('improved');
    expect(s.observe(0.9, 300)).toBe('restore');
    expect(s.lr).toBeCloseTo(5e-5, 12);
    expect(s.best).toBe(0.8);
    expect(s.bestStep).toBe(200);
    expect(s.observe(0.8, 400)).toBe('restore'); // equal is not an improvement
    expect(s.observe(0.7, 500)).toBe('improved');
    expect(s.lr).toBeCloseTo(2.5e-5, 12); // improvements do not reset the lr
    expect(s.observe(Number.NaN, 600)).toBe('restore'); // a diverged run counts as worse
    expect(s.observe(0.75, 700)).toBe('restore');
    expect(s.restores).toBe(4);
    expect(s.observe(0.71, 800)).toBe('stop');
    expect(s.restores).toBe(5);
    expect(s.lr).toBeCloseTo(1e-4 / 32, 12);
    expect(s.bestStep).toBe(500);
  });

  it('serialises and restores its state', () => {
    const s = new ValidationSchedule(0.01);
    s.observe(2, 1);
    s.observe(3, 2);
    const t = new ValidationSchedule(0.01);
    t.load(JSON.parse(JSON.stringify(s.state())));
    expect(t.state()).toEqual(s.state());
    expect(t.observe(1.5, 3)).toBe('improved');
  });

  it('with patience 3 restores only after three non-improving validations in a row; NaN restores at once', () => {
    const s = new ValidationSchedule(1e-3, { patience: 3 });
    expect(s.observe(1.0, 1)).toBe('improved');
    expect(s.observe(1.1, 2)).toBe('wait');
    expect(s.observe(1.0, 3)).toBe('wait'); // equal is still not an improvement
    expect(s.lr).toBe(1e-3);
    expect(s.observe(1.2, 4)).toBe('restore');
    expect(s.lr).toBeCloseTo(5e-4, 12);
    expect(s.observe(1.3, 5)).toBe('wait'); // the count starts again after a restore
    expect(s.observe(0.9, 6)).toBe('improved'); // and after an improvement
    expect(s.observe(1.0, 7)).toBe('wait');
    expect(s.observe(Number.NaN, 8)).toBe('restore');
    expect(s.restores).toBe(2);
    const t = new ValidationSchedule(1e-3, { patience: 3 });
    s.observe(1.0, 9);
    t.load(JSON.parse(JSON.stringify(s.state())));
    expect(t.observe(1.0, 10)).toBe('wait');
    expect(t.observe(1.0, 11)).toBe('restore'); // the saved miss count carried over
    expect(() => new ValidationSchedule(1e-3, { patience: 0 })).toThrow(RangeError);
  });
});
