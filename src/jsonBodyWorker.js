// The thread that parses large JSON request bodies (src/server.ts), so that decoding and parsing a body of
// megabytes never blocks the event loop that serves every other request. Plain JavaScript: the thread
// starts without a TypeScript loader, from src/ and from dist/ alike.

/**
 * @param {Uint8Array} bytes the request body
 * @returns {object | undefined} the body parsed, when it is a JSON object or array with keys; otherwise
 * undefined, and the caller hands yoga the bytes to parse and refuse as it does.
 */
export default function parseJsonBody(bytes) {
  try {
    const parsed = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
    return parsed && typeof parsed === 'object' && Object.keys(parsed).length > 0 ? parsed : undefined;
  } catch {
    return undefined;
  }
}
