/** The executable schema: the SDL contract (schema.graphql at the top of the project) plus the resolvers. */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { GraphQLSchema } from 'graphql';
import { makeExecutableSchema } from '@graphql-tools/schema';
import { resolvers } from './resolvers.js';

/** Find schema.graphql walking up from this module (src/ under tsx, dist/src/ after tsc). */
export function schemaPath(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, 'schema.graphql');
    if (fs.existsSync(candidate)) return candidate;
    const up = path.dirname(dir);
    if (up === dir) throw new Error('cannot find schema.graphql');
    dir = up;
  }
}

export function buildSchema(): GraphQLSchema {
  return makeExecutableSchema({ typeDefs: fs.readFileSync(schemaPath(), 'utf8'), resolvers });
}
