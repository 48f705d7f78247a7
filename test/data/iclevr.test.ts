import { describe, expect, it } from 'vitest';
import {
  ICLEVR_COLOR_RGB,
  ICLEVR_FLOOR_RGB,
  ICLEVR_GEOMETRY,
  ICLEVR_RELATIONS,
  generateIclevrEpisodes,
  iclevrBackground,
  iclevrLabel,
  iclevrObjectRadius,
  mirrorRelationText,
  relationHardNegatives,
  recoloredTurnText,
  parseRelationTurnText,
  renderIclevr,
  type IclevrObject,
  type RgbImage,
} from '../../src/data/index.js';

const EPS = 1e-9;
const FIRST = /^Add a (\w+) (cube|sphere|cylinder) at the center\.$/;
const rels = ICLEVR_RELATIONS.map((r) => r.text).sort((a, b) => b.length - a.length).join('|');
const LATER = new RegExp(`^Add a (\\w+) (cube|sphere|cylinder) (${rels}) the (\\w+) (cube|sphere|cylinder)\\.$`);

describe('generateIclevrEpisodes', () => {
  const episodes = [
    ...generateIclevrEpisodes({ count: 150, seed: 7, split: 'train' }),
    ...generateIclevrEpisodes({ count: 150, seed: 7, split: 'val' }),
  ];

  it('builds five turns, one new object per turn, each (colour, shape) at most once, scenes cumulative', () => {
    for (const ep of episodes) {
      expect(ep.dataset).toBe('iclevr');
      expect(ep.turns).toHaveLength(5);
      ep.turns.forEach((t, i) => {
        expect(t.objects).toHaveLength(i + 1);
        if (i > 0) expect(t.objects.slice(0, i)).toEqual(ep.turns[i - 1]!.objects);
      });
      const labels = ep.turns[4]!.objects.map(iclevrLabel);
      expect(new Set(labels).size).toBe(5);
    }
  });

  it('words every turn with the exact templates, naming the added object and an object already there', () => {
    const seenRelations = new Set<string>();
    for (const ep of episodes) {
      const first = FIRST.exec(ep.turns[0]!.text);
      expect(first, ep.turns[0]!.text).not.toBeNull();
      expect([first![1], first![2]]).toEqual([ep.turns[0]!.objects[0]!.color, ep.turns[0]!.objects[0]!.shape]);
      expect(parseRelationTurnText(ep.turns[0]!.text)).toBeNull();
      expect(mirrorRelationText(ep.turns[0]!.text)).toBeNull();
      for (let i = 1; i < 5; i++) {
        const m = LATER.exec(ep.turns[i]!.text);
        expect(m, ep.turns[i]!.text).not.toBeNull();
        const added = ep.turns[i]!.objects[i]!;
        expect([m![1], m![2]]).toEqual([added.color, added.shape]);
        const ref = ep.turns[i - 1]!.objects.find((o) => o.color === m![4] && o.shape === m![5]);
        expect(ref, `reference of "${ep.turns[i]!.text}" must already be in the scene`).toBeDefined();
        seenRelations.add(m![3]!);
        // The metrics' parser reads back what the template wrote.
        const rel = ICLEVR_RELATIONS.find((r) => r.text === m![3])!;
        expect(parseRelationTurnText(ep.turns[i]!.text)).toEqual({
          label: iclevrLabel(added),
          anchor: iclevrLabel(ref!),
          dx: rel.dx,
          dy: rel.dy,
        });
        // Its mirror asks for the opposite side and mirrors back.
        const mirrored = mirrorRelationText(ep.turns[i]!.text)!;
        expect(parseRelationTurnText(mirrored)).toEqual({ label: iclevrLabel(added), anchor: iclevrLabel(ref!), dx: -rel.dx || 0, dy: -rel.dy || 0 });
        expect(mirrorRelationText(mirrored)).toBe(ep.turns[i]!.text);
        // Hard negatives: the mirror, and with axes each one-axis mirror of a diagonal relation.
        expect(relationHardNegatives(ep.turns[i]!.text, false)).toEqual([mirrored]);
        const axes = relationHardNegatives(ep.turns[i]!.text, true).map((t) => parseRelationTurnText(t));
        const want = [{ dx: -rel.dx || 0, dy: -rel.dy || 0 }];
        if (rel.dx !== 0 && rel.dy !== 0) want.push({ dx: -rel.dx, dy: rel.dy }, { dx: rel.dx, dy: -rel.dy });
        expect(axes).toEqual(want.map((w) => ({ label: iclevrLabel(added), anchor: iclevrLabel(ref!), ...w })));
        // The geometry matches the relation.
        const dx = added.x - ref!.x;
        const dy = added.y - ref!.y;
        const g = ICLEVR_GEOMETRY;
        if (rel.dx === 0) expect(Math.abs(dx)).toBeLessThan(g.offsetX[0]);
        else {
          expect(Math.sign(dx)).toBe(rel.dx);
          expect(Math.abs(dx)).toBeGreaterThanOrEqual(g.offsetX[0] - EPS);
          expect(Math.abs(dx)).toBeLessThanOrEqual(g.offsetX[1] + EPS);
        }
        if (rel.dy === 0) expect(Math.abs(dy)).toBeLessThan(g.offsetY[0]);
        else {
          expect(Math.sign(dy)).toBe(rel.dy);
          expect(Math.abs(dy)).toBeGreaterThanOrEqual(g.offsetY[0] - EPS);
          expect(Math.abs(dy)).toBeLessThanOrEqual(g.offsetY[1] + EPS);
        }
      }
    }
    expect(seenRelations.size).toBe(8);
  });

  it('keeps every object on the floor and centres at least 0.13 apart', () => {
    for (const ep of episodes) {
      const objs = ep.turns[4]!.objects;
      for (const o of objs) {
        expect(o.x).toBeGreaterThanOrEqual(0.1);
        expect(o.x).toBeLessThanOrEqual(0.9);
        expect(o.y).toBeGreaterThanOrEqual(0.25);
        expect(o.y).toBeLessThanOrEqual(0.9);
      }
      for (let i = 0; i < objs.length; i++)
        for (let j = i + 1; j < objs.length; j++)
          expect(Math.hypot(objs[i]!.x - objs[j]!.x, objs[i]!.y - objs[j]!.y)).toBeGreaterThanOrEqual(0.13);
    }
  });

  it('is deterministic by seed, extends with count, and differs across seeds and splits', () => {
    const a = generateIclevrEpisodes({ count: 20, seed: 42 });
    expect(generateIclevrEpisodes({ count: 20, seed: 42 })).toEqual(a);
    expect(generateIclevrEpisodes({ count: 5, seed: 42 })).toEqual(a.slice(0, 5));
    const b = generateIclevrEpisodes({ count: 20, seed: 43 });
    const v = generateIclevrEpisodes({ count: 20, seed: 42, split: 'val' });
    const key = (e: (typeof a)[number]) => JSON.stringify(e.turns);
    const trainKeys = new Set(a.map(key));
    expect(b.filter((e) => trainKeys.has(key(e)))).toHaveLength(0);
    expect(v.filter((e) => trainKeys.has(key(e)))).toHaveLength(0);
    expect(new Set([...a, ...v].map((e) => e.id)).size).toBe(40);
  });
});

