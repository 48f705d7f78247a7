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
});
