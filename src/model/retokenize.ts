/**
 * Give a trained model a new tokenizer (e.g. a word-level model a byte-level BPE, so unseen words stop being
 * [UNK]) without losing what it learnt: every weight is kept, and each row of the new token-embedding table
 * starts from the old row of the word it spells, or of the word a synonym stands for. A text whose words all
 * become single new tokens then encodes exactly as before; everything else is learnt by fine-tuning.
 */
import { CddIcm } from './cddIcm.js';
import { modelWeights, setModelWeights } from './checkpoint.js';
import type { Tokenizer } from './tokenizer/index.js';

const TOKEN_TABLE = 'text_encoder.backbone.embeddings.token_embedding.weight';

export interface RetokenizeReport {
  /** New tokens that start from the old row of the same word. */
  copied: number;
  /** New tokens that start from the old row of the word they are a synonym of. */
  fromSynonyms: number;
  /** Old words that do not become one new token (they are learnt afresh; canonical texts then change). */
  split: string[];
  vocabSize: number;
}

/**
 * @param words the old tokenizer's vocabulary as text, by id (specials included; rows of special ids map by
 *   role: start, end and pad)
 * @param synonyms new word -> old word it means (e.g. "ball" -> "sphere")
 */
export function retokenizeModel(
  model: CddIcm,
  tokenizer: Tokenizer,
  words: readonly string[],
  synonyms: ReadonlyMap<string, string> = new Map(),
): { model: CddIcm; report: RetokenizeReport } {
  const old = model.tokenizer;
  const next = new CddIcm({ ...model.config, tokenizer: tokenizer.kind }, { tokenizer, codec: model.codec });
  const weights = modelWeights(model);
  const oldTable = weights.get(TOKEN_TABLE);
  if (!oldTable) throw new Error(`model has no ${TOKEN_TABLE}`);
  const width = oldTable.shape[1]!;
  const fresh = next.namedParameters().get(TOKEN_TABLE)!;
  const table = Float32Array.from(fresh.dataSync());
  const copyRow = (to: number, from: number) => table.set(oldTable.data.subarray(from * width, (from + 1) * width), to * width);
  copyRow(tokenizer.startId, old.startId);
  copyRow(tokenizer.endId, old.endId);
  copyRow(tokenizer.padId, old.padId);
  const index = new Map(words.map((w, i) => [w, i]));
  const special = new Set([old.startId, old.endId, old.padId]);
  const report: RetokenizeReport = { copied: 0, fromSynonyms: 0, split: [], vocabSize: tokenizer.vocabSize };
  words.forEach((w, id) => {
    if (special.has(id) || /^\[.*\]$/.test(w)) return;
    const ids = tokenizer.tokenize(w);
    if (ids.length !== 1) return void report.split.push(w);
    copyRow(ids[0]!, id);
    report.copied++;
  });
  for (const [syn, word] of synonyms) {
    const from = index.get(word);
    const ids = tokenizer.tokenize(syn);
    if (from === undefined || ids.length !== 1 || index.has(syn)) continue;
    copyRow(ids[0]!, from);
    report.fromSynonyms++;
  }
  weights.set(TOKEN_TABLE, { shape: [tokenizer.vocabSize, width], data: table });
  setModelWeights(next, weights);
  return { model: next, report };
}
