import { describe, expect, it } from 'vitest';
import {
  aggregateScores,
  precisionRecallF1,
  relationHolds,
  relationalSimilarity,
  sceneGraph,
  scoreEpisode,
  type LocatedObject,
} from '../../src/eval/metrics.js';

const o = (label: string, x: number, y: number, z?: number): LocatedObject => ({ label, x, y, ...(z === undefined ? {} : { z }) });

describe('precisionRecallF1', () => {
  it('scores overlapping label sets per image', () => {
    const s = precisionRecallF1(['red cube', 'blue sphere', 'gray cylinder'], ['red cube', 'blue sphere', 'cyan cube', 'green cube']);
    expect(s.precision).toBeCloseTo(2 / 4);
    expect(s.recall).toBeCloseTo(2 / 3);
    expect(s.f1).toBeCloseTo((2 * 0.5 * (2 / 3)) / (0.5 + 2 / 3));
  });

  it('counts a duplicated label once', () => {
    expect(precisionRecallF1(['a', 'a'], ['a'])).toEqual({ precision: 1, recall: 1, f1: 1 });
  });

  it('gives 0 for any ratio with an empty denominator (zero_division=0), including both sets empty', () => {
    expect(precisionRecallF1(['a', 'b'], [])).toEqual({ precision: 0, recall: 0, f1: 0 });
    expect(precisionRecallF1([], ['a'])).toEqual({ precision: 0, recall: 0, f1: 0 });
    expect(precisionRecallF1([], [])).toEqual({ precision: 0, recall: 0, f1: 0 });
  });
});

describe('sceneGraph', () => {
  it('compares each object with the image centre on the diagonal', () => {
    // Left of and below the centre: x sign -1, y sign +1 (y grows downward).
    const g = sceneGraph([o('a', 0.2, 0.8)], 'y');
    expect([...g]).toEqual([-1, 1]);
    // Exactly at the centre: both signs 0.
    expect([...sceneGraph([o('a', 0.5, 0.5)], 'y')]).toEqual([0, 0]);
  });

  it('holds pairwise signs of x then y differences, row i compared with column j', () => {
    const g = sceneGraph([o('a', 0.2, 0.3), o('b', 0.7, 0.6)], 'y');
    // x plane: [a-centre, a-b; b-a, b-centre]
    expect([...g.slice(0, 4)]).toEqual([-1, -1, 1, 1]);
    // y plane
    expect([...g.slice(4)]).toEqual([-1, -1, 1, 1]);
  });

  it('uses depth instead of y for CoDraw, with the middle depth level as the centre', () => {
    // Same y, different depth: y would give 0, depth gives signs; z = 1 is the centre.
    const objs = [o('tree', 0.3, 0.5, 2), o('boy', 0.6, 0.5, 1)];
    const g = sceneGraph(objs, 'z');
    expect([...g.slice(4)]).toEqual([1, 1, -1, 0]);
    expect([...sceneGraph(objs, 'y').slice(4)]).toEqual([0, 0, 0, 0]);
    expect(() => sceneGraph([o('a', 0.1, 0.1)], 'z')).toThrow(/depth/);
  });
});

describe('relationHolds', () => {
  const scene = [o('red cube', 0.3, 0.4), o('blue sphere', 0.6, 0.7)];

  it('checks each constrained axis of the asked side and ignores a free axis', () => {
    expect(relationHolds(scene, { label: 'red cube', anchor: 'blue sphere', dx: -1, dy: 0 })).toBe(true);
    expect(relationHolds(scene, { label: 'red cube', anchor: 'blue sphere', dx: -1, dy: -1 })).toBe(true);
    expect(relationHolds(scene, { label: 'red cube', anchor: 'blue sphere', dx: -1, dy: 1 })).toBe(false);
    expect(relationHolds(scene, { label: 'red cube', anchor: 'blue sphere', dx: 1, dy: 0 })).toBe(false);
    expect(relationHolds(scene, { label: 'blue sphere', anchor: 'red cube', dx: 0, dy: 1 })).toBe(true);
  });

  it('is null when the object or its anchor is missing', () => {
    expect(relationHolds(scene, { label: 'green cube', anchor: 'blue sphere', dx: -1, dy: 0 })).toBeNull();
    expect(relationHolds(scene, { label: 'red cube', anchor: 'green cube', dx: -1, dy: 0 })).toBeNull();
  });
});

describe('relationalSimilarity', () => {
  const gt = [o('red cube', 0.2, 0.4), o('blue sphere', 0.8, 0.7), o('gray cylinder', 0.5, 0.3)];

  it('is 1 for identical layouts and 0 when nothing is detected', () => {
    expect(relationalSimilarity(gt, gt, 'y')).toBe(1);
    expect(relationalSimilarity(gt, [], 'y')).toBe(0);
    expect(relationalSimilarity([], gt, 'y')).toBe(0);
  });

  it('multiplies recall by the share of equal entries over the shared objects', () => {
    // Only two of three detected (recall 2/3); blue sphere moved to the far left.
    const gen = [o('red cube', 0.2, 0.4), o('blue sphere', 0.1, 0.7), o('yellow cube', 0.9, 0.9)];
    // Shared sorted: blue sphere, red cube. GT graph x: [+1, +1; -1, -1]; gen x: [-1, -1; +1, -1];
    // y planes agree fully. Equal entries: x plane 1 of 4 (the red cube vs centre), y plane 4 of 4 -> 5/8.
    expect(relationalSimilarity(gt, gen, 'y')).toBeCloseTo((2 / 3) * (5 / 8));
  });

  it('depends on depth, not y, for CoDraw', () => {
    const ref = [o('sun', 0.2, 0.1, 2), o('mike', 0.6, 0.7, 0)];
    const sameDepthOtherY = [o('sun', 0.2, 0.9, 2), o('mike', 0.6, 0.1, 0)];
    const otherDepth = [o('sun', 0.2, 0.1, 0), o('mike', 0.6, 0.7, 2)];
    expect(relationalSimilarity(ref, sameDepthOtherY, 'z')).toBe(1);
    expect(relationalSimilarity(ref, otherDepth, 'z')).toBeLessThan(1);
  });
});

describe('scoreEpisode / aggregateScores', () => {
  it('averages precision/recall/F1 over all turns and RSIM over final turns', () => {
    const a = scoreEpisode(
      {
        reference: [[o('a', 0.3, 0.3)], [o('a', 0.3, 0.3), o('b', 0.7, 0.7)]],
        generated: [[o('a', 0.3, 0.3)], []],
      },
      'y',
    );
    expect(a.turns).toEqual([
      { precision: 1, recall: 1, f1: 1 },
      { precision: 0, recall: 0, f1: 0 },
    ]);
    expect(a.rsim).toBe(0);
    const b = scoreEpisode({ reference: [[o('c', 0.2, 0.2)]], generated: [[o('c', 0.25, 0.3)]] }, 'y');
    expect(b.rsim).toBe(1);
    const agg = aggregateScores([a, b]);
    expect(agg).toMatchObject({ episodes: 2, turns: 3 });
    expect(agg.f1).toBeCloseTo(2 / 3);
    expect(agg.rsim).toBeCloseTo(0.5);
  });
});
