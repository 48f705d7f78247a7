import { describe, expect, it } from 'vitest';
import { learnByteBpe, tokenizerFromJSON, BPE_PAD } from '../../src/model/index.js';
import { generateIclevrEpisodes, mulberry32, trainingGrammarSample } from '../../src/data/index.js';

const canonical = generateIclevrEpisodes({ count: 100, seed: 0 }).flatMap((e) => e.turns.map((t) => t.text));
const corpus = [...canonical, ...trainingGrammarSample(mulberry32(1), canonical, 3000)];
const tok = learnByteBpe(corpus, { maxMerges: 600, contextLength: 32 });

describe('learnt byte-level BPE', () => {
  it('makes every frequent word one token, and is deterministic', () => {
    for (const w of ['add', 'cube', 'sphere', 'cylinder', 'behind', 'left', 'right', 'front', 'center', 'ball', 'grey', 'purple', '.'])
      expect(tok.tokenize(w), w).toHaveLength(1);
    const again = learnByteBpe(corpus, { maxMerges: 600, contextLength: 32 });
    expect(JSON.stringify(again.toJSON())).toBe(JSON.stringify(tok.toJSON()));
  });

  it('never maps a text to an unknown token: typos, new words, other scripts all become known pieces', () => {
    const texts = ['Add a red cyllinder beside the bleu globe', 'put a magenta pyramid on top', 'Füge einen roten Würfel hinzu', '把红色立方体放在中间 🙂', 'x'.repeat(200)];
    for (const t of texts) {
      const ids = tok.tokenize(t);
      expect(ids.length).toBeGreaterThan(0);
      // The only unknown-symbol fallback of the tokenizer is the end id; it must never be used.
      expect(ids.includes(tok.endId), t).toBe(false);
      expect(ids.every((i) => i >= 0 && i < tok.vocabSize)).toBe(true);
    }
    expect(tok.decode(tok.tokenize('Add a red cyllinder beside the bleu globe'))).toBe('add a red cyllinder beside the bleu globe');
  });

  it('frames texts with its own start, end and pad tokens, and survives a JSON round trip', () => {
    const enc = tok.encode(['add a red cube at the center.']);
    expect(enc.ids[0]![0]).toBe(tok.startId);
    expect(enc.ids[0]![enc.endIndex[0]!]).toBe(tok.endId);
    expect(enc.ids[0]![31]).toBe(tok.padId);
    expect(tok.decode([tok.padId])).toBe('');
    expect(tok.padId).not.toBe(tok.endId);
    const back = tokenizerFromJSON(JSON.parse(JSON.stringify(tok.toJSON())));
    expect(back.vocabSize).toBe(tok.vocabSize);
    expect(back.padId).toBe(tok.padId);
    expect(back.contextLength).toBe(32);
    for (const t of corpus.slice(0, 200)) expect(back.tokenize(t)).toEqual(tok.tokenize(t));
    expect(JSON.stringify(tok.toJSON())).toContain(BPE_PAD);
  });
});
