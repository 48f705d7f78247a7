/**
 * The canvas: the live denoising preview while a turn runs (step, ETA, queue), else the current canvas, scaled up
 * crisply from the model's 64x64. Cancel and download live here.
 */
import { useState } from 'preact/hooks';
import type { Api, ProgressFrame, TurnView } from '../api.js';
import { scaledPng, useImageUrl } from '../images.js';
import { activeTurn, currentCanvas, queueAhead, undoTarget, type LiveSession } from '../sessionState.js';

const DOWNLOAD_SCALE = 8;

const seconds = (ms: number): string => (ms < 1000 ? `${Math.max(0, Math.round(ms / 100) / 10)} s` : `${Math.round(ms / 1000)} s`);

function Progress({ turn, frame, ahead }: { turn: TurnView; frame: ProgressFrame | undefined; ahead: number }) {
  if (turn.status === 'QUEUED' || !frame) {
    return (
      <p class="status" data-testid="progress">
        Turn {turn.index} {turn.status === 'QUEUED' ? (ahead > 0 ? `queued, ${ahead} turn${ahead === 1 ? '' : 's'} ahead` : 'queued, next up') : 'starting…'}
      </p>
    );
  }
  return (
    <div class="status" data-testid="progress">
      <label>
        Turn {turn.index}: step {frame.step} of {frame.totalSteps}, about {seconds(frame.etaMs)} left
        <progress max={frame.totalSteps} value={frame.step} />
      </label>
    </div>
  );
}

export function CanvasPanel(props: { live: LiveSession; api: Api; canCancel(t: TurnView): boolean; cancel(t: TurnView): void; canRevert: boolean; revert(t: TurnView): void }) {
  const { live, api } = props;
  const canvas = currentCanvas(live);
  const loaded = useImageUrl(api, canvas.image);
  const canvasUrl = loaded?.url ?? null;
  const active = activeTurn(live);
  const undo = undoTarget(live);
  const frame = active ? live.previews[active.id] : undefined;
  const preview = frame?.preview ?? null;
  const [saving, setSaving] = useState(false);
  const name = `${live.session.title.replace(/[^\w-]+/g, '-') || 'codraw'}-${canvas.turn ? `turn-${canvas.turn.index}` : 'background'}`;
  const saveScaled = async () => {
    if (!canvasUrl) return;
    setSaving(true);
    try {
      const url = URL.createObjectURL(await scaledPng(canvasUrl, DOWNLOAD_SCALE));
      const a = document.createElement('a');
      a.href = url;
      a.download = `${name}-x${DOWNLOAD_SCALE}.png`;
      a.click();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } finally {
      setSaving(false);
    }
  };
  const caption = canvas.turn ? `After turn ${canvas.turn.index}: ${canvas.turn.instruction}` : 'The empty canvas';
  return (
    <section class="panel canvas-panel" aria-labelledby="canvas-title">
      <h2 id="canvas-title" class="visually-hidden">
        Canvas
      </h2>
      <figure class="canvas-frame">
        {preview ? (
          <img
            class="pixelated"
            data-testid="canvas"
            data-kind="preview"
            data-turn-id={active?.id}
            data-sequence={frame?.sequence}
            src={preview}
            alt={`Denoising preview of turn ${active?.index}, step ${frame?.step} of ${frame?.totalSteps}`}
          />
        ) : canvasUrl ? (
          <img class="pixelated" data-testid="canvas" data-kind="canvas" data-image-id={loaded?.id} src={canvasUrl} alt={caption} />
        ) : (
          <div class="placeholder" aria-busy="true">Loading the canvas…</div>
        )}
        <figcaption>{preview ? 'Live preview (the model’s current guess of the final image)' : caption}</figcaption>
      </figure>
      {active && <Progress turn={active} frame={frame} ahead={queueAhead(live, active)} />}
      <div class="row">
        {active && props.canCancel(active) && (
          <button type="button" class="danger" onClick={() => props.cancel(active)}>
            Cancel turn {active.index}
          </button>
        )}
        {props.canRevert && undo && (
          <button type="button" class="secondary" onClick={() => props.revert(undo)}>
            Undo (back to turn {undo.index})
          </button>
        )}
        {canvasUrl && (
          <>
            <a class="button secondary" href={canvasUrl} download={`${name}.png`}>
              Download PNG ({canvas.image.width}×{canvas.image.height})
            </a>
            <button type="button" class="secondary" onClick={saveScaled} disabled={saving}>
              Download ×{DOWNLOAD_SCALE}
            </button>
          </>
        )}
      </div>
    </section>
  );
}
