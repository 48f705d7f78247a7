/**
 * Learn a small byte-level BPE (CLIP's scheme: same cleanup, split pattern, byte alphabet and `</w>` word ends)
 * from a corpus, for models trained from scratch. Its vocabulary holds all 256 bytes with and without `</w>`, so
 * every text, typos and unseen words included, tokenises into known pieces: nothing becomes an unknown token.
 */
import { ClipBpeTokenizer, bytesToUnicode, clipCleanText, CLIP_START, CLIP_END } from './bpe.js';

const EOW = '</w>';
export const BPE_PAD = '<|pad|>';
const PATTERN = /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+/giu;
const UTF8 = new TextEncoder();

export interface LearnBpeOptions {
  /** Most merges to learn (the vocabulary is 512 bytes + merges + 3 specials). Default 1000. */
  maxMerges?: number;
  /** A pair seen fewer times than this is not merged. Default 2. */
  minFrequency?: number;
  contextLength?: number;
}

/** Learn merges from `texts` (each pre-token weighted by how often it occurs), most frequent pair first. */
export function learnByteBpe(texts: Iterable<string>, opts: LearnBpeOptions = {}): ClipBpeTokenizer {
  const maxMerges = opts.maxMerges ?? 1000;
  const minFrequency = opts.minFrequency ?? 2;
  const byteChars = bytesToUnicode();
  const wordCounts = new Map<string, number>();
  for (const t of texts) {
    for (const m of clipCleanText(t).matchAll(PATTERN)) {
      let w = '';
      for (const b of UTF8.encode(m[0])) w += byteChars[b]!;
      wordCounts.set(w, (wordCounts.get(w) ?? 0) + 1);
    }
  }
  // Each distinct word as its symbol sequence, the last symbol carrying the word end.
  const words = [...wordCounts].map(([w, count]) => {
    const chars = [...w];
    return { symbols: [...chars.slice(0, -1), chars[chars.length - 1]! + EOW], count };
  });
  const merges: [string, string][] = [];
  while (merges.length < maxMerges) {
    const pairs = new Map<string, number>();
    for (const { symbols, count } of words) {
      for (let i = 0; i < symbols.length - 1; i++) {
        const k = `${symbols[i]} ${symbols[i + 1]}`;
        pairs.set(k, (pairs.get(k) ?? 0) + count);
      }
    }
    let best: string | null = null;
    let bestCount = 0;
    // Ties go to the lexically smallest pair, so the result does not depend on Map order.
    for (const [k, c] of pairs) if (c > bestCount || (c === bestCount && best !== null && k < best)) [best, bestCount] = [k, c];
    if (best === null || bestCount < minFrequency) break;
    const sp = best.indexOf(' ');
    const a = best.slice(0, sp);
    const b = best.slice(sp + 1);
    merges.push([a, b]);
    for (const w of words) {
      const s = w.symbols;
      const next: string[] = [];
      for (let i = 0; i < s.length; ) {
        if (i < s.length - 1 && s[i] === a && s[i + 1] === b) {
          next.push(a + b);
          i += 2;
        } else next.push(s[i++]!);
      }
      w.symbols = next;
    }
  }
  const vocab = new Map<string, number>();
  for (const c of byteChars) vocab.set(c, vocab.size);
  for (const c of byteChars) vocab.set(c + EOW, vocab.size);
  for (const [a, b] of merges) if (!vocab.has(a + b)) vocab.set(a + b, vocab.size);
  vocab.set(CLIP_START, vocab.size);
  vocab.set(CLIP_END, vocab.size);
  vocab.set(BPE_PAD, vocab.size);
  return new ClipBpeTokenizer(vocab, merges, { contextLength: opts.contextLength ?? 32, padId: vocab.get(BPE_PAD)! });
}
