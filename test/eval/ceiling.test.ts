import { describe, expect, it } from 'vitest';
import { generateIclevrEpisodes, type Episode } from '../../src/data/index.js';
import { iclevrRsimCeiling } from '../../src/eval/index.js';

const episodes = generateIclevrEpisodes({ count: 40, seed: 1, split: 'val' });

describe('iclevrRsimCeiling', () => {
  it('is below 1 (instructions leave positions open) and higher teacher-forced, where only one object is redrawn', () => {
    const c = iclevrRsimCeiling(episodes, { samples: 20 });
    expect(c.iterative).toBeGreaterThan(0.75);
    expect(c.iterative).toBeLessThan(0.97);
    expect(c.teacherForced).toBeGreaterThan(c.iterative);
    expect(c.teacherForced).toBeGreaterThan(0.9);
    expect(iclevrRsimCeiling(episodes, { samples: 20 })).toEqual(c);
  });

  it('follows the instructions: mirrored left/right wording lowers it', () => {
    const mirror = (t: string) => t.replace(/left|right/g, (w) => (w === 'left' ? 'right' : 'left'));
    const mirrored: Episode[] = episodes.map((e) => ({ ...e, turns: e.turns.map((t) => ({ ...t, text: mirror(t.text) })) })) as Episode[];
    const c = iclevrRsimCeiling(episodes, { samples: 20 });
    const m = iclevrRsimCeiling(mirrored, { samples: 20 });
    expect(m.iterative).toBeLessThan(c.iterative - 0.1);
    expect(m.teacherForced).toBeLessThan(c.teacherForced - 0.05);
  });

  it('refuses CoDraw episodes', () => {
    expect(() => iclevrRsimCeiling([{ id: 'x', dataset: 'codraw', turns: [] } as unknown as Episode])).toThrow(/i-CLEVR/);
  });
});
