/**
 * The i-CLEVR instruction grammar at training time: a canonical instruction ("Add a red cube behind the blue
 * sphere.") said the many ways people say it: verb and noun synonyms, colour spellings, relation wordings, the
 * relation first, no article, other punctuation and casing, and typos. Training on these teaches the text encoder
 * what the words mean instead of which of 29 templates it saw. The paraphrase *validation* set comes from a
 * separate generator (iclevrHeldOutPhrasing.ts) so that the score measures generalisation, not memorised templates.
 */
import { ICLEVR_COLORS, ICLEVR_SHAPES, type IclevrObject } from './episode.js';
import { ICLEVR_RELATIONS } from './iclevr.js';

type Color = IclevrObject['color'];
type Shape = IclevrObject['shape'];

/** What an i-CLEVR turn asks for, read back from its canonical text. */
export interface IclevrInstruction {
  color: Color;
  shape: Shape;
  /** Absent for the first turn ("... at the center."). */
  relation?: { dx: -1 | 0 | 1; dy: -1 | 0 | 1; anchorColor: Color; anchorShape: Shape };
}

const FIRST = /^Add a (\w+) (\w+) at the center\.$/;
const RELATION = /^Add a (\w+) (\w+) (.+) the (\w+) (\w+)\.$/;
const isColor = (w: string | undefined): w is Color => (ICLEVR_COLORS as readonly string[]).includes(w ?? '');
const isShape = (w: string | undefined): w is Shape => (ICLEVR_SHAPES as readonly string[]).includes(w ?? '');

/** Parse a canonical i-CLEVR instruction (the generator's wording); null for any other text. */
export function parseIclevrInstruction(text: string): IclevrInstruction | null {
  const t = text.trim();
  const f = FIRST.exec(t);
  if (f) return isColor(f[1]) && isShape(f[2]) ? { color: f[1], shape: f[2] } : null;
  const m = RELATION.exec(t);
  if (!m || !isColor(m[1]) || !isShape(m[2]) || !isColor(m[4]) || !isShape(m[5])) return null;
  const rel = ICLEVR_RELATIONS.find((r) => r.text === m[3]);
  if (!rel) return null;
  return { color: m[1], shape: m[2], relation: { dx: rel.dx, dy: rel.dy, anchorColor: m[4], anchorShape: m[5] } };
}

/** A source of uniform numbers in [0, 1) (mulberry32, Rng.next). */
export type Uniform = () => number;
const pick = <T>(u: Uniform, xs: readonly T[]): T => xs[Math.floor(u() * xs.length)]!;

/**
 * The training lexicon: every wording the training grammar may use for a concept. The first entry is the
 * canonical word. Exported so the tokenizer's vocabulary can be built from it and the model's new token
 * embeddings can start from their canonical word's (a synonym means what its canonical word means).
 */
export const TRAINING_LEXICON = {
  verbs: ['add', 'put', 'place', 'draw', 'insert', 'make', 'create', 'set'],
  shapes: { cube: ['cube', 'box', 'block'], sphere: ['sphere', 'ball', 'globe'], cylinder: ['cylinder', 'can', 'tube'] } as Record<Shape, string[]>,
  colors: {
    gray: ['gray', 'grey'], red: ['red'], blue: ['blue'], green: ['green'], brown: ['brown'],
    purple: ['purple', 'violet'], cyan: ['cyan', 'teal', 'turquoise'], yellow: ['yellow'],
  } as Record<Color, string[]>,
  centre: ['at the center', 'in the center', 'in the centre', 'in the middle', 'at the centre', 'in the middle of the scene', 'at the center of the floor', ''],
  left: ['to the left of', 'left of', 'on the left of', 'on the left side of', 'to the left side of'],
  right: ['to the right of', 'right of', 'on the right of', 'on the right side of', 'to the right side of'],
  behind: ['behind', 'in back of', 'at the back of', 'further back than', 'farther away than'],
  front: ['in front of', 'closer than', 'nearer than', 'nearer to the camera than', 'ahead of'],
  fillers: ['now', 'then', 'also', 'ok', 'and'],
  /** Ways people wrap an instruction: a request, a wish, "there should be", a closing word. */
  carriers: {
    request: ['please', 'can you', 'could you', 'would you', 'you should', 'go ahead and'],
    wish: ['i want', "i'd like", 'i need', 'we need', 'give me', 'we want'],
    existential: ['there should be', 'there is', "there's", 'we should have'],
    suffix: [' please', ', please', ' thanks', ' now', ' too'],
  },
};

export interface PhrasingOptions {
  /** Chance of one typo in the sentence (a letter dropped, doubled or two swapped). Default 0.15. */
  typoRate?: number;
}

/** An object as the training grammar says it: "red cube", "red colored cube", "cube that is red". */
function objectPhrase(u: Uniform, color: Color, shape: Shape): string {
  const c = pick(u, TRAINING_LEXICON.colors[color]);
  const s = pick(u, TRAINING_LEXICON.shapes[shape]);
  const r = u();
  if (r < 0.75) return `${c} ${s}`;
  if (r < 0.88) return `${c} colored ${s}`;
  return `${s} that is ${c}`;
}

