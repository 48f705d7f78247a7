/**
 * Request limits shared by HTTP (an Apollo plugin) and graphql-ws (onSubscribe): operations per caller per minute,
 * query depth and query complexity. Each violation is a typed GraphQL error (RATE_LIMITED, QUERY_TOO_DEEP,
 * QUERY_TOO_COMPLEX), raised before any resolver runs, so nothing is written.
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

/** Cost: 1 per field, lists multiply their items' cost by `last`/`first` (or 20), PNG fields cost 10. */
const estimator: ComplexityEstimator = ({ field, args, childComplexity, type }) => {
  if (type.name.startsWith('__') || field.name.startsWith('__')) return 0;
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

/** Depth and complexity errors of an operation (empty when within limits). */
export function checkOperation(limits: Limits, c: OperationCheck): GraphQLError[] {
  const fragments = new Map<string, FragmentDefinitionNode>();
  const ops: OperationDefinitionNode[] = [];
  for (const d of c.document.definitions) {
    if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d);
    else if (d.kind === Kind.OPERATION_DEFINITION) ops.push(d);
  }
  const op = c.operationName ? ops.find((o) => o.name?.value === c.operationName) : ops[0];
  if (!op) return [];
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
    });
  } catch {
    return []; // malformed variables: graphql's own validation reports them
  }
  if (complexity > limits.maxQueryComplexity) {
    return [
      apiError(
        'QUERY_TOO_COMPLEX',
        `The query's estimated cost is ${complexity}; the limit is ${limits.maxQueryComplexity}. Ask for fewer items (last/first) or fewer fields.`,
        { complexity, limit: limits.maxQueryComplexity },
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

  /** Count one operation for `key`; returns an error (and does not count it) when over the limit. */
  hit(key: string): GraphQLError | null {
    const t = this.now();
    const windowStart = t - 60_000;
    const list = (this.hits.get(key) ?? []).filter((x) => x > windowStart);
    if (list.length >= this.perMinute) {
      this.hits.set(key, list);
      const retryAfterMs = list[0]! + 60_000 - t;
      return apiError(
        'RATE_LIMITED',
        `Too many operations: the limit is ${this.perMinute} per minute. Try again in ${Math.ceil(retryAfterMs / 1000)} s.`,
        { limit: this.perMinute, retryAfterMs },
      );
    }
    list.push(t);
    this.hits.set(key, list);
    if (this.hits.size > 10_000) this.prune(windowStart);
    return null;
  }

  private prune(windowStart: number): void {
    for (const [k, v] of this.hits) if (!v.some((x) => x > windowStart)) this.hits.delete(k);
  }
}
