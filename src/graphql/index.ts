/** Public surface of the graphql part: schema, context, errors, the admission path (auth, rate, cost) and its plugin. */
export { buildSchema, schemaPath } from './schema.js';
export type { GraphQLContext } from './context.js';
export { apiError, errorBody, formatError, formatErrors, retryAfterSeconds, HTTP_STATUS, type ErrorCode } from './errors.js';
export { checkOperation, operationDepth, rootFieldCount, RateLimiter } from './limits.js';
export {
  Admission,
  bearer,
  extraValidationRules,
  type AdmissionOptions,
  type Caller,
  type OperationRequest,
  type SubscribePayload,
  type Transport,
} from './admission.js';
export { admissionPlugin, responseTooLarge, type AdmissionPluginOptions } from './plugins.js';
export { graphql } from './graphqlRuntime.js';
