import { ChronographError } from '../errors.js';
import { assertJson, isStorableText } from '../tasks/validate.js';

/**
 * What a handler returns (or logs) must be stored in PostgreSQL. Every outcome goes through here once,
 * before a completion is built, so a value that cannot be stored — circular or too deep, a BigInt, NUL
 * characters or unpaired surrogates, larger than MAX_JSON_BYTES (what validate.ts's measureJson checks,
 * the one place JSON is measured) — fails only its own run, with a message saying where, instead of the
 * batched statement that records everyone's completions.
 */
export type JsonOutcome = { ok: true; value: unknown } | { ok: false; error: string };

/** The value as the database will store it (JSON.stringify's semantics: Dates as strings), or why it cannot be. */
export function toJson(value: unknown, maxBytes: number, what = 'result'): JsonOutcome {
  if (value === undefined || value === null) return { ok: true, value: null };
  try {
    assertJson(value, '$', { maxBytes });
  } catch (error) {
    if (error instanceof ChronographError) return { ok: false, error: `${what} is not JSON: ${error.message}` };
    throw error;
  }
  return { ok: true, value: JSON.parse(JSON.stringify(value)) };
}

/**
 * Text for a text column (error messages, stacks, log lines): NUL characters become a visible `\0`,
 * unpaired surrogates U+FFFD, and anything longer than `maxChars` is cut with a note.
 */
export function toStorableText(text: string, maxChars = 65_536): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is exactly what PostgreSQL text cannot store.
  let out = isStorableText(text) ? text : text.replace(/\u0000/g, '\\0').replace(/\p{Cs}/gu, '\ufffd');
  if (out.length > maxChars) out = `${out.slice(0, maxChars)}… (${out.length - maxChars} more characters)`;
  return out;
}
