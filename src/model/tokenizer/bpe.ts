/**
 * CLIP's byte-level BPE tokenizer, reproducing OpenAI's simple_tokenizer.py and Hugging Face's CLIPTokenizer:
 * text cleanup (HTML unescape, NFC, whitespace collapse, lower-case), the CLIP split pattern, bytes mapped to
 * printable unicode (bytes_to_unicode), a `</w>` suffix on the last symbol of each word, and greedy merges by rank.
 * Loads from vocab.json + merges.txt or a Hugging Face tokenizer.json; serialises to tokenizer.json format.
 */
import { readFile, access } from 'node:fs/promises';
import path from 'node:path';
import { frameIds, type EncodedTexts, type Tokenizer } from './types.js';

export const CLIP_START = '<|startoftext|>';
export const CLIP_END = '<|endoftext|>';
export const CLIP_CONTEXT_LENGTH = 77;
const EOW = '</w>';
/** Words cached before the BPE cache is cleared (user text is unbounded; CLIP's own cache is not). */
const CACHE_LIMIT = 50_000;
const UTF8 = new TextEncoder();

/** CLIP's pre-tokenisation pattern (re.IGNORECASE in CLIP; \p classes need the u flag). */
const CLIP_PATTERN_SOURCE = "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+";
const CLIP_PATTERN = new RegExp(CLIP_PATTERN_SOURCE, 'giu');

/**
 * GPT-2/CLIP bytes_to_unicode: printable bytes map to themselves, the other bytes to code points from 256 up,
 * so every byte sequence becomes a string of visible characters with no whitespace.
 */
export function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = '!'.charCodeAt(0); b <= '~'.charCodeAt(0); b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  const table = new Array<string>(256);
  bs.forEach((b, i) => (table[b] = String.fromCodePoint(cs[i]!)));
  return table;
}

const BYTE_ENCODER = bytesToUnicode();
const BYTE_DECODER = new Map<string, number>(BYTE_ENCODER.map((c, b) => [c, b]));

const NAMED_ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' };
function htmlUnescape(s: string): string {
  return s.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (m, body: string) => {
    if (body[0] === '#') {
      const cp = body[1] === 'x' || body[1] === 'X' ? parseInt(body.slice(2), 16) : parseInt(body.slice(1), 10);
      return Number.isFinite(cp) && cp >= 0 && cp <= 0x10ffff ? String.fromCodePoint(cp) : m;
    }
    return NAMED_ENTITIES[body.toLowerCase()] ?? m;
  });
}

/** CLIP's basic_clean + whitespace_clean + lower (ftfy's repairs reduce to NFC for well-formed text). */
export function clipCleanText(text: string): string {
  const t = htmlUnescape(htmlUnescape(text)).normalize('NFC').trim();
  return t.replace(/\s+/gu, ' ').trim().toLowerCase();
}

export interface ClipBpeOptions {
  contextLength?: number;
  /** Padding token id; Hugging Face's openai/clip-* pad with <|endoftext|>, OpenAI's clip.tokenize with 0. */
  padId?: number;
}

export class ClipBpeTokenizer implements Tokenizer {
  readonly kind = 'clip-bpe' as const;
  readonly contextLength: number;
  readonly startId: number;
  readonly endId: number;
  readonly padId: number;
  readonly vocabSize: number;
  private readonly encoder: Map<string, number>;
  private readonly decoder: string[];
  private readonly ranks = new Map<string, number>();
  private readonly mergeList: [string, string][];
  private readonly cache = new Map<string, string[]>();

