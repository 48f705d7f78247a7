/** The instruction box (tellers; drawers when the session allows it). Enter submits, Shift+Enter is a new line. */
import { useState } from 'preact/hooks';
import type { MessageView } from '../api.js';

export function Composer({ replies, submit }: { replies: MessageView[]; submit(text: string): Promise<boolean> }) {
  const [text, setText] = useState('');
  const [busy, setBusy] = useState(false);
  const send = async () => {
    const t = text.trim();
    if (!t || busy) return;
    setBusy(true);
    if (await submit(t)) setText('');
    setBusy(false);
  };
  return (
    <form
      class="panel composer"
      onSubmit={(e) => {
        e.preventDefault();
        void send();
      }}
    >
      <label for="instruction">Instruction</label>
      <textarea
        id="instruction"
        name="instruction"
        rows={2}
        placeholder="add a red cube left of the blue sphere"
        value={text}
        onInput={(e) => setText(e.currentTarget.value)}
        onKeyDown={(e) => {
          if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
            e.preventDefault();
            void send();
          }
        }}
      />
      {replies.length > 0 && (
        <p class="muted replies" data-testid="pending-replies">
          Sent along with it (drawer replies): {replies.map((r) => `“${r.text}”`).join(' ')}
        </p>
      )}
      <button type="submit" disabled={busy || !text.trim()}>
        {busy ? 'Submitting…' : 'Draw it'}
      </button>
    </form>
  );
}
