import { lexicographicSortSchema, printSchema } from 'graphql';
import { builder } from '../builder.js';
import './dateFields.js';
import './enums.js';
import './handler.js';
import './models.js';
import './schedule.js';
import './subscription.js';
import './task.js';
import './template.js';

builder.queryType({});
builder.mutationType({});
builder.subscriptionType({});

export const schema = builder.toSchema();

export function printSchemaSDL(): string {
  return `${printSchema(lexicographicSortSchema(schema))}\n`;
}
