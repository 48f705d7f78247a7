/**
 * Every error that reaches a client carries a stable `extensions.code` and a message a person can act on.
 * Domain errors keep their code; anything unexpected is logged and masked as INTERNAL_SERVER_ERROR.
 */
import type { GraphQLError as GraphQLErrorType, GraphQLFormattedError } from 'graphql';
import { graphql } from './graphqlRuntime.js';
import { unwrapResolverError } from '@apollo/server/errors';
import { DomainError } from '../sessions/index.js';
import { partLogger } from '../log/index.js';

const log = partLogger('graphql');

// The process-wide graphql runtime (see graphqlRuntime.ts): graphql-ws checks `instanceof GraphQLError`.
const { GraphQLError } = graphql;
type GraphQLError = GraphQLErrorType;

/** Error codes of the API (see schema.graphql). */
export type ErrorCode =
  | DomainError['code']
  | 'QUERY_TOO_DEEP'
  | 'QUERY_TOO_COMPLEX'
  | 'INTERNAL_SERVER_ERROR';

const HTTP_STATUS: Partial<Record<ErrorCode, number>> = {
  UNAUTHENTICATED: 401,
  RATE_LIMITED: 429,
  QUERY_TOO_DEEP: 400,
  QUERY_TOO_COMPLEX: 400,
};

/** A GraphQL error with a code (and the HTTP status Apollo should answer with when it aborts the request). */
export function apiError(code: ErrorCode, message: string, details: Record<string, unknown> = {}): GraphQLError {
  const status = HTTP_STATUS[code];
  return new GraphQLError(message, { extensions: { code, ...details, ...(status ? { http: { status } } : {}) } });
}

/** Turn whatever a resolver threw into what the client sees. */
export function formatError(formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError {
  const original = unwrapResolverError(error);
  if (original instanceof DomainError) {
    return { ...formatted, message: original.message, extensions: { ...original.details, code: original.code } };
  }
  const code = formatted.extensions?.code;
  if (code && code !== 'INTERNAL_SERVER_ERROR') {
    const { http: _http, stacktrace: _st, ...rest } = formatted.extensions ?? {};
    return { ...formatted, extensions: rest };
  }
  log.error({ err: original }, 'internal error');
  return { message: 'Internal server error.', path: formatted.path, locations: formatted.locations, extensions: { code: 'INTERNAL_SERVER_ERROR' } };
}

/** The same mapping for graphql-ws results. */
export function formatErrors(errors: readonly GraphQLError[]): GraphQLFormattedError[] {
  return errors.map((e) => formatError(e.toJSON(), e));
}