function px(img: RgbImage, x: number, y: number): [number, number, number] {
  const i = (Math.round(y) * img.width + Math.round(x)) * 3;
  return [img.data[i]!, img.data[i + 1]!, img.data[i + 2]!];
}

/** Nearest of the 8 CLEVR colours or 'floor' (any grey between the floor's far and near colours). */
function classify(rgb: [number, number, number]): string {
  const cands: [string, readonly number[]][] = [
    ...Object.entries(ICLEVR_COLOR_RGB),
    ['floor', ICLEVR_FLOOR_RGB.far],
    ['floor', ICLEVR_FLOOR_RGB.near],
  ];
  let best = '';
  let bestD = Infinity;
  for (const [name, c] of cands) {
    const d = (rgb[0] - c[0]!) ** 2 + (rgb[1] - c[1]!) ** 2 + (rgb[2] - c[2]!) ** 2;
    if (d < bestD) [best, bestD] = [name, d];
  }
  return best;
}

describe('renderIclevr', () => {
  const episodes = generateIclevrEpisodes({ count: 30, seed: 11, split: 'val' });

  it('is deterministic and renders the empty floor as the background', () => {
    const objs = episodes[0]!.turns[4]!.objects;
    const a = renderIclevr(objs, 64);
    expect(Buffer.from(renderIclevr(objs, 64).data).equals(Buffer.from(a.data))).toBe(true);
    expect(Buffer.from(renderIclevr([], 64).data).equals(Buffer.from(iclevrBackground(64).data))).toBe(true);
    expect(a.width).toBe(64);
    expect(a.data.length).toBe(64 * 64 * 3);
    const bg = iclevrBackground(64);
    for (let y = 0; y < 64; y += 7) for (let x = 0; x < 64; x += 7) expect(classify(px(bg, x, y))).toBe('floor');
  });

  it.each([64, 128, 97])('puts each visible object\'s colour at its centre and floor away from objects (size %i)', (size) => {
    let checked = 0;
    for (const ep of episodes) {
      const objs = ep.turns[4]!.objects;
      const img = renderIclevr(objs, size);
      const sorted = [...objs].sort((a, b) => a.y - b.y);
      sorted.forEach((o, k) => {
        // Skip a centre that a nearer object (painted later) might cover.
        const covered = sorted.slice(k + 1).some((n) => Math.hypot(n.x - o.x, n.y - o.y) < 1.5 * iclevrObjectRadius(n.y));
        if (covered) return;
        expect(classify(px(img, o.x * size, o.y * size)), `${o.color} ${o.shape} in ${ep.id}`).toBe(o.color);
        checked++;
      });
      // Points far from every object (and its shadow) show the floor.
      for (let gy = 0.05; gy < 1; gy += 0.1)
        for (let gx = 0.05; gx < 1; gx += 0.1)
          if (objs.every((o) => Math.hypot(o.x - gx, o.y - gy) > 2.5 * iclevrObjectRadius(o.y)))
            expect(classify(px(img, gx * size, gy * size))).toBe('floor');
    }
    expect(checked).toBeGreaterThan(100);
  });

  it('draws nearer objects larger and over farther ones', () => {
    const far: IclevrObject = { shape: 'sphere', color: 'red', x: 0.5, y: 0.5 };
    const near: IclevrObject = { shape: 'cube', color: 'blue', x: 0.51, y: 0.51 };
    for (const order of [[far, near], [near, far]]) {
      // Whatever the list order, the nearer cube's front face covers the farther sphere's centre.
      const img = renderIclevr(order, 128);
      expect(classify(px(img, 0.51 * 128, 0.51 * 128))).toBe('blue');
      expect(classify(px(img, 0.5 * 128, 0.5 * 128))).toBe('blue');
    }
    // Size grows with y: count red pixels of one sphere at the back and at the front.
    const count = (y: number) => {
      const img = renderIclevr([{ shape: 'sphere', color: 'red', x: 0.5, y }], 128);
      let n = 0;
      for (let i = 0; i < 128 * 128; i++) if (classify([img.data[i * 3]!, img.data[i * 3 + 1]!, img.data[i * 3 + 2]!]) === 'red') n++;
      return n;
    };
    expect(count(0.85)).toBeGreaterThan(1.5 * count(0.3));
  });

  it('draws the three shapes differently', () => {
    const imgs = (['cube', 'sphere', 'cylinder'] as const).map((shape) =>
      renderIclevr([{ shape, color: 'green', x: 0.5, y: 0.6 }], 64),
    );
    const masks = imgs.map((img) => {
      const m: number[] = [];
      for (let i = 0; i < 64 * 64; i++) m.push(classify([img.data[i * 3]!, img.data[i * 3 + 1]!, img.data[i * 3 + 2]!]) === 'floor' ? 0 : 1);
      return m;
    });
    const diff = (a: number[], b: number[]) => a.reduce((s, v, i) => s + (v !== b[i] ? 1 : 0), 0);
    expect(diff(masks[0]!, masks[1]!)).toBeGreaterThan(5);
    expect(diff(masks[1]!, masks[2]!)).toBeGreaterThan(5);
    expect(diff(masks[0]!, masks[2]!)).toBeGreaterThan(5);
  });
});

