/** Refusals and failures, shown until dismissed (and read out by screen readers). */
import { useState } from 'preact/hooks';
import { noticeFor, type Notice } from '../errors.js';

export function Notices({ notices, dismiss }: { notices: Notice[]; dismiss(id: number): void }) {
  return (
    <div class="notices" role="alert" aria-live="assertive">
      {notices.map((n) => (
        <div class="notice" key={n.id} data-code={n.code}>
          <div>
            <strong>{n.title}</strong>
            <p>{n.detail}</p>
          </div>
          <button type="button" class="ghost" onClick={() => dismiss(n.id)} aria-label={`Dismiss: ${n.title}`}>
            ×
          </button>
        </div>
      ))}
    </div>
  );
}

const NOTICE_MS = 20_000;

/** A list of notices; `report(err, doing)` adds one that goes away by itself after a while. */
export function useNotices(): { notices: Notice[]; report(err: unknown, doing: string): void; dismiss(id: number): void } {
  const [notices, setNotices] = useState<Notice[]>([]);
  const dismiss = (id: number) => setNotices((ns) => ns.filter((n) => n.id !== id));
  const report = (err: unknown, doing: string) => {
    const n = noticeFor(err, doing);
    setNotices((ns) => [...ns.slice(-3), n]);
    setTimeout(() => dismiss(n.id), NOTICE_MS);
  };
  return { notices, report, dismiss };
}
