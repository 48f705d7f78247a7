/** The admission path as plain calls over the real schema (no server): identity, charging, operation checks, graphql-ws preparation. */
import { describe, expect, it } from 'vitest';
import { Admission, buildSchema, graphql, type Caller } from '../../src/graphql/index.js';
import { makeConfig } from '../../src/config/index.js';

const schema = buildSchema();
const limits = makeConfig({ limits: { maxOperationsPerMinute: 10, maxRootFields: 4 } }).limits;

function admission(known = new Set(['good'])): { a: Admission; lookups: string[] } {
  const lookups: string[] = [];
  const a = new Admission({
    schema,
    limits,
    hashToken: (t) => `h:${t}`,
    tokenExists: async (t) => {
      lookups.push(t);
      return known.has(t);
    },
  });
  return { a, lookups };
}
const codeOf = (f: () => unknown): string | undefined => {
  try {
    f();
  } catch (e) {
    return (e as { extensions?: { code?: string } }).extensions?.code;
  }
  return undefined;
};
const codeOfAsync = async (p: Promise<unknown>): Promise<string | undefined> =>
  p.then(
    () => undefined,
    (e: { extensions?: { code?: string } }) => e.extensions?.code,
  );

describe('identify', () => {
  it('looks a token up once; unknown tokens are charged to the address first, then refused without a lookup', async () => {
    const { a, lookups } = admission();
    expect(await a.identify('Bearer good', '1.2.3.4')).toEqual({ token: 'good', tokenHash: 'h:good', key: 'h:good' });
    await a.identify('good', '1.2.3.4');
    expect(lookups).toEqual(['good']);
    expect(await a.identify(null, '1.2.3.4')).toEqual({ token: null, tokenHash: null, key: 'ip:1.2.3.4' });
    for (let i = 0; i < 10; i++) expect(await codeOfAsync(a.identify(`bad${i}`, '5.6.7.8'))).toBe('UNAUTHENTICATED');
    expect(lookups).toHaveLength(11);
    // The address's quota is spent: refused before the lookup, and a known token from there is still served.
    expect(await codeOfAsync(a.identify('bad-again', '5.6.7.8'))).toBe('RATE_LIMITED');
    expect(lookups).toHaveLength(11);
    expect((await a.identify('good', '5.6.7.8')).key).toBe('h:good');
  });
});

describe('checkOperation', () => {
  const caller: Caller = { token: 't', tokenHash: 'h:t', key: 'h:t' };
  const check = (a: Admission, q: string, variables: Record<string, unknown> = {}, transport: 'http' | 'ws' = 'http') =>
    a.checkOperation(caller, { document: graphql.parse(q), variables, transport }).map((e) => e.extensions.code);
  const send = (n: number) => `mutation { ${Array.from({ length: n }, (_, i) => `m${i}: sendMessage(sessionId: "s", text: "x") { id }`).join(' ')} }`;

  it('charges a mutation\'s extra root fields, all or none', () => {
    const { a } = admission();
    a.charge(caller); // the request itself
    expect(check(a, send(4))).toEqual([]); // 1 + 3 = 4 of 10
    a.charge(caller);
    expect(check(a, send(4))).toEqual([]); // 8 of 10
    a.charge(caller); // 9 of 10
    expect(check(a, send(3))).toEqual(['RATE_LIMITED']); // would be 11: nothing counted
    a.charge(caller); // 10 of 10: the single charge still fitted
    expect(codeOf(() => a.charge(caller))).toBe('RATE_LIMITED');
    // Queries' root fields are capped but not charged.
    expect(check(admission().a, `{ a: engineStatus { busy } b: engineStatus { busy } c: engineStatus { busy } d: engineStatus { busy } }`)).toEqual([]);
    expect(check(admission().a, send(5))).toEqual(['TOO_MANY_ROOT_FIELDS']);
  });

  it('refuses subscriptions over HTTP, lone surrogates in variables, and new work while draining', () => {
    const { a } = admission();
    expect(check(a, 'subscription { sessionEvents(sessionId: "s") { kind } }')).toEqual(['BAD_REQUEST']);
    expect(check(a, 'subscription { sessionEvents(sessionId: "s") { kind } }', {}, 'ws')).toEqual([]);
    expect(check(a, 'query($id: ID!) { session(id: $id) { id } }', { id: 'a\ud800' })).toEqual(['BAD_USER_INPUT']);
    expect(check(a, 'query($id: ID!) { session(id: $id) { id } }', { id: 'a\ud83d\ude00' })).toEqual([]);
    a.startDraining();
    expect(check(a, send(1))).toEqual(['INVALID_STATE']);
    expect(check(a, 'subscription { sessionEvents(sessionId: "s") { kind } }', {}, 'ws')).toEqual(['INVALID_STATE']);
    expect(check(a, '{ engineStatus { busy } }')).toEqual([]);
  });
});

describe('prepare (graphql-ws)', () => {
  const caller: Caller = { token: 't', tokenHash: 'h:t', key: 'h:t' };
  const codes = (query: unknown, variables?: unknown, operationName?: string) => {
    const r = admission().a.prepare(caller, { query, variables, operationName } as never);
    return 'errors' in r ? r.errors.map((e) => e.extensions.code) : 'ok';
  };

  it('gives the codes HTTP gets from Apollo', () => {
    expect(codes('subscription { sessionEvents(sessionId: "s") { kind } }')).toBe('ok');
    expect(codes('subscription {')).toEqual(['GRAPHQL_PARSE_FAILED']);
    expect(codes(42)).toEqual(['BAD_REQUEST']);
    expect(codes('subscription { nope }')).toEqual(['GRAPHQL_VALIDATION_FAILED']);
    expect(codes('subscription($s: ID!) { sessionEvents(sessionId: $s) { kind } }', { s: [1] })).toEqual(['BAD_USER_INPUT']);
    expect(codes('subscription($s: ID!) { sessionEvents(sessionId: $s) { kind } }', [1])).toEqual(['BAD_REQUEST']);
    expect(codes('subscription A { sessionEvents(sessionId: "s") { kind } } subscription B { turnProgress(sessionId: "s") { step } }')).toEqual(['BAD_REQUEST']);
    expect(codes('subscription A { sessionEvents(sessionId: "s") { kind } } subscription B { turnProgress(sessionId: "s") { step } }', {}, 'B')).toBe('ok');
    expect(codes(`{ ${'a: __typename '.repeat(3000)} }`)).toEqual(['GRAPHQL_PARSE_FAILED']); // over maxQueryTokens
    expect(codes('{ __schema { a: types { name } } }')).toEqual(['GRAPHQL_VALIDATION_FAILED']); // no aliases in introspection
    const deep = codes('{ __schema { types { fields { type { fields { type { fields { type { fields { name } } } } } } } } } }');
    expect(new Set(deep)).toEqual(new Set(['GRAPHQL_VALIDATION_FAILED']));
  });
});
