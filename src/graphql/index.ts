/** Public surface of the graphql part: schema, context, errors, limits and the Apollo plugin. */
export { buildSchema, schemaPath } from './schema.js';
export type { GraphQLContext } from './context.js';
export { apiError, formatError, formatErrors, type ErrorCode } from './errors.js';
export { checkOperation, operationDepth, RateLimiter } from './limits.js';
export { limitsPlugin, type LimitsPluginOptions } from './plugins.js';
export { graphql } from './graphqlRuntime.js';