function relationPhrase(u: Uniform, dx: number, dy: number): string {
  const x = dx < 0 ? pick(u, TRAINING_LEXICON.left) : dx > 0 ? pick(u, TRAINING_LEXICON.right) : null;
  const y = dy < 0 ? pick(u, TRAINING_LEXICON.behind) : dy > 0 ? pick(u, TRAINING_LEXICON.front) : null;
  if (x && y) {
    // Diagonals: both axes, either order ("behind and to the left of", "to the left of and behind").
    const [a, b] = u() < 0.6 ? [y, x] : [x, y];
    return `${a.replace(/ (of|than)$/, '')} and ${b}`;
  }
  return (x ?? y)!;
}

/** Two to six random letters. */
function nonsenseWord(u: Uniform): string {
  const n = 2 + Math.floor(u() * 5);
  let w = '';
  for (let i = 0; i < n; i++) w += String.fromCharCode(97 + Math.floor(u() * 26));
  return w;
}

/** One typo in a word of four letters or more: a letter dropped, doubled, or two neighbours swapped. */
export function trainingTypo(u: Uniform, sentence: string): string {
  const words = sentence.split(' ');
  const long = words.map((w, i) => ({ w, i })).filter(({ w }) => /^[a-z]{4,}$/i.test(w));
  if (long.length === 0) return sentence;
  const { w, i } = pick(u, long);
  const p = 1 + Math.floor(u() * (w.length - 2));
  const kind = u();
  words[i] = kind < 0.4 ? w.slice(0, p) + w.slice(p + 1) : kind < 0.7 ? w.slice(0, p) + w[p] + w.slice(p) : w.slice(0, p - 1) + w[p] + w[p - 1] + w.slice(p + 1);
  return words.join(' ');
}

/** The instruction `ins` in one wording of the training grammar, drawn with `u`. */
export function phraseIclevrInstruction(u: Uniform, ins: IclevrInstruction, opts: PhrasingOptions = {}): string {
  const verb = pick(u, TRAINING_LEXICON.verbs);
  const article = u() < 0.85 ? 'a ' : '';
  const obj = `${article}${objectPhrase(u, ins.color, ins.shape)}`;
  // What goes after the object: where, or the relation and its anchor.
  let rest: string;
  let fronted: string | null = null;
  if (!ins.relation) {
    rest = pick(u, TRAINING_LEXICON.centre);
  } else {
    const r = ins.relation;
    const rel = relationPhrase(u, r.dx, r.dy);
    const anchor = `${u() < 0.85 ? 'the ' : ''}${objectPhrase(u, r.anchorColor, r.anchorShape)}`;
    rest = `${rel} ${anchor}`;
    fronted = `${rel} ${anchor}, ${verb} ${obj}`;
  }
  const imperative = rest ? `${verb} ${obj} ${rest}` : `${verb} ${obj}`;
  const bare = rest ? `${obj} ${rest}` : obj;
  // The carrier: an order, a request, a wish, "there should be", or the relation first.
  const f = u();
  const carrier = pick(u, TRAINING_LEXICON.carriers.request);
  const wish = pick(u, TRAINING_LEXICON.carriers.wish);
  const there = pick(u, TRAINING_LEXICON.carriers.existential);
  let body =
    f < 0.45 ? imperative
    : f < 0.6 ? `${carrier} ${imperative}`
    : f < 0.72 ? `${wish} ${bare}`
    : f < 0.8 ? `${there} ${bare}`
    : fronted ?? imperative;
  const question = f >= 0.45 && f < 0.6 && carrier !== 'please';
  if (u() < 0.1) body += pick(u, TRAINING_LEXICON.carriers.suffix);
  if (u() < 0.12) body = `${pick(u, TRAINING_LEXICON.fillers)} ${body}`;
  // Made-up words at either end: words the model never saw carry no meaning, they must not derail it.
  const noise = u();
  if (noise < 0.15) {
    const words = noise < 0.05 ? `${nonsenseWord(u)} ${nonsenseWord(u)}` : nonsenseWord(u);
    body = u() < 0.5 ? `${words} ${body}` : `${body} ${words}`;
  }
  if ((opts.typoRate ?? 0.15) > u()) body = trainingTypo(u, body);
  const end = question && u() < 0.7 ? '?' : pick(u, ['.', '.', '.', '', '!']);
  const cased = u() < 0.7 ? body[0]!.toUpperCase() + body.slice(1) : body;
  return cased + end;
}

/**
 * A canonical i-CLEVR text rephrased by the training grammar, or the text itself when it is not canonical (then
 * there is nothing to rephrase). Pure in (text, u): the trainer draws `u` from the step's seed, so a resumed run
 * sees the same wordings.
 */
export function rephraseIclevrText(u: Uniform, text: string, opts: PhrasingOptions = {}): string {
  const ins = parseIclevrInstruction(text);
  return ins ? phraseIclevrInstruction(u, ins, opts) : text;
}

/** Training wordings of every concept, the texts a tokenizer's merges are learnt from (with the canonical ones). */
export function trainingGrammarSample(u: Uniform, canonical: readonly string[], count: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < count; i++) out.push(rephraseIclevrText(u, canonical[i % canonical.length]!));
  return out;
}
