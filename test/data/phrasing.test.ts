import { describe, expect, it } from 'vitest';
import {
  TRAINING_LEXICON,
  generateIclevrEpisodes,
  heldOutPhrasing,
  mulberry32,
  paraphraseEpisodes,
  parseEpisodes,
  parseIclevrInstruction,
  rephraseIclevrText,
  trainingTypo,
} from '../../src/data/index.js';

const episodes = generateIclevrEpisodes({ count: 60, seed: 3 });
const canonical = episodes.flatMap((e) => e.turns.map((t) => t.text));

/** The words of a text, lower-cased, punctuation dropped. */
const words = (s: string): string[] => s.toLowerCase().match(/[a-z']+(?:-[a-z]+)?/g) ?? [];

describe('i-CLEVR instruction grammar (training)', () => {
  it('parses every canonical instruction, and nothing else', () => {
    for (const t of canonical) expect(parseIclevrInstruction(t), t).not.toBeNull();
    expect(parseIclevrInstruction('Add a red cube near the blue sphere.')).toBeNull();
    expect(parseIclevrInstruction('Add a pink cube at the center.')).toBeNull();
    expect(parseIclevrInstruction('hello')).toBeNull();
  });

  it('rewords deterministically and keeps what is asked: a word for the colour, the shape and each axis', () => {
    const synonyms = (map: Record<string, string[]>, k: string) => map[k]!;
    const axis = { left: ['left'], right: ['right'], behind: ['behind', 'back', 'further', 'farther'], front: ['front', 'closer', 'nearer', 'ahead'] };
    let changed = 0;
    canonical.forEach((t, i) => {
      const a = rephraseIclevrText(mulberry32(i), t, { typoRate: 0 });
      expect(rephraseIclevrText(mulberry32(i), t, { typoRate: 0 })).toBe(a);
      if (a !== t) changed++;
      const ins = parseIclevrInstruction(t)!;
      const w = words(a);
      expect(w.some((x) => synonyms(TRAINING_LEXICON.colors, ins.color).includes(x)), a).toBe(true);
      expect(w.some((x) => synonyms(TRAINING_LEXICON.shapes, ins.shape).includes(x)), a).toBe(true);
      const r = ins.relation;
      if (!r) return;
      expect(w.some((x) => synonyms(TRAINING_LEXICON.colors, r.anchorColor).includes(x)), a).toBe(true);
      if (r.dx !== 0) expect(w.some((x) => axis[r.dx < 0 ? 'left' : 'right'].includes(x)), a).toBe(true);
      if (r.dy !== 0) expect(w.some((x) => axis[r.dy < 0 ? 'behind' : 'front'].includes(x)), a).toBe(true);
      // The other side is never said.
      if (r.dx !== 0) expect(w.includes(r.dx < 0 ? 'right' : 'left'), a).toBe(false);
    });
    expect(changed).toBeGreaterThan(canonical.length * 0.9);
  });

  it('says one instruction many ways', () => {
    const t = 'Add a red cube behind and to the left of the blue sphere.';
    const seen = new Set(Array.from({ length: 300 }, (_, i) => rephraseIclevrText(mulberry32(1000 + i), t)));
    expect(seen.size).toBeGreaterThan(250);
  });

  it('a typo changes one word by one letter', () => {
    for (let i = 0; i < 50; i++) {
      const s = 'place a yellow cylinder behind the green sphere';
      const t = trainingTypo(mulberry32(i), s);
      const a = s.split(' ');
      const b = t.split(' ');
      expect(b.length).toBe(a.length);
      const diff = a.filter((w, j) => w !== b[j]);
      expect(diff.length).toBeLessThanOrEqual(1);
      if (diff.length) expect(Math.abs(b[a.indexOf(diff[0]!)]!.length - diff[0]!.length)).toBeLessThanOrEqual(1);
    }
  });
});

describe('held-out paraphrases (validation)', () => {
  it('use wordings and frames the training grammar never produces', () => {
    const train = new Set<string>();
    canonical.forEach((t, i) => {
      for (let k = 0; k < 5; k++) words(rephraseIclevrText(mulberry32(i * 7 + k), t)).forEach((w) => train.add(w));
    });
    // Requests and wishes ("could you", "i'd like", "there should be") are in both: people say them all the time.
    const heldOnly = ['next', 'start', 'first', 'begin', 'placing', 'left-hand', 'right-hand', 'very'];
    for (const w of heldOnly) expect(train.has(w), w).toBe(false);
    const held = canonical.map((t, i) => heldOutPhrasing(mulberry32(i), parseIclevrInstruction(t)!));
    const heldWords = new Set(held.flatMap(words));
    expect(heldOnly.filter((w) => heldWords.has(w)).length).toBeGreaterThanOrEqual(6);
    // Nor does the training grammar produce any held-out sentence as it stands.
    const trainSentences = new Set(canonical.flatMap((t, i) => Array.from({ length: 5 }, (_, k) => rephraseIclevrText(mulberry32(i * 7 + k), t).toLowerCase())));
    expect(held.filter((h) => trainSentences.has(h.toLowerCase())).length).toBe(0);
  });

  it('paraphraseEpisodes rewords every turn, keeps scenes and the canonical text, and stays a valid episode file', () => {
    const p = paraphraseEpisodes(episodes, 1);
    expect(paraphraseEpisodes(episodes, 1)).toEqual(p);
    expect(paraphraseEpisodes(episodes, 2)).not.toEqual(p);
    p.forEach((e, i) =>
      e.turns.forEach((t, j) => {
        expect(t.canonicalText).toBe(episodes[i]!.turns[j]!.text);
        expect(t.text).not.toBe(t.canonicalText);
        expect(t.objects).toEqual(episodes[i]!.turns[j]!.objects);
      }),
    );
    const back = parseEpisodes(p.map((e) => JSON.stringify(e)).join('\n'));
    expect(back).toEqual(p);
  });
});
