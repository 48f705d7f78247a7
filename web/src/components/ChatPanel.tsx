/** Teller-drawer chat. Drawer replies go into the next turn's text (CoDraw), which the list shows. */
import { useEffect, useRef, useState } from 'preact/hooks';
import type { MessageView, TurnView } from '../api.js';

export function ChatPanel(props: { messages: MessageView[]; turns: TurnView[]; meId: string; canChat: boolean; send(text: string): Promise<boolean> }) {
  const [text, setText] = useState('');
  const [busy, setBusy] = useState(false);
  const list = useRef<HTMLOListElement>(null);
  useEffect(() => {
    const el = list.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [props.messages.length]);
  const send = async (e: Event) => {
    e.preventDefault();
    const t = text.trim();
    if (!t || busy) return;
    setBusy(true);
    if (await props.send(t)) setText('');
    setBusy(false);
  };
  const turnIndex = (id: string | null) => props.turns.find((t) => t.id === id)?.index;
  return (
    <section class="panel chat" aria-labelledby="chat-title">
      <h2 id="chat-title">Chat</h2>
      <ol class="messages" ref={list} aria-live="polite" data-testid="messages">
        {props.messages.length === 0 && <li class="muted">No messages yet.</li>}
        {props.messages.map((m) => (
          <li key={m.id} class={m.author.id === props.meId ? 'mine' : ''}>
            <span class="who">
              {m.author.name} <span class={`role role-${m.author.role.toLowerCase()}`}>{m.author.role.toLowerCase()}</span>
            </span>
            <span class="text">{m.text}</span>
            {m.author.role === 'DRAWER' && (
              <span class="muted small">{m.turnId ? `in turn ${turnIndex(m.turnId) ?? ''}` : 'goes into the next turn'}</span>
            )}
          </li>
        ))}
      </ol>
      {props.canChat ? (
        <form class="row" onSubmit={send}>
          <label for="chat-input" class="visually-hidden">
            Message
          </label>
          <input id="chat-input" name="message" placeholder="Message" value={text} onInput={(e) => setText(e.currentTarget.value)} autoComplete="off" />
          <button type="submit" disabled={busy || !text.trim()}>
            Send
          </button>
        </form>
      ) : (
        <p class="muted">Observers read along.</p>
      )}
    </section>
  );
}
