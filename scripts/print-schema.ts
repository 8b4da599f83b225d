// `npm run schema:print`: writes the SDL of the Pothos schema to schema.graphql (committed, and
// checked by test/schema.test.ts so it never goes stale).
import { writeFileSync } from 'node:fs';
import { printSchemaSDL } from '../src/graphql/schema/index.js';

writeFileSync(new URL('../schema.graphql', import.meta.url), printSchemaSDL());
console.log('wrote schema.graphql');
