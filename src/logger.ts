import { type DestinationStream, type Logger, pino } from 'pino';

export type { Logger };

/**
 * Credentials never reach the log: wherever a logged object carries an Authorization header, graphql-ws
 * connectionParams or a key's secret, pino replaces the value. Chronograph itself never logs them; this
 * covers libraries and app code that log requests or errors wholesale.
 */
export const REDACTED_PATHS = [
  'authorization',
  '*.authorization',
  '*.*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  '*.*.headers.authorization',
  'connectionParams',
  '*.connectionParams',
  'secret',
  '*.secret',
  '*.*.secret',
  'secretHash',
  '*.secretHash',
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino({ level, base: { service: 'chronograph' }, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } }, destination);
}
