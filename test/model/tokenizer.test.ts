import { describe, it, expect } from 'vitest';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  ClipBpeTokenizer, WordTokenizer, bytesToUnicode, clipCleanText, tokenizerFromJSON, idsTensor, splitWords,
} from '../../src/model/tokenizer/index.js';

// A tiny CLIP-style vocabulary; the expected ids below were worked out by hand from these merges.
const VOCAB = [
  '!', '!</w>', 'a', 'a</w>', 'c', 'ca', 'cat</w>', 'f</w>', 'h', 'o', 'o</w>', 'of</w>', 'ot', 'p', 'ph', 't', 't</w>',
  'Ã', '©</w>', 'aa', '<|startoftext|>', '<|endoftext|>',
];
const VOCAB_JSON = JSON.stringify(Object.fromEntries(VOCAB.map((t, i) => [t, i])));
// Rank order matters: "o t" (4) must win over "ph o" (5) in "photo".
const MERGES_TXT = ['#version: 0.2', 'c a', 'ca t</w>', 'o f</w>', 'p h', 'o t', 'ph o', 'a a', ''].join('\n');
const SOT = 20;
const EOT = 21;

function tiny(contextLength = 12): ClipBpeTokenizer {
  return ClipBpeTokenizer.fromVocabMerges(VOCAB_JSON, MERGES_TXT, { contextLength });
}

