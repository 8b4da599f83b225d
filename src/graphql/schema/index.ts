import { lexicographicSortSchema, printSchema } from 'graphql';
import { builder } from '../builder.js';
import './dateFields.js';
import './enums.js';
import './handler.js';
import './models.js';
import './task.js';
import './template.js';

builder.queryType({});
builder.mutationType({});

export const schema = builder.toSchema();

export function printSchemaSDL(): string {
  return `${printSchema(lexicographicSortSchema(schema))}\n`;
}
