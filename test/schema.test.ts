import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { printSchemaSDL } from '../src/graphql/schema/index.js';

it('schema.graphql is the printed Pothos schema (run `npm run schema:print` after changing the schema)', () => {
  const committed = readFileSync(new URL('../schema.graphql', import.meta.url), 'utf8');
  expect(committed).toBe(printSchemaSDL());
});