describe('CLIP byte-level BPE', () => {
  it('maps bytes to printable unicode as GPT-2/CLIP do', () => {
    const t = bytesToUnicode();
    expect(t).toHaveLength(256);
    expect(new Set(t).size).toBe(256);
    expect(t['a'.charCodeAt(0)]).toBe('a');
    expect(t[0]).toBe('\u0100');
    expect(t[32]).toBe('\u0120'); // space -> 'Ġ'
    expect(t[127]).toBe('\u0121');
    expect(t[173]).toBe('\u0143'); // soft hyphen -> 'Ń'
    expect(t[0xc3]).toBe('Ã');
  });

  it('cleans text like CLIP: html unescape, whitespace collapse, lower case', () => {
    expect(clipCleanText('  A\tBig\n\nCAT &amp;amp; dog ')).toBe('a big cat & dog');
  });

  it('applies merges by rank, appends </w> to the last symbol, and frames with start/end/pad', () => {
    const tok = tiny();
    // a | ph ot o</w> | of</w> | a | cat</w> | ! !</w>
    expect(tok.tokenize('A  PHOTO of a cat!!')).toEqual([3, 14, 12, 10, 11, 3, 6, 0, 1]);
    const enc = tok.encode(['A  PHOTO of a cat!!', 'cat']);
    expect(enc.contextLength).toBe(12);
    expect([...enc.ids[0]!]).toEqual([SOT, 3, 14, 12, 10, 11, 3, 6, 0, 1, EOT, EOT]);
    expect([...enc.ids[1]!]).toEqual([SOT, 6, EOT, EOT, EOT, EOT, EOT, EOT, EOT, EOT, EOT, EOT]);
    expect([...enc.endIndex]).toEqual([10, 2]);
  });

  it('merges non-overlapping pairs left to right and byte-encodes non-ASCII text', () => {
    const tok = tiny();
    expect(tok.tokenize('aaaa')).toEqual([19, 2, 3]); // aa a a</w>
    expect(tok.tokenize('é')).toEqual([17, 18]); // UTF-8 C3 A9 -> 'Ã' '©</w>'
    expect(tok.tokenize('<|endoftext|>')).toEqual([EOT]); // special tokens are never split
    expect(tok.tokenize('zz')).toEqual([EOT, EOT]); // unknown symbols become <|endoftext|> (HF unk)
  });

  it('truncates long texts keeping the end token', () => {
    const tok = tiny(6);
    const enc = tok.encode(['a photo of a cat']);
    expect([...enc.ids[0]!]).toEqual([SOT, 3, 14, 12, 10, EOT]);
    expect(enc.endIndex[0]).toBe(5);
  });

  it('decodes back to the cleaned text (word ends become spaces, as in CLIP)', () => {
    const tok = tiny();
    expect(tok.decode(tok.encode(['A photo of a cat!!']).ids[0]!)).toBe('a photo of a cat !!');
  });

  it('round-trips through tokenizer.json and loads vocab.json + merges.txt or tokenizer.json from a folder', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'tok-'));
    try {
      const tok = tiny();
      const texts = ['A photo of a cat!!', 'aaaa é'];
      const expected = tok.encode(texts).ids.map((r) => [...r]);
      const restored = tokenizerFromJSON(JSON.parse(JSON.stringify(tok.toJSON())));
      expect(restored.kind).toBe('clip-bpe');
      expect(restored.encode(texts).ids.map((r) => [...r])).toEqual(expected);

      await writeFile(path.join(dir, 'vocab.json'), VOCAB_JSON);
      await writeFile(path.join(dir, 'merges.txt'), MERGES_TXT);
      const fromFiles = await ClipBpeTokenizer.fromDir(dir, { contextLength: 12 });
      expect(fromFiles.encode(texts).ids.map((r) => [...r])).toEqual(expected);

      // Newer tokenizers versions store merges as pairs; the pad token may be named in special_tokens_map.json.
      const json = tok.toJSON();
      const hf = { ...json, padding: null, model: { ...json.model, merges: json.model.merges.map((m) => (m as string).split(' ')) } };
      await writeFile(path.join(dir, 'tokenizer.json'), JSON.stringify(hf));
      await writeFile(path.join(dir, 'special_tokens_map.json'), JSON.stringify({ pad_token: '!' }));
      const fromHf = await ClipBpeTokenizer.fromDir(dir);
      expect(fromHf.padId).toBe(0);
      expect([...fromHf.encode(['cat']).ids[0]!]).toEqual([SOT, 6, EOT, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('gives an int32 id tensor [B, L]', () => {
    const t = idsTensor(tiny().encode(['cat', 'a']));
    expect(t.shape).toEqual([2, 12]);
    expect(t.dtype).toBe('int32');
    t.dispose();
  });
});

describe('word tokenizer', () => {
  const corpus = ['Add a red cube.', 'Add a blue sphere!', 'add a red sphere', 'zebra'];

  it('splits lower-cased words and punctuation', () => {
    expect(splitWords("Put the boy's hat, left!")).toEqual(['put', 'the', "boy's", 'hat', ',', 'left', '!']);
  });

  it('builds a vocabulary with min count, most frequent first, specials first', () => {
    const tok = WordTokenizer.fromCorpus(corpus, { minCount: 2, contextLength: 8 });
    expect(tok.vocab).toEqual(['[PAD]', '[SOS]', '[EOS]', '[UNK]', 'a', 'add', 'red', 'sphere']);
    expect(tok.vocabSize).toBe(8);
    const enc = tok.encode(['Add a green sphere.', 'red']);
    expect([...enc.ids[0]!]).toEqual([1, 5, 4, 3, 7, 3, 2, 0]);
    expect([...enc.ids[1]!]).toEqual([1, 6, 2, 0, 0, 0, 0, 0]);
    expect([...enc.endIndex]).toEqual([6, 2]);
  });

  it('truncates keeping [EOS], and round-trips through JSON', () => {
    const tok = WordTokenizer.fromCorpus(corpus, { contextLength: 4 });
    const enc = tok.encode(['add a red sphere']);
    expect(enc.ids[0]![3]).toBe(2);
    expect(enc.endIndex[0]).toBe(3);
    const back = tokenizerFromJSON(JSON.parse(JSON.stringify(tok.toJSON())));
    expect(back.kind).toBe('word');
    expect(back.vocabSize).toBe(tok.vocabSize);
    expect([...back.encode(['add a zebra ?']).ids[0]!]).toEqual([...tok.encode(['add a zebra ?']).ids[0]!]);
    expect(back.decode(tok.encode(['Add a red']).ids[0]!)).toBe('add a');
  });

  it('honours maxWords and rejects malformed JSON', () => {
    expect(WordTokenizer.fromCorpus(corpus, { maxWords: 2 }).vocab.slice(4)).toEqual(['a', 'add']);
    expect(() => tokenizerFromJSON({ kind: 'nope' })).toThrow();
  });
});