  /**
   * @param vocab token -> id (including the two special tokens)
   * @param merges merge pairs in rank order (rank 0 merges first)
   */
  constructor(vocab: Map<string, number> | Record<string, number>, merges: [string, string][], opts: ClipBpeOptions = {}) {
    this.encoder = vocab instanceof Map ? new Map(vocab) : new Map(Object.entries(vocab));
    this.mergeList = merges.map(([a, b]) => [a, b]);
    merges.forEach(([a, b], i) => {
      const key = `${a} ${b}`;
      if (!this.ranks.has(key)) this.ranks.set(key, i);
    });
    const start = this.encoder.get(CLIP_START);
    const end = this.encoder.get(CLIP_END);
    if (start === undefined || end === undefined) throw new Error(`CLIP vocabulary lacks ${CLIP_START} or ${CLIP_END}`);
    this.startId = start;
    this.endId = end;
    this.padId = opts.padId ?? end;
    this.contextLength = opts.contextLength ?? CLIP_CONTEXT_LENGTH;
    let maxId = -1;
    for (const id of this.encoder.values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    this.decoder = new Array<string>(this.vocabSize).fill('');
    for (const [tok, id] of this.encoder) this.decoder[id] = tok;
    // The special tokens are never split (CLIP seeds its cache with them).
    this.cache.set(CLIP_START, [CLIP_START]);
    this.cache.set(CLIP_END, [CLIP_END]);
  }

  /** BPE of one pre-token (already byte-encoded): symbols after all applicable merges. */
  bpe(token: string): string[] {
    const cached = this.cache.get(token);
    if (cached) return cached;
    const chars = [...token];
    let word = [...chars.slice(0, -1), chars[chars.length - 1]! + EOW];
    while (word.length > 1) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i < word.length - 1; i++) {
        const r = this.ranks.get(`${word[i]} ${word[i + 1]}`);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
      const first = word[best]!;
      const second = word[best + 1]!;
      // Merge every non-overlapping occurrence of the best pair, left to right (as CLIP does).
      const next: string[] = [];
      for (let i = 0; i < word.length; ) {
        if (i < word.length - 1 && word[i] === first && word[i + 1] === second) {
          next.push(first + second);
          i += 2;
        } else {
          next.push(word[i]!);
          i += 1;
        }
      }
      word = next;
    }
    if (this.cache.size >= CACHE_LIMIT) {
      this.cache.clear();
      this.cache.set(CLIP_START, [CLIP_START]);
      this.cache.set(CLIP_END, [CLIP_END]);
    }
    this.cache.set(token, word);
    return word;
  }

  tokenize(text: string): number[] {
    const out: number[] = [];
    const clean = clipCleanText(text);
    for (const m of clean.matchAll(CLIP_PATTERN)) {
      let mapped = '';
      for (const b of UTF8.encode(m[0])) mapped += BYTE_ENCODER[b]!;
      for (const sym of this.bpe(mapped)) {
        // Symbols missing from a (trimmed) vocabulary map to the unknown token, <|endoftext|> as in HF.
        out.push(this.encoder.get(sym) ?? this.endId);
      }
    }
    return out;
  }

  encode(texts: string[]): EncodedTexts {
    const ids: Int32Array[] = [];
    const endIndex = new Int32Array(texts.length);
    texts.forEach((t, i) => {
      const { row, end } = frameIds(this.tokenize(t), this.contextLength, this.startId, this.endId, this.padId);
      ids.push(row);
      endIndex[i] = end;
    });
    return { ids, contextLength: this.contextLength, endIndex };
  }

