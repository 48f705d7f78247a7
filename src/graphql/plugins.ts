/**
 * The admission path's HTTP half as an Apollo plugin: once Apollo has parsed and validated an operation, the
 * admission checks run before execution (so a refused operation writes nothing); after execution, a response over
 * `maxResponseBytes` is replaced by a RESPONSE_TOO_LARGE error. Identity and the first operation's charge happen
 * in the context function (see `Admission.identify` / `charge`), before parsing.
 */
import type { ApolloServerPlugin } from '@apollo/server';
import type { Limits } from '../config/index.js';
import type { Admission } from './admission.js';
import type { GraphQLContext } from './context.js';
import { apiError, formatError } from './errors.js';

export interface AdmissionPluginOptions {
  admission: Admission;
  limits: Limits;
}

export function admissionPlugin(o: AdmissionPluginOptions): ApolloServerPlugin<GraphQLContext> {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ contextValue, document, request }) {
          const errors = o.admission.checkOperation(contextValue, {
            document,
            operationName: request.operationName,
            variables: request.variables,
            transport: 'http',
          });
          if (errors.length) throw errors[0];
        },
        async willSendResponse({ response }) {
          if (response.body.kind !== 'single') return;
          const bytes = Buffer.byteLength(JSON.stringify(response.body.singleResult));
          if (bytes <= o.limits.maxResponseBytes) return;
          const error = apiError('RESPONSE_TOO_LARGE', responseTooLarge(bytes, o.limits.maxResponseBytes), { limit: o.limits.maxResponseBytes });
          response.body.singleResult = { data: null, errors: [formatError(error.toJSON(), error)] };
        },
      };
    },
  };
}

export function responseTooLarge(bytes: number, limit: number): string {
  return `The response is ${bytes} bytes; the limit is ${limit}. Ask for fewer items (last/first) or fewer image fields.`;
}