describe('recoloredTurnText', () => {
  it('asks for the added object in another colour and leaves the rest of the turn alone', () => {
    const episodes = generateIclevrEpisodes({ count: 60, seed: 3 });
    const pairs = new Set<string>();
    for (const ep of episodes) {
      for (const turn of ep.turns) {
        const added = turn.objects[turn.objects.length - 1]!;
        const neg = recoloredTurnText(turn.text)!;
        const a = turn.text.split(' ');
        const b = neg.split(' ');
        // Only the third word (the new object's colour) differs; the anchor keeps its colour.
        expect(b.length).toBe(a.length);
        expect(b.filter((w, i) => w !== a[i]).length).toBe(1);
        expect(a[2]).toBe(added.color);
        expect(b[2]).not.toBe(added.color);
        expect(Object.keys(ICLEVR_COLOR_RGB)).toContain(b[2]);
        // The same text always gets the same negative.
        expect(recoloredTurnText(turn.text)).toBe(neg);
        pairs.add(`${a[2]}>${b[2]}`);
      }
    }
    // Across texts the swaps spread over the colours (8 x 7 ordered pairs).
    expect(pairs.size).toBeGreaterThan(40);
    expect(recoloredTurnText('Add a shiny cube at the center.')).toBeNull();
    expect(recoloredTurnText('put a red cube somewhere')).toBeNull();
  });
});
