import type { Database } from '../db/Database.js';
import { ChronographError } from '../errors.js';
import type { PrismaClient } from '../generated/prisma/client.js';
import type { Logger } from '../logger.js';
import { CREDENTIAL_CHANNEL } from './ApiKeySvc.js';
import type { Identity } from './Identity.js';

/** Held by an open subscription or WebSocket connection; `signal` aborts when its credential ends. */
export interface CredentialLease {
  signal: AbortSignal;
  release(): void;
}

interface Watcher {
  controller: AbortController;
  keyId?: string;
  timer?: NodeJS.Timeout;
}

/** setTimeout's limit; later expiries are re-armed from there. */
const MAX_TIMER_MS = 2_147_483_647;

/**
 * Ends what a credential keeps open once the credential is no longer valid: a revoked API key (on any
 * instance: revocation NOTIFYs CREDENTIAL_CHANNEL in its transaction, and every instance listens), an
 * expired key or token (a timer at its expiry). A NOTIFY lost while the PostgreSQL listener reconnected
 * is made up for by re-reading the watched keys.
 */
export class CredentialWatch {
  private readonly byKey = new Map<string, Set<Watcher>>();
  /** Keys seen revoked by NOTIFY: a key verified just before its revocation arrived is caught on watch(). */
  private readonly revoked = new Set<string>();
  private unlisten?: () => Promise<void>;

  constructor(
    private readonly db: Pick<Database, 'listen'>,
    private readonly prisma: PrismaClient,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    this.unlisten ??= await this.db.listen(CREDENTIAL_CHANNEL, (keyId) => {
      if (keyId) this.revoke(keyId);
      else void this.recheck();
    });
  }

  async stop(): Promise<void> {
    const unlisten = this.unlisten;
    this.unlisten = undefined;
    await unlisten?.();
    for (const watchers of this.byKey.values()) for (const w of watchers) clearTimeout(w.timer);
    this.byKey.clear();
  }

  watch(identity: Identity): CredentialLease {
    const watcher: Watcher = { controller: new AbortController(), keyId: identity.keyId };
    const { signal } = watcher.controller;
    if (identity.keyId) {
      let watchers = this.byKey.get(identity.keyId);
      if (!watchers) this.byKey.set(identity.keyId, (watchers = new Set()));
      watchers.add(watcher);
      if (this.revoked.has(identity.keyId)) this.end(watcher, 'revoked');
    }
    if (identity.expiresAt && !signal.aborted) this.arm(watcher, identity.expiresAt);
    return { signal, release: () => this.forget(watcher) };
  }

  private arm(watcher: Watcher, expiresAt: Date): void {
    const delay = expiresAt.getTime() - Date.now();
    // An expiry that is not a time (an invalid Date) ends the subscription rather than re-arming a
    // timer of NaN ms, which fires at once, for ever.
    if (!(delay > 0)) {
      this.end(watcher, 'expired');
      return;
    }
    watcher.timer = setTimeout(() => this.arm(watcher, expiresAt), Math.min(delay, MAX_TIMER_MS));
    watcher.timer.unref();
  }

  private revoke(keyId: string): void {
    this.revoked.add(keyId);
    if (this.revoked.size > 100_000) this.revoked.clear();
    for (const watcher of [...(this.byKey.get(keyId) ?? [])]) this.end(watcher, 'revoked');
  }

  private async recheck(): Promise<void> {
    const ids = [...this.byKey.keys()];
    if (ids.length === 0) return;
    try {
      const revoked = await this.prisma.apiKey.findMany({ where: { id: { in: ids }, revokedAt: { not: null } }, select: { id: true } });
      for (const { id } of revoked) this.revoke(id);
    } catch (error) {
      this.logger.warn({ err: error }, 'could not re-check the API keys of open subscriptions');
    }
  }

  private end(watcher: Watcher, why: 'revoked' | 'expired'): void {
    this.forget(watcher);
    watcher.controller.abort(
      new ChronographError('UNAUTHENTICATED', `The credential of this subscription ${why === 'revoked' ? 'was revoked' : 'has expired'}`),
    );
  }

  private forget(watcher: Watcher): void {
    clearTimeout(watcher.timer);
    if (!watcher.keyId) return;
    const watchers = this.byKey.get(watcher.keyId);
    watchers?.delete(watcher);
    if (watchers?.size === 0) this.byKey.delete(watcher.keyId);
  }
}
