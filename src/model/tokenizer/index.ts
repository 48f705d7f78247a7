/**
 * Tokenizers: CLIP's byte-level BPE (pretrained CLIP text encoders) and a word-level tokenizer (models trained
 * from scratch). `tokenizerFromJSON` restores either from its `toJSON()` (or a Hugging Face tokenizer.json).
 */
import { readFile } from 'node:fs/promises';
import { ClipBpeTokenizer, type HfTokenizerJson } from './bpe.js';
import { WordTokenizer, type WordTokenizerJson } from './word.js';
import type { Tokenizer } from './types.js';

export type { Tokenizer, TokenizerKind, EncodedTexts } from './types.js';
export { idsTensor, frameIds } from './types.js';
export {
  ClipBpeTokenizer, bytesToUnicode, clipCleanText, CLIP_START, CLIP_END, CLIP_CONTEXT_LENGTH,
  type ClipBpeOptions, type HfTokenizerJson,
} from './bpe.js';
export { WordTokenizer, WORD_SPECIALS, splitWords, type WordTokenizerOptions, type WordTokenizerJson } from './word.js';

/** Restore a tokenizer from `toJSON()` output: `{kind: 'word', ...}` or a (CLIP) Hugging Face tokenizer.json. */
export function tokenizerFromJSON(json: unknown): Tokenizer {
  if (typeof json !== 'object' || json === null) throw new Error('tokenizer JSON must be an object');
  const o = json as { kind?: unknown; model?: { type?: unknown } };
  if (o.kind === 'word') return WordTokenizer.fromJSON(json as WordTokenizerJson);
  if (o.model?.type === 'BPE') return ClipBpeTokenizer.fromHfJson(json as HfTokenizerJson);
  throw new Error('unrecognised tokenizer JSON (expected kind "word" or a BPE tokenizer.json)');
}

/** Read a tokenizer.json file written by `toJSON()` (checkpoints) or by Hugging Face. */
export async function loadTokenizerFile(file: string): Promise<Tokenizer> {
  return tokenizerFromJSON(JSON.parse(await readFile(file, 'utf8')));
}
