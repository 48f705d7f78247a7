/**
 * Paraphrases for *validation*, written apart from the training grammar (iclevrPhrasing.ts) on purpose: other
 * sentence frames (requests, "I'd like", "there should be", "first, ..."), wordings the training grammar never
 * uses ("on the left-hand side of", "back and to the left of", "in the very middle"), fillers it never sees
 * ("please", "could you", "next"), and another typo process (a neighbouring key hit instead of a letter dropped,
 * doubled or swapped). Content words (colours, shapes) stay within what people commonly say, most of which the
 * training lexicon knows: a model cannot learn a colour word it never saw with its colour.
 */
import type { Episode } from './episode.js';
import { parseIclevrInstruction, type IclevrInstruction, type Uniform } from './iclevrPhrasing.js';
import { mulberry32, hashSeed } from './prng.js';

const pick = <T>(u: Uniform, xs: readonly T[]): T => xs[Math.floor(u() * xs.length)]!;

const SHAPES: Record<string, string[]> = { cube: ['cube', 'box'], sphere: ['sphere', 'ball'], cylinder: ['cylinder'] };
const COLORS: Record<string, string[]> = { gray: ['grey', 'gray'], purple: ['purple'], cyan: ['cyan', 'turquoise'] };
const LEFT = ['to the left of', 'left of', 'on the left-hand side of'];
const RIGHT = ['to the right of', 'right of', 'on the right-hand side of'];
const BEHIND = ['behind', 'in back of'];
const FRONT = ['in front of', 'closer than'];
const DIAGONAL_Y = { behind: ['behind', 'back'], front: ['in front', 'in front'] };

/** Keyboard rows, for the neighbouring-key typo. */
const ROWS = ['qwertyuiop', 'asdfghjkl', 'zxcvbnm'];
function neighbourKey(u: Uniform, ch: string): string {
  for (const row of ROWS) {
    const i = row.indexOf(ch);
    if (i < 0) continue;
    const options = [row[i - 1], row[i + 1]].filter((c): c is string => c !== undefined);
    return pick(u, options);
  }
  return ch;
}

/** One letter of a word of five letters or more replaced by a neighbouring key. */
function keyboardTypo(u: Uniform, s: string): string {
  const words = s.split(' ');
  const long = words.map((w, i) => ({ w, i })).filter(({ w }) => /^[a-z]{5,}$/.test(w));
  if (long.length === 0) return s;
  const { w, i } = pick(u, long);
  const p = 1 + Math.floor(u() * (w.length - 2));
  words[i] = w.slice(0, p) + neighbourKey(u, w[p]!) + w.slice(p + 1);
  return words.join(' ');
}

function object(u: Uniform, color: string, shape: string, article = true): string {
  const c = pick(u, COLORS[color] ?? [color]);
  const s = pick(u, SHAPES[shape] ?? [shape]);
  return `${article ? 'a ' : ''}${c} ${s}`;
}

function relation(u: Uniform, dx: number, dy: number): string {
  if (dx !== 0 && dy !== 0) {
    const y = pick(u, dy < 0 ? DIAGONAL_Y.behind : DIAGONAL_Y.front);
    return `${y} and to the ${dx < 0 ? 'left' : 'right'} of`;
  }
  if (dx !== 0) return pick(u, dx < 0 ? LEFT : RIGHT);
  return pick(u, dy < 0 ? BEHIND : FRONT);
}

/** The instruction in a held-out wording. */
export function heldOutPhrasing(u: Uniform, ins: IclevrInstruction): string {
  let s: string;
  if (!ins.relation) {
    const o = object(u, ins.color, ins.shape);
    s = pick(u, [
      `start with ${o} in the very middle.`,
      `first, put ${o} in the middle.`,
      `begin by placing ${o} in the center.`,
      `i'd like ${o} right in the center, please.`,
      `could you add ${o} in the middle?`,
    ]);
  } else {
    const r = ins.relation;
    const o = object(u, ins.color, ins.shape);
    const rel = relation(u, r.dx, r.dy);
    const a = `the ${object(u, r.anchorColor, r.anchorShape, false)}`;
    s = pick(u, [
      `could you put ${o} ${rel} ${a}?`,
      `please add ${o} ${rel} ${a}.`,
      `next, ${o} ${rel} ${a}.`,
      `i'd like ${o} ${rel} ${a}.`,
      `there should be ${o} ${rel} ${a}.`,
      `now place ${o} ${rel} ${a}, please.`,
    ]);
  }
  if (u() < 0.2) s = keyboardTypo(u, s);
  return u() < 0.5 ? s[0]!.toUpperCase() + s.slice(1) : s;
}

/**
 * Episodes with every canonical turn text replaced by a held-out paraphrase (deterministic in `seed`), each turn
 * keeping its canonical text in `canonicalText` for the relation checks of the evaluation.
 */
export function paraphraseEpisodes<E extends Episode>(episodes: readonly E[], seed: number): E[] {
  return episodes.map((e, ei) => ({
    ...e,
    turns: e.turns.map((t, ti) => {
      const ins = parseIclevrInstruction(t.text);
      if (!ins) return t;
      return { ...t, text: heldOutPhrasing(mulberry32(hashSeed(seed, ei, ti)), ins), canonicalText: t.text };
    }),
  }));
}
