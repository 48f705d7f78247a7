/**
 * The shape and rate limits of operations, as pure functions (the admission path applies them to HTTP and graphql-ws
 * alike): root fields per operation, query depth, query complexity, operations per caller per minute. Each violation
 * is a typed GraphQL error (TOO_MANY_ROOT_FIELDS, QUERY_TOO_DEEP, QUERY_TOO_COMPLEX, RATE_LIMITED), raised before any
 * resolver runs, so nothing is written.
 */
import type {
  DocumentNode,
  FragmentDefinitionNode,
  GraphQLError,
  GraphQLSchema,
  OperationDefinitionNode,
  SelectionSetNode,
} from 'graphql';
import { graphql } from './graphqlRuntime.js';
import { getComplexity, type ComplexityEstimator } from 'graphql-query-complexity';
import type { Limits } from '../config/index.js';
import { apiError } from './errors.js';

/** Items a list field is assumed to return when it has no `last`/`first` argument. */
const DEFAULT_LIST_SIZE = 20;
const { getNullableType, isListType, Kind } = graphql;
/** Fields that carry whole PNGs cost more than a scalar. */
const HEAVY_FIELDS = new Set(['dataUrl', 'preview']);

/** Depth of the deepest field selection of an operation (fragments expanded; introspection fields not counted). */
export function operationDepth(op: OperationDefinitionNode, fragments: Map<string, FragmentDefinitionNode>): number {
  const depthOf = (set: SelectionSetNode | undefined, seen: Set<string>): number => {
    if (!set) return 0;
    let max = 0;
    for (const sel of set.selections) {
      if (sel.kind === Kind.FIELD) {
        if (sel.name.value.startsWith('__')) continue;
        max = Math.max(max, 1 + depthOf(sel.selectionSet, seen));
      } else if (sel.kind === Kind.INLINE_FRAGMENT) {
        max = Math.max(max, depthOf(sel.selectionSet, seen));
      } else {
        const name = sel.name.value;
        const frag = fragments.get(name);
        if (!frag || seen.has(name)) continue; // cycles are a validation error reported by graphql itself
        max = Math.max(max, depthOf(frag.selectionSet, new Set([...seen, name])));
      }
    }
    return max;
  };
  return depthOf(op.selectionSet, new Set());
}

/**
 * Cost: 1 per field, lists multiply their items' cost by `last`/`first` (or 20), PNG fields cost 10. Introspection
 * costs 1 per selected field without list multiplication: the schema is small and fixed, and graphql's
 * MaxIntrospectionDepthRule bounds its nesting, so what grows a response is selections (aliases), counted here.
 */
const estimator: ComplexityEstimator = ({ field, args, childComplexity, type }) => {
  if (type.name.startsWith('__') || field.name.startsWith('__')) return 1 + childComplexity;
  const own = HEAVY_FIELDS.has(field.name) ? 10 : 1;
  if (isListType(getNullableType(field.type))) {
    const n = typeof args.last === 'number' ? args.last : typeof args.first === 'number' ? args.first : DEFAULT_LIST_SIZE;
    return own + Math.max(0, n) * childComplexity;
  }
  return own + childComplexity;
};

export interface OperationCheck {
  schema: GraphQLSchema;
  document: DocumentNode;
  operationName?: string | null;
  variables?: Record<string, unknown> | null;
}

/** The operation a request runs (by name, or the only one) and the document's fragments. */
export function selectOperation(
  document: DocumentNode,
  operationName?: string | null,
): { op: OperationDefinitionNode | null; fragments: Map<string, FragmentDefinitionNode> } {
  const fragments = new Map<string, FragmentDefinitionNode>();
  const ops: OperationDefinitionNode[] = [];
  for (const d of document.definitions) {
    if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
    else if (d.kind === Kind.OPERATION_DEFINITION) ops.push(d);
  }
  const op = operationName ? ops.find((o) => o.name?.value === operationName) : ops.length === 1 ? ops[0]! : null;
  return { op: op ?? null, fragments };
}

