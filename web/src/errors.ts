/** What to tell a person when the API refuses something: the server's message plus what they can do about it. */
import { ApiError } from './api.js';

export interface Notice {
  id: number;
  title: string;
  detail: string;
  code: string;
}

const TITLES: Record<string, string> = {
  RATE_LIMITED: 'Slow down',
  QUEUE_FULL: 'The queue is full',
  FORBIDDEN: 'Not allowed',
  UNAUTHENTICATED: 'Not signed in to this session',
  NOT_FOUND: 'Not found',
  TEXT_TOO_LONG: 'Too long',
  BAD_USER_INPUT: 'Check the input',
  INVALID_STATE: 'Not possible right now',
  NETWORK: 'Offline',
};

let nextId = 1;

export function noticeFor(err: unknown, doing: string): Notice {
  if (err instanceof ApiError) {
    let detail = err.message;
    if (err.code === 'RATE_LIMITED' && err.retryAfterMs !== null) detail += ` Try again in ${Math.ceil(err.retryAfterMs / 1000)} s.`;
    return { id: nextId++, title: `${TITLES[err.code] ?? 'Refused'}: ${doing}`, detail, code: err.code };
  }
  return { id: nextId++, title: `Something went wrong: ${doing}`, detail: err instanceof Error ? err.message : String(err), code: 'UNKNOWN' };
}
