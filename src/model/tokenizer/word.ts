/**
 * A small word-level tokenizer for models trained from scratch: lower-cased words and single punctuation marks,
 * a vocabulary of the corpus words seen at least `minCount` times, and [PAD]/[SOS]/[EOS]/[UNK] specials.
 */
import { frameIds, type EncodedTexts, type Tokenizer } from './types.js';

export const WORD_SPECIALS = ['[PAD]', '[SOS]', '[EOS]', '[UNK]'] as const;
const PAD = 0;
const SOS = 1;
const EOS = 2;
const UNK = 3;

/** Words (letters, digits, inner apostrophes) and single punctuation marks; whitespace dropped. */
const WORD_PATTERN = /[\p{L}\p{N}]+(?:'[\p{L}]+)*|[^\s\p{L}\p{N}]/gu;

/** Split a text into lower-cased word and punctuation tokens. */
export function splitWords(text: string): string[] {
  return [...text.normalize('NFC').toLowerCase().matchAll(WORD_PATTERN)].map((m) => m[0]);
}

export interface WordTokenizerOptions {
  contextLength?: number;
  /** Words seen fewer times than this become [UNK]. */
  minCount?: number;
  /** Keep at most this many words (most frequent first), specials not counted. */
  maxWords?: number;
}

export interface WordTokenizerJson {
  kind: 'word';
  version: 1;
  contextLength: number;
  /** id -> token; the first four are the specials. */
  vocab: string[];
}

export class WordTokenizer implements Tokenizer {
  readonly kind = 'word' as const;
  readonly startId = SOS;
  readonly endId = EOS;
  readonly padId = PAD;
  readonly unkId = UNK;
  readonly vocabSize: number;
  private readonly index: Map<string, number>;

  constructor(readonly vocab: readonly string[], readonly contextLength = 32) {
    WORD_SPECIALS.forEach((s, i) => {
      if (vocab[i] !== s) throw new Error(`word vocabulary must start with ${WORD_SPECIALS.join(', ')}`);
    });
    this.index = new Map(vocab.map((w, i) => [w, i]));
    if (this.index.size !== vocab.length) throw new Error('word vocabulary has duplicates');
    this.vocabSize = vocab.length;
  }

  /** Build the vocabulary from a training corpus: most frequent first, ties alphabetical (deterministic). */
  static fromCorpus(texts: Iterable<string>, opts: WordTokenizerOptions = {}): WordTokenizer {
    const counts = new Map<string, number>();
    for (const t of texts) for (const w of splitWords(t)) counts.set(w, (counts.get(w) ?? 0) + 1);
    const minCount = opts.minCount ?? 1;
    let words = [...counts]
      .filter(([w, c]) => c >= minCount && !(WORD_SPECIALS as readonly string[]).includes(w))
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .map(([w]) => w);
    if (opts.maxWords !== undefined) words = words.slice(0, opts.maxWords);
    return new WordTokenizer([...WORD_SPECIALS, ...words], opts.contextLength ?? 32);
  }

  tokenize(text: string): number[] {
    return splitWords(text).map((w) => this.index.get(w) ?? UNK);
  }

  encode(texts: string[]): EncodedTexts {
    const ids: Int32Array[] = [];
    const endIndex = new Int32Array(texts.length);
    texts.forEach((t, i) => {
      const { row, end } = frameIds(this.tokenize(t), this.contextLength, SOS, EOS, PAD);
      ids.push(row);
      endIndex[i] = end;
    });
    return { ids, contextLength: this.contextLength, endIndex };
  }

  decode(ids: ArrayLike<number>): string {
    const words: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (id === PAD || id === SOS || id === EOS) continue;
      words.push(this.vocab[id] ?? '[UNK]');
    }
    return words.join(' ');
  }

  toJSON(): WordTokenizerJson {
    return { kind: 'word', version: 1, contextLength: this.contextLength, vocab: [...this.vocab] };
  }

  static fromJSON(json: WordTokenizerJson): WordTokenizer {
    if (json.kind !== 'word' || !Array.isArray(json.vocab)) throw new Error('not a word tokenizer JSON');
    return new WordTokenizer(json.vocab, json.contextLength);
  }
}