  decode(ids: ArrayLike<number>): string {
    let s = '';
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (id === this.startId || id === this.endId || id === this.padId) continue;
      s += this.decoder[id] ?? '';
    }
    const bytes: number[] = [];
    for (const ch of s.replaceAll(EOW, ' ')) {
      const b = BYTE_DECODER.get(ch);
      if (b !== undefined) bytes.push(b);
      else bytes.push(...UTF8.encode(ch));
    }
    return new TextDecoder().decode(new Uint8Array(bytes)).trim();
  }

  /** Hugging Face tokenizer.json (tokenizers library format), loadable by `transformers` and `tokenizerFromJSON`. */
  toJSON(): HfTokenizerJson {
    const special = (id: number, content: string) => ({
      id, content, single_word: false, lstrip: false, rstrip: false, normalized: true, special: true,
    });
    return {
      version: '1.0',
      truncation: { direction: 'Right', max_length: this.contextLength, strategy: 'LongestFirst', stride: 0 },
      padding: {
        strategy: { Fixed: this.contextLength }, direction: 'Right', pad_to_multiple_of: null,
        pad_id: this.padId, pad_type_id: 0, pad_token: this.decoder[this.padId] ?? CLIP_END,
      },
      added_tokens: [special(this.startId, CLIP_START), special(this.endId, CLIP_END)],
      normalizer: {
        type: 'Sequence',
        normalizers: [{ type: 'NFC' }, { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' }, { type: 'Lowercase' }],
      },
      pre_tokenizer: {
        type: 'Sequence',
        pretokenizers: [
          { type: 'Split', pattern: { Regex: CLIP_PATTERN_SOURCE }, behavior: 'Removed', invert: true },
          { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
        ],
      },
      post_processor: {
        type: 'RobertaProcessing', sep: [CLIP_END, this.endId], cls: [CLIP_START, this.startId],
        trim_offsets: false, add_prefix_space: false,
      },
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: {
        type: 'BPE', dropout: null, unk_token: CLIP_END, continuing_subword_prefix: '', end_of_word_suffix: EOW,
        fuse_unk: false, byte_fallback: false,
        vocab: Object.fromEntries(this.encoder),
        merges: this.mergeList.map(([a, b]) => `${a} ${b}`),
      },
    };
  }

  /** From a parsed Hugging Face tokenizer.json (merges as "a b" strings or [a, b] pairs). */
  static fromHfJson(json: HfTokenizerJson, opts: ClipBpeOptions = {}): ClipBpeTokenizer {
    const model = json.model;
    if (!model || model.type !== 'BPE') throw new Error('tokenizer.json: model.type is not BPE');
    const vocab = new Map(Object.entries(model.vocab));
    for (const t of json.added_tokens ?? []) vocab.set(t.content, t.id);
    const merges = model.merges.map((m): [string, string] => {
      if (Array.isArray(m)) return [m[0]!, m[1]!];
      const sp = m.indexOf(' ');
      if (sp <= 0) throw new Error(`tokenizer.json: bad merge "${m}"`);
      return [m.slice(0, sp), m.slice(sp + 1)];
    });
    const maxLen = json.truncation?.max_length;
    return new ClipBpeTokenizer(vocab, merges, {
      contextLength: opts.contextLength ?? (typeof maxLen === 'number' ? maxLen : CLIP_CONTEXT_LENGTH),
      padId: opts.padId ?? json.padding?.pad_id,
    });
  }

  /** From the text of vocab.json and merges.txt (first line "#version: ..." skipped, as CLIP does). */
  static fromVocabMerges(vocabJson: string, mergesTxt: string, opts: ClipBpeOptions = {}): ClipBpeTokenizer {
    const vocab = JSON.parse(vocabJson) as Record<string, number>;
    const merges: [string, string][] = [];
    for (const line of mergesTxt.split('\n')) {
      const l = line.replace(/\r$/, '');
      if (l.startsWith('#version') || l.trim() === '') continue;
      const parts = l.split(' ');
      if (parts.length !== 2) throw new Error(`merges.txt: bad line "${l}"`);
      merges.push([parts[0]!, parts[1]!]);
    }
    return new ClipBpeTokenizer(vocab, merges, opts);
  }

  /**
   * From a local folder: tokenizer.json if present, else vocab.json + merges.txt. The pad token comes from
   * tokenizer.json's padding or special_tokens_map.json / tokenizer_config.json when present.
   */
  static async fromDir(dir: string, opts: ClipBpeOptions = {}): Promise<ClipBpeTokenizer> {
    const exists = async (f: string) => access(path.join(dir, f)).then(() => true, () => false);
    const padToken = opts.padId === undefined ? await readPadToken(dir, exists) : undefined;
    if (await exists('tokenizer.json')) {
      const json = JSON.parse(await readFile(path.join(dir, 'tokenizer.json'), 'utf8')) as HfTokenizerJson;
      const vocab = { ...json.model.vocab, ...Object.fromEntries((json.added_tokens ?? []).map((t) => [t.content, t.id])) };
      const padId = opts.padId ?? json.padding?.pad_id ?? (padToken !== undefined ? vocab[padToken] : undefined);
      return ClipBpeTokenizer.fromHfJson(json, { ...opts, padId });
    }
    if ((await exists('vocab.json')) && (await exists('merges.txt'))) {
      const vocabText = await readFile(path.join(dir, 'vocab.json'), 'utf8');
      const mergesText = await readFile(path.join(dir, 'merges.txt'), 'utf8');
      const vocab = JSON.parse(vocabText) as Record<string, number>;
      const padId = opts.padId ?? (padToken !== undefined ? vocab[padToken] : undefined);
      return ClipBpeTokenizer.fromVocabMerges(vocabText, mergesText, { ...opts, padId });
    }
    throw new Error(`${dir}: no tokenizer.json and no vocab.json + merges.txt`);
  }
}

/** The pad token named by special_tokens_map.json or tokenizer_config.json, if any. */
async function readPadToken(dir: string, exists: (f: string) => Promise<boolean>): Promise<string | undefined> {
  for (const f of ['special_tokens_map.json', 'tokenizer_config.json']) {
    if (!(await exists(f))) continue;
    const j = JSON.parse(await readFile(path.join(dir, f), 'utf8')) as { pad_token?: string | { content?: string } };
    const p = j.pad_token;
    if (typeof p === 'string') return p;
    if (p && typeof p.content === 'string') return p.content;
  }
  return undefined;
}

/** The parts of Hugging Face's tokenizer.json that we read and write. */
export interface HfTokenizerJson {
  version?: string;
  truncation?: { max_length?: number; [k: string]: unknown } | null;
  padding?: { pad_id?: number; [k: string]: unknown } | null;
  added_tokens?: { id: number; content: string; [k: string]: unknown }[];
  model: {
    type: string;
    vocab: Record<string, number>;
    merges: (string | string[])[];
    [k: string]: unknown;
  };
  [k: string]: unknown;
}
