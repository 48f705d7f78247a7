/// <reference lib="dom" />
// (web/src runs in the browser; its modules mention DOM types.)
/** Join links (web/src/identity.ts): what a teller shares and what the join page reads back, invite code included. */
import { describe, expect, it } from 'vitest';
import { joinLink, parseJoinLink, sessionPath } from '../../web/src/identity.js';

describe('join links', () => {
  it('carry the session and role, and an invite code only when there is one', () => {
    expect(joinLink('http://h:4000', 'abc-1', 'DRAWER')).toBe('http://h:4000/?session=abc-1&role=DRAWER');
    expect(joinLink('http://h:4000', 'abc-1', 'OBSERVER', 'K7Q2')).toBe('http://h:4000/?session=abc-1&role=OBSERVER&invite=K7Q2');
  });

  it('read back what they carry; an unknown role is left for the person to pick', () => {
    expect(parseJoinLink(new URL(joinLink('http://h', 's1', 'TELLER', 'c0de')).search)).toEqual({ sessionId: 's1', role: 'TELLER', invite: 'c0de' });
    expect(parseJoinLink('?session=s1&role=drawer')).toEqual({ sessionId: 's1', role: 'DRAWER', invite: null });
    expect(parseJoinLink('?session=s1&role=ADMIN')).toEqual({ sessionId: 's1', role: null, invite: null });
    expect(parseJoinLink('?role=DRAWER')).toBeNull();
    expect(sessionPath('a b')).toBe('/s/a%20b');
  });
});
