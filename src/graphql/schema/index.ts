import { lexicographicSortSchema, printSchema } from 'graphql';
import { builder } from '../builder.js';
import './dateFields.js';
import './enums.js';
import './handler.js';
import './history.js';
import './identity.js';
import './models.js';
import './schedule.js';
import './subscription.js';
import './task.js';
import './template.js';
import './templateBindings.js';
import './tenants.js';

// Every root field declares its own authScopes (test/authorization.test.ts checks that none is
// missing); these type-level defaults are the safety net: nothing below EDITOR can change anything.
builder.queryType({ authScopes: { viewer: true } });
builder.mutationType({ authScopes: { editor: true } });
builder.subscriptionType({ authScopes: { viewer: true } });

export const schema = builder.toSchema();

export function printSchemaSDL(): string {
  return `${printSchema(lexicographicSortSchema(schema))}\n`;
}
