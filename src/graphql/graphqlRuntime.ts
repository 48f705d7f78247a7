/**
 * The one `graphql` runtime the whole process uses. graphql 16 ships CommonJS and ESM builds without an
 * "exports" map: Node resolves `graphql` to the CommonJS build for every dependency (Apollo, graphql-ws,
 * graphql-tools, graphql-query-complexity), while bundler-style resolvers (vitest) hand our own sources the ESM
 * build. Two copies break graphql's `instanceof` checks, so our code takes its runtime values from the CommonJS
 * build too. Types still come from `import type ... from 'graphql'` (erased at run time).
 */
import { createRequire } from 'node:module';

export const graphql = createRequire(import.meta.url)('graphql') as typeof import('graphql');