/** Root fields an operation selects, aliases counted (fragments expanded; `__typename` not counted). */
export function rootFieldCount(op: OperationDefinitionNode, fragments: Map<string, FragmentDefinitionNode>): number {
  const count = (set: SelectionSetNode, seen: Set<string>): number => {
    let n = 0;
    for (const sel of set.selections) {
      if (sel.kind === Kind.FIELD) n += sel.name.value === '__typename' ? 0 : 1;
      else if (sel.kind === Kind.INLINE_FRAGMENT) n += count(sel.selectionSet, seen);
      else {
        const frag = fragments.get(sel.name.value);
        if (frag && !seen.has(sel.name.value)) n += count(frag.selectionSet, new Set([...seen, sel.name.value]));
      }
    }
    return n;
  };
  return count(op.selectionSet, new Set());
}

/** Root-field, depth and complexity errors of an operation (empty when within limits). */
export function checkOperation(limits: Limits, c: OperationCheck): GraphQLError[] {
  const { op, fragments } = selectOperation(c.document, c.operationName);
  if (!op) return [];
  const roots = rootFieldCount(op, fragments);
  if (roots > limits.maxRootFields) {
    return [
      apiError(
        'TOO_MANY_ROOT_FIELDS',
        `The operation selects ${roots} root fields (aliases count); the limit is ${limits.maxRootFields}. Send fewer per operation.`,
        { rootFields: roots, limit: limits.maxRootFields },
      ),
    ];
  }
  const depth = operationDepth(op, fragments);
  if (depth > limits.maxQueryDepth) {
    return [
      apiError('QUERY_TOO_DEEP', `The query nests ${depth} levels deep; the limit is ${limits.maxQueryDepth}.`, {
        depth,
        limit: limits.maxQueryDepth,
      }),
    ];
  }
  let complexity: number;
  try {
    complexity = getComplexity({
      estimators: [estimator],
      schema: c.schema,
      query: c.document,
      operationName: c.operationName ?? undefined,
      variables: c.variables ?? {},
      // Every field costs at least 1, so more nodes than this is over the limit whatever they are.
      maxQueryNodes: limits.maxQueryComplexity + 1,
    });
  } catch (err) {
    if (err instanceof Error && /maximum allowed number of nodes/.test(err.message)) {
      complexity = Infinity;
    } else {
      return []; // malformed variables: reported by variable coercion (BAD_USER_INPUT) before anything runs
    }
  }
  if (complexity > limits.maxQueryComplexity) {
    return [
      apiError(
        'QUERY_TOO_COMPLEX',
        `The query's estimated cost is ${Number.isFinite(complexity) ? complexity : `over ${limits.maxQueryComplexity}`}; the limit is ${limits.maxQueryComplexity}. Ask for fewer items (last/first) or fewer fields.`,
        { complexity: Number.isFinite(complexity) ? complexity : limits.maxQueryComplexity + 1, limit: limits.maxQueryComplexity },
      ),
    ];
  }
  return [];
}

/** Sliding one-minute window of operations per caller. */
export class RateLimiter {
  private readonly hits = new Map<string, number[]>();
  constructor(
    private readonly perMinute: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Count `n` operations for `key`, all or none; returns an error (and counts nothing) when over the limit. */
  hit(key: string, n = 1): GraphQLError | null {
    const t = this.now();
    const windowStart = t - 60_000;
    const list = (this.hits.get(key) ?? []).filter((x) => x > windowStart);
    if (list.length + n > this.perMinute) {
      this.hits.set(key, list);
      // When enough of the window's hits have expired to make room for n more.
      const k = Math.min(list.length - 1, Math.max(0, list.length + n - this.perMinute - 1));
      const retryAfterMs = k >= 0 ? list[k]! + 60_000 - t : 60_000;
      return apiError(
        'RATE_LIMITED',
        `Too many operations: the limit is ${this.perMinute} per minute. Try again in ${Math.ceil(retryAfterMs / 1000)} s.`,
        { limit: this.perMinute, retryAfterMs },
      );
    }
    for (let i = 0; i < n; i++) list.push(t);
    this.hits.set(key, list);
    if (this.hits.size > 10_000) this.prune(windowStart);
    return null;
  }

  private prune(windowStart: number): void {
    for (const [k, v] of this.hits) if (!v.some((x) => x > windowStart)) this.hits.delete(k);
  }
}
