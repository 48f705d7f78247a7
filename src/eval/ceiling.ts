/**
 * The RSIM a perfect instruction follower would score on i-CLEVR-style episodes. An instruction fixes only the new
 * object's side of its anchor, not its distance or its relation to the other objects, so even exact compliance
 * rarely reproduces the ground truth's whole scene graph. The ceiling redraws every object's position from the
 * generator's own distribution given its instruction (iteratively: anchors at their redrawn positions;
 * teacher-forced: only the final object, next to the true scene) and scores RSIM against the true positions.
 */
import { ICLEVR_GEOMETRY, Rng, fits, parseRelationTurnText, relativePosition, iclevrLabel, type Episode, type IclevrObject } from '../data/index.js';
import { relationalSimilarity, type LocatedObject } from './metrics.js';

export interface RsimCeiling {
  iterative: number;
  teacherForced: number;
}

type Placed = Map<string, { x: number; y: number }>;

/** Where a compliant model may put the object a turn adds, given the objects it has placed so far. */
function redraw(rng: Rng, text: string, placed: Placed): { x: number; y: number } {
  const rel = parseRelationTurnText(text);
  const g = ICLEVR_GEOMETRY;
  if (!rel) return { x: g.centre[0] + rng.uniform(-g.centreJitter, g.centreJitter), y: g.centre[1] + rng.uniform(-g.centreJitter, g.centreJitter) };
  const anchor = placed.get(rel.anchor);
  if (!anchor) throw new Error(`rsimCeiling: "${text}" names an anchor not in the scene`);
  const others = [...placed.values()];
  let p = relativePosition(rng, anchor, rel);
  // The generator's own rule: redraw until the object is on the floor and clear of the others.
  for (let i = 0; i < 200 && !fits(p.x, p.y, others); i++) p = relativePosition(rng, anchor, rel);
  return p;
}

const located = (placed: Placed): LocatedObject[] => [...placed].map(([label, p]) => ({ label, x: p.x, y: p.y }));

/** Mean RSIM ceilings over the episodes' final turns, `samples` redraws each (deterministic by seed). */
export function iclevrRsimCeiling(episodes: readonly Episode[], opts: { samples?: number; seed?: number } = {}): RsimCeiling {
  const samples = opts.samples ?? 50;
  const rng = new Rng(opts.seed ?? 1);
  let it = 0;
  let tf = 0;
  let n = 0;
  for (const ep of episodes) {
    if (ep.dataset !== 'iclevr') throw new Error('rsimCeiling: i-CLEVR episodes only');
    const turns = ep.turns;
    const truth = (turns.at(-1)!.objects as IclevrObject[]).map((o) => ({ label: iclevrLabel(o), x: o.x, y: o.y }));
    const added = turns.map((t) => iclevrLabel(t.objects.at(-1) as IclevrObject));
    for (let s = 0; s < samples; s++) {
      const placed: Placed = new Map();
      turns.forEach((t, i) => placed.set(added[i]!, redraw(rng, t.text, placed)));
      it += relationalSimilarity(truth, located(placed), 'y');
      const forced: Placed = new Map(truth.slice(0, -1).map((o) => [o.label, { x: o.x, y: o.y }]));
      forced.set(added.at(-1)!, redraw(rng, turns.at(-1)!.text, forced));
      tf += relationalSimilarity(truth, located(forced), 'y');
      n++;
    }
  }
  return { iterative: n ? it / n : 0, teacherForced: n ? tf / n : 0 };
}
