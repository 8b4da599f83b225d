import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import * as z from 'zod';
import type { DateFieldRuleInput } from '../dateFields/dateRule.js';
import { MisfirePolicy, OverlapPolicy, RepeatType } from '../generated/prisma/client.js';
import type { TemplateInput } from './TemplateSvc.js';

const templateFileEntry = z
  .object({
    fullName: z.string(),
    title: z.string(),
    description: z.string().nullish(),
    taskType: z.string().nullish(),
    repeatType: z.enum(RepeatType).nullish(),
    funcName: z.string().nullish(),
    argDict: z.unknown().optional(),
    cronExpression: z.string().nullish(),
    intervalSeconds: z.number().int().nullish(),
    timezone: z.string().nullish(),
    maxAttempts: z.number().int().nullish(),
    timeoutMs: z.number().int().nullish(),
    memoryLimitMb: z.number().int().nullish(),
    priority: z.number().int().nullish(),
    queue: z.string().nullish(),
    enabled: z.boolean().nullish(),
    // Checked in depth by TemplateSvc (validateDateFieldInput), which names the offending field.
    dateField: z.custom<DateFieldRuleInput>((v) => typeof v === 'object').nullish(),
    misfirePolicy: z.enum(MisfirePolicy).nullish(),
    misfireToleranceMs: z.number().int().nullish(),
    overlapPolicy: z.enum(OverlapPolicy).nullish(),
    retryBackoffMs: z.number().int().nullish(),
    tenantId: z.string().optional(),
  })
  .strict();

export type TemplateFileEntry = TemplateInput & { tenantId?: string };

export class TemplateFileError extends Error {
  constructor(file: string, detail: string) {
    super(`Template file ${file}: ${detail}`);
    this.name = 'TemplateFileError';
  }
}

/**
 * Reads the templates an app ships with its code: every `*.json` file in `dir`, each holding one
 * template object or an array of them. A missing directory means no file templates.
 */
export async function loadTemplateFiles(dir: string): Promise<TemplateFileEntry[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.json')).sort();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const entries: TemplateFileEntry[] = [];
  for (const name of names) {
    const file = path.join(dir, name);
    let json: unknown;
    try {
      json = JSON.parse(await readFile(file, 'utf8'));
    } catch (error) {
      throw new TemplateFileError(file, `not valid JSON (${(error as Error).message})`);
    }
    const parsed = z.array(templateFileEntry).safeParse(Array.isArray(json) ? json : [json]);
    if (!parsed.success) {
      throw new TemplateFileError(file, parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
    }
    entries.push(...parsed.data);
  }
  return entries;
}
