/** Engine status, polled (it is public and cheap) and refreshed on demand, e.g. when a turn starts or ends. */
import { useEffect, useRef, useState } from 'preact/hooks';
import type { Api, EngineStatusView } from '../api.js';
import { ApiError } from '../api.js';

const POLL_MS = 10_000;

export function useEngineStatus(api: Api): { status: EngineStatusView | null; error: string | null; refresh(): void } {
  const [status, setStatus] = useState<EngineStatusView | null>(null);
  const [error, setError] = useState<string | null>(null);
  const pending = useRef<ReturnType<typeof setTimeout> | null>(null);
  const load = () =>
    api.engineStatus().then(
      (s) => {
        setStatus(s);
        setError(null);
      },
      (e: unknown) => setError(e instanceof ApiError ? e.message : 'The engine status is not available.'),
    );
  useEffect(() => {
    void load();
    const timer = setInterval(() => void load(), POLL_MS);
    return () => {
      clearInterval(timer);
      if (pending.current) clearTimeout(pending.current);
    };
  }, [api]);
  // Several events in a row (queued, started, finished) cost one request.
  const refresh = () => {
    if (pending.current) return;
    pending.current = setTimeout(() => {
      pending.current = null;
      void load();
    }, 400);
  };
  return { status, error, refresh };
}
