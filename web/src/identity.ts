/**
 * Who this browser is in each session (kept in localStorage so a reload or a dropped connection keeps you in),
 * and the join links people share.
 */
import type { Role } from './api.js';
import { ROLES } from './api.js';

export interface Identity {
  sessionId: string;
  token: string;
  participantId: string;
  name: string;
  role: Role;
}

const key = (sessionId: string): string => `codraw:identity:${sessionId}`;
const NAME_KEY = 'codraw:name';

export function loadIdentity(sessionId: string): Identity | null {
  try {
    const raw = window.localStorage.getItem(key(sessionId));
    if (!raw) return null;
    const v = JSON.parse(raw) as Partial<Identity>;
    if (typeof v.token !== 'string' || typeof v.participantId !== 'string' || typeof v.name !== 'string' || !ROLES.includes(v.role as Role)) return null;
    return { sessionId, token: v.token, participantId: v.participantId, name: v.name, role: v.role as Role };
  } catch {
    return null; // storage disabled or garbled: join again
  }
}

export function saveIdentity(id: Identity): void {
  try {
    window.localStorage.setItem(key(id.sessionId), JSON.stringify(id));
    window.localStorage.setItem(NAME_KEY, id.name);
  } catch {
    // private mode without storage: the identity lasts as long as the page
  }
}

export function forgetIdentity(sessionId: string): void {
  try {
    window.localStorage.removeItem(key(sessionId));
  } catch {
    // nothing stored
  }
}

export function lastName(): string {
  try {
    return window.localStorage.getItem(NAME_KEY) ?? '';
  } catch {
    return '';
  }
}

/** A join link: `/?session=<id>&role=<ROLE>` plus `&invite=<code>` where the server hands out invitations. */
export function joinLink(origin: string, sessionId: string, role: Role, invite?: string | null): string {
  const q = new URLSearchParams({ session: sessionId, role });
  if (invite) q.set('invite', invite);
  return `${origin}/?${q.toString()}`;
}

export interface JoinRequest {
  sessionId: string;
  role: Role | null;
  invite: string | null;
}

/** The join request in a URL's query, if it has one. */
export function parseJoinLink(search: string): JoinRequest | null {
  const q = new URLSearchParams(search);
  const sessionId = q.get('session')?.trim();
  if (!sessionId) return null;
  const role = (q.get('role') ?? '').toUpperCase();
  return { sessionId, role: ROLES.includes(role as Role) ? (role as Role) : null, invite: q.get('invite') || null };
}

export const sessionPath = (sessionId: string): string => `/s/${encodeURIComponent(sessionId)}`;
