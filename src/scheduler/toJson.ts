/**
 * What a handler returns (or logs, or throws) must be stored in PostgreSQL: JSON without NUL characters
 * or unpaired surrogates (jsonb and text refuse both), not circular, no BigInt, not too large. Every
 * outcome goes through here once, before a completion is built, so a value that cannot be stored fails
 * only its own run — with a message saying where the problem is — instead of the batched statement that
 * records everyone's completions.
 */
export type JsonOutcome = { ok: true; value: unknown } | { ok: false; error: string };

class NotJson extends Error {}

/**
 * JSON.stringify's semantics (toJSON, Dates as strings, undefined and functions dropped from objects),
 * plus the checks above. `what` names the value in the error: "result is not JSON: BigInt at $.total".
 */
export function toJson(value: unknown, maxBytes: number, what = 'result'): JsonOutcome {
  if (value === undefined) return { ok: true, value: null };
  const paths = new WeakMap<object, string>();
  let text: string | undefined;
  try {
    text = JSON.stringify(value, function (this: unknown, key: string, v: unknown) {
      const parent = paths.get(this as object);
      const path = parent === undefined ? '$' : `${parent}${Array.isArray(this) ? `[${key}]` : `.${key}`}`;
      if (!storable(key)) throw new NotJson(`${describeBadText(key)} in a key at ${parent}`);
      if (typeof v === 'bigint') throw new NotJson(`BigInt ${v} at ${path} (convert it to a string or number)`);
      if (typeof v === 'string' && !storable(v)) throw new NotJson(`${describeBadText(v)} at ${path}`);
      if (typeof v === 'object' && v !== null && !paths.has(v)) paths.set(v, path);
      return v;
    });
  } catch (error) {
    const message = error instanceof NotJson ? error.message : oneLine((error as Error).message);
    return { ok: false, error: `${what} is not JSON: ${message}` };
  }
  if (text === undefined) return { ok: true, value: null }; // a function or symbol: nothing to store
  const bytes = Buffer.byteLength(text);
  if (bytes > maxBytes) return { ok: false, error: `${what} is not JSON that can be stored: ${bytes} bytes, more than the ${maxBytes} allowed (MAX_JSON_BYTES)` };
  return { ok: true, value: JSON.parse(text) };
}

/**
 * Text for a text column (error messages, stacks, log lines): NUL characters become a visible `\0`,
 * unpaired surrogates U+FFFD, and anything longer than `maxChars` is cut with a note.
 */
export function toStorableText(text: string, maxChars = 65_536): string {
  let out = storable(text) ? text : text.replace(/\u0000/g, '\\0').replace(LONE_SURROGATE, '\ufffd');
  if (out.length > maxChars) out = `${out.slice(0, maxChars)}… (${out.length - maxChars} more characters)`;
  return out;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

function storable(text: string): boolean {
  LONE_SURROGATE.lastIndex = 0;
  return !text.includes('\u0000') && !LONE_SURROGATE.test(text);
}

function describeBadText(text: string): string {
  return text.includes('\u0000') ? 'a NUL character (PostgreSQL cannot store \\u0000)' : 'an unpaired UTF-16 surrogate';
}

function oneLine(message: string): string {
  return message.replace(/\s*\n\s*/g, ' ');
}
