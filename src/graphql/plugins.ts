/**
 * Cross-cutting concerns of HTTP operations as an Apollo plugin: rate limiting per caller, then depth and
 * complexity limits, all before execution (so a refused operation writes nothing).
 */
import type { ApolloServerPlugin } from '@apollo/server';
import type { Limits } from '../config/index.js';
import type { GraphQLContext } from './context.js';
import { checkOperation, type RateLimiter } from './limits.js';

export interface LimitsPluginOptions {
  limits: Limits;
  rateLimiter: RateLimiter;
  /** Rate-limit key of an HTTP caller without a token. */
  anonymousKey(ctx: GraphQLContext): string;
}

export function limitsPlugin(o: LimitsPluginOptions): ApolloServerPlugin<GraphQLContext> {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ contextValue, document, request, schema }) {
          const key = contextValue.tokenHash ?? o.anonymousKey(contextValue);
          const limited = o.rateLimiter.hit(key);
          if (limited) throw limited;
          const errors = checkOperation(o.limits, {
            schema,
            document,
            operationName: request.operationName,
            variables: request.variables,
          });
          if (errors.length) throw errors[0];
        },
      };
    },
  };
}
