/**
 * The turns as strips of canvases: each strip follows a branch (first child first); a turn with more children
 * starts a new strip for each later one. The current branch is marked; tellers revert (undo) to any finished turn.
 */
import type { Api, TurnView } from '../api.js';
import { useImageUrl } from '../images.js';
import { currentBranch, isFinished, turnTree, type LiveSession, type TurnNode } from '../sessionState.js';

interface Strip {
  from: TurnView | null;
  turns: TurnView[];
}

function strips(roots: TurnNode[]): Strip[] {
  const out: Strip[] = [];
  const queue: Array<() => void> = [];
  const walk = (start: TurnNode, from: TurnView | null) => {
    const strip: Strip = { from, turns: [] };
    out.push(strip);
    let n: TurnNode | undefined = start;
    while (n) {
      strip.turns.push(n.turn);
      const [first, ...rest]: TurnNode[] = n.children;
      const parent: TurnView = n.turn;
      // Later branches are walked after this strip is complete, so they follow it in the list.
      queue.push(...rest.map((c) => () => walk(c, parent)));
      n = first;
    }
  };
  queue.push(...roots.map((r) => () => walk(r, null)));
  while (queue.length) queue.shift()!();
  return out;
}

const STATUS_TEXT: Record<TurnView['status'], string> = {
  QUEUED: 'queued',
  RUNNING: 'drawing',
  SUCCEEDED: 'done',
  FAILED: 'failed',
  CANCELLED: 'cancelled',
};

function Thumb({ api, live, turn }: { api: Api; live: LiveSession; turn: TurnView }) {
  const loaded = useImageUrl(api, turn.resultImage);
  const preview = live.previews[turn.id]?.preview;
  const src = preview ?? loaded?.url;
  return src ? (
    <img class="pixelated thumb" src={src} alt="" />
  ) : (
    <div class="thumb empty" aria-hidden="true">
      {STATUS_TEXT[turn.status]}
    </div>
  );
}

function TurnCard(props: { api: Api; live: LiveSession; turn: TurnView; isHead: boolean; onBranch: boolean; canRevert: boolean; canCancel: boolean; revert(t: TurnView): void; cancel(t: TurnView): void }) {
  const { turn } = props;
  const replies = turn.text.startsWith(turn.instruction) ? turn.text.slice(turn.instruction.length).trim() : '';
  return (
    <li
      class={`turn status-${turn.status.toLowerCase()}${props.isHead ? ' head' : ''}${props.onBranch ? ' on-branch' : ''}`}
      data-testid="turn"
      data-turn-index={turn.index}
      data-status={turn.status}
      aria-current={props.isHead ? 'step' : undefined}
    >
      <Thumb api={props.api} live={props.live} turn={turn} />
      <div class="turn-text">
        <strong>#{turn.index}</strong> {turn.instruction}
        {replies && <span class="replies"> + “{replies}”</span>}
      </div>
      <div class="muted small">
        {STATUS_TEXT[turn.status]}
        {props.isHead ? ' · current' : ''} · {turn.author.name}
      </div>
      {turn.error && <div class="error small">{turn.error}</div>}
      {props.canRevert && turn.status === 'SUCCEEDED' && !props.isHead && (
        <button type="button" class="secondary small" onClick={() => props.revert(turn)} aria-label={`Revert to turn ${turn.index}`}>
          Revert here
        </button>
      )}
      {props.canCancel && !isFinished(turn) && (
        <button type="button" class="danger small" onClick={() => props.cancel(turn)} aria-label={`Cancel turn ${turn.index}`}>
          Cancel
        </button>
      )}
    </li>
  );
}

export function TurnHistory(props: { api: Api; live: LiveSession; canRevert: boolean; canCancel(t: TurnView): boolean; revert(t: TurnView): void; cancel(t: TurnView): void }) {
  const { live } = props;
  const branch = currentBranch(live);
  const head = live.session.headTurn?.id;
  const all = strips(turnTree(live.session.turns));
  return (
    <section class="panel history" aria-labelledby="history-title">
      <h2 id="history-title">Turns</h2>
      {all.length === 0 && <p class="muted">No turns yet. The teller’s first instruction starts from the empty canvas.</p>}
      {all.map((s) => (
        <div class="strip" key={s.turns[0]!.id}>
          {s.from && <p class="muted small">Branch from #{s.from.index}</p>}
          <ol class="turns">
            {s.turns.map((t) => (
              <TurnCard
                key={t.id}
                api={props.api}
                live={live}
                turn={t}
                isHead={t.id === head}
                onBranch={branch.has(t.id)}
                canRevert={props.canRevert}
                canCancel={props.canCancel(t)}
                revert={props.revert}
                cancel={props.cancel}
              />
            ))}
          </ol>
        </div>
      ))}
    </section>
  );
}
