import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  backgroundFor,
  generateIclevrEpisodes,
  iclevrBackground,
  loadCodraw,
  objectLabel,
  renderCodraw,
  renderIclevr,
  renderScene,
  turnTriple,
  turnTriples,
  type SceneObject,
} from '../../src/data/index.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/codraw', import.meta.url));
const opts = { clipartDir: join(FIXTURE, 'clipart') };

describe('renderScene / backgroundFor', () => {
  it('dispatch to the dataset renderer and refuse the other dataset\'s objects', () => {
    const ic = generateIclevrEpisodes({ count: 1, seed: 5 })[0]!;
    const objs = ic.turns[2]!.objects;
    expect(renderScene('iclevr', objs, 48)).toEqual(renderIclevr(objs, 48));
    expect(backgroundFor('iclevr', 48)).toEqual(iclevrBackground(48));
    const cd = loadCodraw({ dir: FIXTURE, split: 'val' })[0]!;
    expect(renderScene('codraw', cd.turns[0]!.objects, 48, opts)).toEqual(renderCodraw(cd.turns[0]!.objects, 48, opts));
    expect(backgroundFor('codraw', 48, opts)).toEqual(renderCodraw([], 48, opts));
    expect(() => renderScene('codraw', objs as SceneObject[], 48, opts)).toThrow(/i-CLEVR object/);
    expect(() => renderScene('iclevr', cd.turns[0]!.objects as SceneObject[], 48)).toThrow(/CoDraw object/);
  });

  it('labels objects for detectors and metrics', () => {
    expect(objectLabel({ shape: 'cube', color: 'red', x: 0.5, y: 0.5 })).toBe('red cube');
    expect(objectLabel({ cls: 22, x: 0.5, y: 0.5, z: 0, flip: false })).toBe('dog');
  });
});

describe('turnTriples', () => {
  it('chains each turn\'s target into the next turn\'s reference, starting from the background', () => {
    for (const ep of [generateIclevrEpisodes({ count: 1, seed: 9 })[0]!, loadCodraw({ dir: FIXTURE, split: 'val' })[1]!]) {
      const triples = turnTriples(ep, 32, opts);
      expect(triples).toHaveLength(ep.turns.length);
      expect(triples[0]!.reference).toEqual(backgroundFor(ep.dataset, 32, opts));
      triples.forEach((t, i) => {
        expect(t.turn).toBe(i);
        expect(t.text).toBe(ep.turns[i]!.text);
        expect(t.objects).toEqual(ep.turns[i]!.objects);
        expect(t.target).toEqual(renderScene(ep.dataset, ep.turns[i]!.objects, 32, opts));
        if (i > 0) expect(t.reference).toBe(triples[i - 1]!.target);
        expect(t.target).not.toEqual(t.reference); // every turn changes the canvas
        expect(turnTriple(ep, i, 32, opts)).toEqual(t); // one turn alone renders the same triple
      });
      expect(() => turnTriple(ep, ep.turns.length, 32, opts)).toThrow(/no turn/);
    }
  });
});
