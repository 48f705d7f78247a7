/**
 * The tokenizer contract shared by the CLIP byte-level BPE and the word-level tokenizer.
 * Both add a start and an end token, truncate so that the end token survives, and pad to a fixed context length.
 */
import * as tf from '@tensorflow/tfjs-core';

export type TokenizerKind = 'clip-bpe' | 'word';

/** A batch of tokenised texts, every row exactly `contextLength` ids long. */
export interface EncodedTexts {
  /** One row per text: [start, ...tokens, end, pad, pad, ...]. */
  ids: Int32Array[];
  contextLength: number;
  /** Position of the end token in each row (the text encoder pools there). */
  endIndex: Int32Array;
}

export interface Tokenizer {
  readonly kind: TokenizerKind;
  /** Size of the id space (embedding table rows needed). */
  readonly vocabSize: number;
  readonly contextLength: number;
  readonly startId: number;
  readonly endId: number;
  readonly padId: number;
  /** Tokenise and frame every text (start/end tokens, truncation keeping the end token, padding). */
  encode(texts: string[]): EncodedTexts;
  /** The bare token ids of one text, without start/end/padding. */
  tokenize(text: string): number[];
  /** Best-effort inverse of tokenize (special tokens dropped). */
  decode(ids: ArrayLike<number>): string;
  /** A JSON value that `tokenizerFromJSON` turns back into an equal tokenizer. */
  toJSON(): unknown;
}

/** Frame bare token ids: start + ids + end, truncated to keep the end token, padded to the context length. */
export function frameIds(
  tokens: number[],
  contextLength: number,
  startId: number,
  endId: number,
  padId: number,
): { row: Int32Array; end: number } {
  if (contextLength < 2) throw new Error(`context length ${contextLength} leaves no room for start and end tokens`);
  const body = tokens.slice(0, contextLength - 2);
  const row = new Int32Array(contextLength).fill(padId);
  row[0] = startId;
  row.set(body, 1);
  const end = body.length + 1;
  row[end] = endId;
  return { row, end };
}

/** The ids of an encoded batch as an int32 tensor [B, contextLength]. */
export function idsTensor(enc: EncodedTexts): tf.Tensor2D {
  const flat = new Int32Array(enc.ids.length * enc.contextLength);
  enc.ids.forEach((r, i) => flat.set(r, i * enc.contextLength));
  return tf.tensor2d(flat, [enc.ids.length, enc.contextLength], 'int32');
}
