/**
 * The language side of training: instructions reworded by the training grammar as batches are drawn, and the
 * byte-level BPE tokenizer a model gets so that words outside the training corpus are not all [UNK].
 */
import {
  TRAINING_LEXICON,
  mulberry32,
  rephraseIclevrText,
  trainingGrammarSample,
} from '../data/index.js';
import { CddIcm, WordTokenizer, learnByteBpe, retokenizeModel, type ClipBpeTokenizer, type RetokenizeReport } from '../model/index.js';
import { mixSeed, type DatasetName } from './data.js';

/** Salt of the rewording draws (a resumed run rewords the same slots the same way). */
const REWORD_SALT = 23;

/**
 * Batch texts with a share `rate` of them reworded by the training grammar, and their hard negatives reworded
 * the same way (same draws, so a negative differs from its positive only in what it negates). Pure in
 * (seed, key, slot): `key` is the stage and step (or the validation batch).
 */
export function rewordBatch(
  texts: readonly string[],
  negatives: readonly (readonly string[])[] | undefined,
  rate: number,
  seed: number,
  ...key: number[]
): { texts: string[]; negatives?: string[][] } {
  if (rate <= 0) return { texts: [...texts], ...(negatives ? { negatives: negatives.map((n) => [...n]) } : {}) };
  const outTexts: string[] = [];
  const outNeg: string[][] = [];
  texts.forEach((t, i) => {
    const s = mixSeed(seed, REWORD_SALT, ...key, i);
    const reword = mulberry32(s)() < rate;
    const say = (x: string) => (reword ? rephraseIclevrText(mulberry32(s + 1), x) : x);
    outTexts.push(say(t));
    if (negatives) outNeg.push(negatives[i]!.map(say));
  });
  return { texts: outTexts, ...(negatives ? { negatives: outNeg } : {}) };
}

/** Single-word synonyms of the training lexicon -> the canonical word (new embeddings start from its row). */
export function lexiconSynonyms(): Map<string, string> {
  const m = new Map<string, string>();
  for (const v of TRAINING_LEXICON.verbs) m.set(v, 'add');
  for (const [k, vs] of Object.entries(TRAINING_LEXICON.shapes)) for (const v of vs) m.set(v, k);
  for (const [k, vs] of Object.entries(TRAINING_LEXICON.colors)) for (const v of vs) m.set(v, k);
  for (const w of ['centre', 'middle']) m.set(w, 'center');
  return m;
}

/** A BPE learnt from the training texts, plus (i-CLEVR) 30 000 of their training-grammar wordings. */
export function learnTrainingTokenizer(dataset: DatasetName, texts: readonly string[], contextLength: number, seed: number): ClipBpeTokenizer {
  const corpus = dataset === 'iclevr' ? [...texts, ...trainingGrammarSample(mulberry32(mixSeed(seed, 29)), texts, 30_000)] : texts;
  return learnByteBpe(corpus, { maxMerges: 1000, contextLength });
}

/** A word-level model converted to a BPE learnt from the training texts (see retokenizeModel). */
export function toBpeModel(model: CddIcm, dataset: DatasetName, texts: readonly string[], seed: number): { model: CddIcm; report: RetokenizeReport } {
  if (!(model.tokenizer instanceof WordTokenizer)) throw new Error(`--tokenizer bpe converts a word-level model; this one has a ${model.tokenizer.kind} tokenizer`);
  const tokenizer = learnTrainingTokenizer(dataset, texts, model.tokenizer.contextLength, seed);
  return retokenizeModel(model, tokenizer, model.tokenizer.vocab, lexiconSynonyms());
}
