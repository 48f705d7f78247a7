/** Depth, complexity and rate limits as pure functions over the real schema. */
import { describe, expect, it } from 'vitest';
import { buildSchema, checkOperation, graphql, RateLimiter } from '../../src/graphql/index.js';
import { makeConfig } from '../../src/config/index.js';

const schema = buildSchema();
const limits = makeConfig({ limits: { maxQueryDepth: 4, maxQueryComplexity: 100 } }).limits;
const check = (q: string, variables: Record<string, unknown> = {}, operationName?: string) =>
  checkOperation(limits, { schema, document: graphql.parse(q), variables, operationName }).map((e) => ({
    code: e.extensions.code,
    ...(e.extensions.depth ? { depth: e.extensions.depth } : {}),
    ...(e.extensions.complexity ? { complexity: e.extensions.complexity } : {}),
  }));

describe('query depth', () => {
  it('counts nested selections through fragments and inline fragments, not introspection', () => {
    expect(check(`{ session(id: "s") { headTurn { parent { id } } } }`)).toEqual([]);
    expect(check(`{ session(id: "s") { headTurn { parent { parent { id } } } } }`)).toEqual([{ code: 'QUERY_TOO_DEEP', depth: 5 }]);
    expect(check(`query { session(id: "s") { ...F } } fragment F on DrawingSession { headTurn { ... on Turn { parent { parent { id } } } } }`)).toEqual([
      { code: 'QUERY_TOO_DEEP', depth: 5 },
    ]);
    expect(check(`{ __schema { types { fields { type { ofType { ofType { name } } } } } } }`)).toEqual([]);
  });

  it('checks the named operation of a document', () => {
    const doc = `query A { engineStatus { busy } } query B { session(id: "s") { headTurn { parent { parent { id } } } } }`;
    expect(check(doc, {}, 'A')).toEqual([]);
    expect(check(doc, {}, 'B')[0]?.code).toBe('QUERY_TOO_DEEP');
  });
});

describe('query complexity', () => {
  it('multiplies list items by last (or 20) and charges PNG fields more', () => {
    expect(check(`{ session(id: "s") { turns(last: 5) { id } } }`)).toEqual([]);
    // 1 (session) + 1 (turns) + 30 * (1 + 1 + 10) = 362
    expect(check(`{ session(id: "s") { turns(last: 30) { id resultImage { dataUrl } } } }`)).toEqual([
      { code: 'QUERY_TOO_COMPLEX', complexity: 362 },
    ]);
    // Variables count: the same page size through a variable.
    expect(check(`query($n: Int) { session(id: "s") { turns(last: $n) { id resultImage { dataUrl } } } }`, { n: 30 })[0]?.code).toBe(
      'QUERY_TOO_COMPLEX',
    );
    // Lists without last count 20 items, and nested lists multiply: 1 + 20 * (1 + 20 * 2) = 821.
    expect(check(`{ sessions { participants { name role } } }`)).toEqual([{ code: 'QUERY_TOO_COMPLEX', complexity: 821 }]);
    expect(check(`{ sessions { id title } }`)).toEqual([]); // 1 + 20 * 2
  });
});

describe('rate limiter', () => {
  it('allows N operations per sliding minute per key, then RATE_LIMITED with a retry time', () => {
    let now = 1_000_000;
    const rl = new RateLimiter(3, () => now);
    expect([rl.hit('a'), rl.hit('a'), rl.hit('a')]).toEqual([null, null, null]);
    const e = rl.hit('a');
    expect(e?.extensions.code).toBe('RATE_LIMITED');
    expect(e?.extensions.retryAfterMs).toBe(60_000);
    expect(rl.hit('b')).toBeNull(); // per key
    now += 30_000;
    expect(rl.hit('a')?.extensions.retryAfterMs).toBe(30_000); // refused ones do not count
    now += 30_001;
    expect(rl.hit('a')).toBeNull();
  });
});
