import { readdir } from 'node:fs/promises';
import type { RequestListener, Server } from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ApiKeySvc } from './auth/ApiKeySvc.js';
import { Authenticator } from './auth/Authenticator.js';
import { CredentialWatch } from './auth/CredentialWatch.js';
import { authConfigProblem, type Config, ConfigError } from './config.js';
import { DateFieldSvc } from './dateFields/DateFieldSvc.js';
import { ModelSvc } from './dateFields/ModelSvc.js';
import { type Database, databaseOptions, openDatabase, type QueryEvent } from './db/Database.js';
import { OutdatedError } from './db/migrate.js';
import { SchemaWatch } from './db/SchemaWatch.js';
import { ChronographError } from './errors.js';
import { TaskEventStream } from './events/TaskEventStream.js';
import { createWsServer, type WsServer } from './graphql/createWsServer.js';
import { createChronographYoga } from './graphql/createYoga.js';
import { registerBuiltinHandlers } from './handlers/builtinHandlers.js';
import { type Handler, HandlerRegistry } from './handlers/HandlerRegistry.js';
import { HostPolicy } from './handlers/HostPolicy.js';
import { registerHttpHandlers } from './handlers/httpHandlers.js';
import { HistoryPruner } from './history/HistoryPruner.js';
import { createLogger, type Logger } from './logger.js';
import { AdmissionControl } from './ops/AdmissionControl.js';
import { checkReadiness, type Readiness } from './ops/checkReadiness.js';
import { collectGarbage } from './ops/heap.js';
import { Metrics } from './ops/Metrics.js';
import { createRequestListener } from './ops/requestListener.js';
import { Scheduler } from './scheduler/Scheduler.js';
import {
  closeJsonParser,
  readBody,
  refuseTooLarge,
  refuseTooSlow,
  refuseWhileStopping,
  startHttpServer,
  useBody,
  waitUntil,
} from './server.js';
import { TaskSvc } from './tasks/TaskSvc.js';
import { type NormalType, TaskTypeRegistry } from './tasks/TaskTypeRegistry.js';
import { loadTemplateFiles } from './templates/loadTemplateFiles.js';
import { TemplateBindingSvc } from './templates/TemplateBindingSvc.js';
import { TemplateSvc } from './templates/TemplateSvc.js';
import { TenantSvc } from './tenants/TenantSvc.js';

export interface ChronographOptions {
  config: Config;
  logger?: Logger;
  /** Registers an app's handlers and task types in code; runs before the app's template files load. */
  setup?: (app: Chronograph) => void | Promise<void>;
  /** Clock for services; tests inject one where time matters. */
  now?: () => Date;
  /** Sees every SQL statement (default: logged at trace level when LOG_LEVEL=trace). */
  onQuery?: (event: QueryEvent) => void;
  /** The URL to import for a module of APP_DIR (npm start: its compiled copy, src/boot/compileApp.ts). */
  appModuleUrl?: (file: string) => string;
  /**
   * The database, already opening: `npm start` (main.ts) opens it from `databaseOptions(config, logger)`
   * while the rest of Chronograph's modules load. By default `create` opens it (with `onQuery`).
   */
  databaseOpening?: Promise<Database>;
}

/** What `getElement` returns for each service name. */
export interface ElementTypes {
  'services.TaskSvc': TaskSvc;
  'services.TemplateSvc': TemplateSvc;
  'services.DateFieldSvc': DateFieldSvc;
  'services.ModelSvc': ModelSvc;
}

/** A module in `<APP_DIR>/handlers/` default-exports one of these. */
export type AppModule = (app: Chronograph) => void | Promise<void>;

/**
 * One Chronograph instance: database, registries, services and (after `listen`) the HTTP server.
 * `getElement` is the seed's element lookup: `app.getElement("services.TaskSvc")`.
 */
export class Chronograph {
  readonly handlers = new HandlerRegistry();
  readonly taskTypes = new TaskTypeRegistry();
  readonly templateSvc: TemplateSvc;
  readonly taskSvc: TaskSvc;
  /** The model-event layer: date-field templates turn record dates into tasks. */
  readonly dateFieldSvc: DateFieldSvc;
  /** Low-code models and their records; every record write runs the date-field layer. */
  readonly modelSvc: ModelSvc;
  /** Tenants and their quotas. */
  readonly tenantSvc: TenantSvc;
  /** API keys (created, listed and revoked by ADMINs). */
  readonly apiKeys: ApiKeySvc;
  /** Turns a request's or connection's credential into its Identity. */
  readonly authenticator: Authenticator;
  /** Ends subscriptions whose credential is revoked or expires. */
  readonly credentials: CredentialWatch;
  /** Stops this instance when a newer Chronograph applies a breaking migration to its database. */
  private readonly schemaWatch: SchemaWatch;
  /**
   * Resolves with the breaking migrations a newer Chronograph applied to the database, once this
   * instance has seen them; it is then stopping (`stop()`), since its statements may no longer fit the
   * tables. `npm start` then exits with EXIT_OUTDATED (src/db/migrate.ts). Never rejects.
   */
  readonly outdated: Promise<string[]>;
  private outdatedBy?: string[];
  /** Platform templates bound to tenants. */
  readonly bindings: TemplateBindingSvc;
  /** Deletes (and archives) old history: HISTORY_RETENTION_DAYS, tenants' own settings, pruneHistory. */
  readonly history: HistoryPruner;
  readonly yoga: ReturnType<typeof createChronographYoga>;
  /** Status changes as they commit, on any instance: the source of Subscription.taskStatusChanged. */
  readonly taskEvents: TaskEventStream;
  private wsServer?: WsServer;
  readonly scheduler: Scheduler;
  /** Prometheus metrics of this instance, served at /metrics. */
  readonly metrics: Metrics;
  private server?: Server;
  private stopping?: Promise<void>;
  /** HTTP requests (SSE streams included) whose response has not ended. */
  private inFlight = 0;
  /** Admission control of GraphQL requests over HTTP (MAX_CONCURRENT_REQUESTS, MAX_QUEUE_WAIT_MS, MAX_UNSENT_BYTES). */
  private readonly admission: AdmissionControl;

  private constructor(
    readonly config: Config,
    readonly logger: Logger,
    readonly db: Database,
    now?: () => Date,
  ) {
    const maxJsonBytes = config.MAX_JSON_BYTES;
    this.dateFieldSvc = new DateFieldSvc({ prisma: db.prisma, maxJsonBytes, now, lockWaitMs: config.HOOK_LOCK_WAIT_MS });
    this.modelSvc = new ModelSvc({
      prisma: db.prisma,
      dateFields: this.dateFieldSvc,
      defaultTimezone: config.DEFAULT_TIMEZONE,
      maxJsonBytes,
    });
    this.tenantSvc = new TenantSvc({ prisma: db.prisma });
    this.apiKeys = new ApiKeySvc({ prisma: db.prisma, tenants: this.tenantSvc, logger: logger.child({ component: 'auth' }), now });
    this.authenticator = new Authenticator(config, this.apiKeys, logger.child({ component: 'auth' }));
    this.credentials = new CredentialWatch(db, db.prisma, logger.child({ component: 'auth' }));
    let outdated!: (migrations: string[]) => void;
    this.outdated = new Promise((resolve) => (outdated = resolve));
    this.schemaWatch = new SchemaWatch(db, db.prisma, logger.child({ component: 'migrations' }), (migrations) => {
      this.outdatedBy = migrations;
      outdated(migrations);
    });
    this.bindings = new TemplateBindingSvc({ prisma: db.prisma, handlers: this.handlers, now });
    this.history = new HistoryPruner({
      prisma: db.prisma,
      logger: logger.child({ component: 'history' }),
      retentionDays: config.HISTORY_RETENTION_DAYS ?? null,
      archiveDir: config.ARCHIVE_DIR ?? null,
      now,
    });
    const deps = {
      prisma: db.prisma,
      handlers: this.handlers,
      taskTypes: this.taskTypes,
      defaultTimezone: config.DEFAULT_TIMEZONE,
      maxJsonBytes,
      dateFields: this.dateFieldSvc,
      bindings: this.bindings,
    };
    this.metrics = new Metrics(this);
    this.admission = new AdmissionControl({
      maxConcurrent: config.MAX_CONCURRENT_REQUESTS,
      maxQueueWaitMs: config.MAX_QUEUE_WAIT_MS,
      maxUnsentBytes: config.MAX_UNSENT_BYTES,
      maxReceivingBytes: config.MAX_RECEIVING_BYTES,
      maxReceivingPerClient: config.MAX_RECEIVING_PER_CLIENT,
      onShed: () => this.metrics.observeOverload('shed'),
      onEvicted: () => this.metrics.observeOverload('evicted'),
      onCalm: () => {
        const { before, after } = collectGarbage();
        logger.info(
          { heapMbBefore: Math.round(before / 2 ** 20), heapMbAfter: Math.round(after / 2 ** 20) },
          'overload over: garbage collected',
        );
      },
    });
    this.scheduler = new Scheduler(db, this.handlers, this.taskTypes, logger.child({ component: 'scheduler' }), {
      workerId: config.WORKER_ID,
      concurrency: config.CONCURRENCY,
      tenantSlotShare: config.TENANT_SLOT_SHARE,
      queueConcurrency: config.QUEUE_CONCURRENCY,
      leaseMs: config.LEASE_MS,
      abortGraceMs: config.ABORT_GRACE_MS,
      maxSleepMs: 30_000,
      maxJsonBytes: config.MAX_JSON_BYTES,
      threadMemoryLimitMb: config.THREAD_MEMORY_LIMIT_MB,
      leaseWatchdogMs: config.LEASE_WATCHDOG_MS,
      databaseUrl: config.DATABASE_URL,
      observer: this.metrics.schedulerObserver,
      taskSvcFor: (task) => this.taskSvc.forTenant(task.tenantId, `task:${task.id}`),
    });
    this.templateSvc = new TemplateSvc(deps);
    this.taskSvc = new TaskSvc({ ...deps, templates: this.templateSvc, db, now, starter: this.scheduler });
    this.taskEvents = new TaskEventStream(db, logger.child({ component: 'events' }), { bufferSize: config.SUBSCRIPTION_BUFFER_SIZE });
    this.yoga = createChronographYoga(this);
  }

  static async create(options: ChronographOptions): Promise<Chronograph> {
    const { config } = options;
    const logger = options.logger ?? createLogger(config.LOG_LEVEL);
    const problem = authConfigProblem(config, config.HOST);
    if (problem) {
      await options.databaseOpening?.then((db) => db.close()).catch(() => {});
      throw new ConfigError([problem]);
    }
    const db = await (options.databaseOpening ?? openDatabase(databaseOptions(config, logger, options.onQuery)));
    const app = new Chronograph(config, logger, db, options.now);
    if (!app.authenticator.required) {
      logger.warn(
        { host: config.HOST },
        config.AUTH_DISABLED
          ? 'AUTH_DISABLED=true: requests without a credential act as an anonymous ADMIN of tenant "default"'
          : 'no credential is configured (ADMIN_API_KEY, AUTH_JWT_*): requests without one act as an anonymous ADMIN of tenant "default"; this is only allowed on a loopback HOST',
      );
    }
    try {
      // The heartbeat thread (PostgreSQL) starts while the rest loads: Prisma's first query, app modules.
      if (config.SCHEDULER_ENABLED) app.scheduler.warmUp();
      // Before anything claims a task: a breaking migration applied since this instance's own migrations ran is seen here.
      await app.schemaWatch.start();
      if (app.outdatedBy) throw new OutdatedError(outdatedMessage(app.outdatedBy));
      await app.credentials.start();
      registerBuiltinHandlers(app.handlers);
      registerHttpHandlers(app.handlers, {
        policy: HostPolicy.parse(config.HTTP_ALLOW_HOSTS),
        maxResponseBytes: config.HTTP_MAX_RESPONSE_BYTES,
      });
      await app.metrics.start();
      await app.loadAppModules(options.appModuleUrl);
      await options.setup?.(app);
      await app.loadTemplateFiles();
      if (config.SCHEDULER_ENABLED) await app.scheduler.start();
      app.history.start(config.HISTORY_PRUNE_INTERVAL_MS);
      // Seen while the rest started (the scheduler may have claimed meanwhile: the catch below hands it back).
      if (app.outdatedBy) throw new OutdatedError(outdatedMessage(app.outdatedBy));
      void app.outdated.then((migrations) => {
        logger.fatal({ migrations }, `${outdatedMessage(migrations)}; this instance stops`);
        void app.stop();
      });
    } catch (error) {
      await app.history.stop();
      await app.scheduler.stop(0);
      await app.credentials.stop();
      await app.schemaWatch.stop();
      await db.close();
      throw error;
    }
    return app;
  }

  /** The seed's element lookup: services by name (typed), else a task type or a handler. */
  getElement<K extends keyof ElementTypes>(name: K): ElementTypes[K];
  getElement(name: string): NormalType | Handler;
  getElement(name: string): unknown {
    if (name === 'services.TaskSvc') return this.taskSvc;
    if (name === 'services.TemplateSvc') return this.templateSvc;
    if (name === 'services.DateFieldSvc') return this.dateFieldSvc;
    if (name === 'services.ModelSvc') return this.modelSvc;
    if (name === 'services.TenantSvc') return this.tenantSvc;
    const element = this.taskTypes.get(name) ?? this.handlers.get(name);
    if (!element) throw new ChronographError('NOT_FOUND', `No element is named ${JSON.stringify(name)}`);
    return element;
  }

  /** GraphQL requests over HTTP holding an admission slot, and waiting for one (chronograph_http_requests). */
  httpRequests(): { active: number; queued: number } {
    return this.admission.requests;
  }

  /** Whether this instance can do its job now (what /ready answers). */
  readiness(): Promise<Readiness> {
    return checkReadiness({
      db: this.db,
      scheduler: this.scheduler,
      schedulerEnabled: this.config.SCHEDULER_ENABLED,
      stopping: this.stopping !== undefined,
    });
  }

  /** Starts serving GraphQL (and GraphiQL) at /graphql, and /health, /ready, /metrics; resolves with the bound port. */
  async listen(port = this.config.PORT, host = this.config.HOST): Promise<{ port: number; url: string }> {
    const problem = authConfigProblem(this.config, host);
    if (problem) throw new ConfigError([problem]);
    if (this.stopping) throw new Error('Chronograph is stopping: it does not listen any more');
    const graphql: RequestListener = (request, response) => {
      if (this.stopping) return refuseWhileStopping(request, response);
      // An answer that its client does not take sits in memory: one not delivered by the end of the
      // request's budget (plus 5 s to read it) is dropped with its socket. Streams (SSE) last by design.
      const undelivered = setTimeout(() => {
        if (!String(response.getHeader('content-type') ?? '').startsWith('text/event-stream')) response.destroy();
      }, this.config.REQUEST_TIMEOUT_MS + 5_000);
      this.inFlight++;
      response.once('close', () => {
        this.inFlight--;
        clearTimeout(undelivered);
      });
      if (request.method === 'GET' || request.method === 'HEAD')
        return this.admission.admit(request, response, () => this.yoga(request, response));
      const limit = this.config.MAX_REQUEST_BYTES;
      // The body is received before its request waits for a slot: a slow body (slowloris, a slow upload)
      // holds a connection and memory (within MAX_RECEIVING_BYTES and MAX_RECEIVING_PER_CLIENT) for at
      // most BODY_TIMEOUT_MS, never a slot, and no client can keep others from being served by sending
      // slowly. A slot is taken once there is work for the server.
      const received = this.admission.receiving(request, response, limit);
      if (!received) return;
      // Within the request's budget: past it Node's own requestTimeout answers 408 first, without a body.
      const timeoutMs = Math.min(this.config.BODY_TIMEOUT_MS, this.config.REQUEST_TIMEOUT_MS);
      void readBody(request, limit, timeoutMs, received.grow).then((bytes) => {
        received.done();
        if (bytes === 'too large') return refuseTooLarge(response, limit);
        if (bytes === 'too slow') return refuseTooSlow(response, timeoutMs);
        if (!bytes || response.headersSent || response.destroyed) return; // the client went away, or it was answered (SERVER_BUSY)
        if (this.stopping) return refuseWhileStopping(request, response);
        this.admission.admit(request, response, async () => {
          await useBody(request, bytes);
          await this.yoga(request, response);
        });
      });
    };
    const listener = createRequestListener(
      {
        logger: this.logger.child({ component: 'http' }),
        metrics: this.metrics,
        readiness: () => this.readiness(),
        workerId: this.config.WORKER_ID,
        metricsToken: this.config.METRICS_TOKEN,
        logRequests: this.config.LOG_REQUESTS,
      },
      graphql,
    );
    const { server, port: bound } = await startHttpServer(listener, { host, port, requestTimeoutMs: this.config.REQUEST_TIMEOUT_MS });
    if (this.stopping) {
      // stop() began while the port was being bound: its shutdown did not see this server.
      await new Promise<void>((resolve) => server.close(() => resolve()));
      throw new Error('Chronograph is stopping: it does not listen any more');
    }
    this.server = server;
    this.wsServer = createWsServer(server, this);
    const url = `http://${host.includes(':') ? `[${host}]` : host}:${bound}/graphql`;
    this.logger.info({ url, worker: this.config.WORKER_ID, nodeEnv: process.env.NODE_ENV }, 'Chronograph is listening');
    return { port: bound, url };
  }

  /**
   * Shuts down within SHUTDOWN_GRACE_MS, whatever the clients do:
   * - at once: the scheduler stops claiming, and new requests and WebSocket upgrades are answered 503
   *   (the port stays open until the end, so clients and load balancers see why);
   * - every subscription, over SSE and WebSocket, ends with SHUTTING_DOWN and `extensions.lastCursor`
   *   (where to resume, on another instance or after the restart);
   * - in-flight requests and running handlers get the rest of the grace period; then sockets still
   *   open (a client that stopped reading) are closed, handlers still running are aborted and their
   *   leases released for another instance; then the database is closed.
   * Calling it again returns the same shutdown.
   */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    const deadline = Date.now() + this.config.SHUTDOWN_GRACE_MS;
    const schedulerStopped = this.scheduler.stop(this.config.SHUTDOWN_GRACE_MS);
    const server = this.server;
    server?.closeIdleConnections();
    await this.taskEvents.close();
    await this.wsServer?.close(deadline);
    this.admission.refuseQueued(refuseWhileStopping);
    await waitUntil(() => this.inFlight === 0, deadline);
    this.admission.close();
    // Running handlers finish (or are aborted at the deadline) before the port closes: until then /ready,
    // /health and /graphql answer 503 SHUTTING_DOWN, as promised above, rather than refuse connections
    // while the process still lives.
    await schedulerStopped;
    if (server) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      await closeJsonParser();
    }
    await this.history.stop();
    await this.credentials.stop();
    await this.schemaWatch.stop();
    await this.db.close();
    this.logger.info('Chronograph stopped');
  }

  private async loadAppModules(moduleUrl = (file: string) => pathToFileURL(file).href) {
    const dir = path.resolve(this.config.APP_DIR, 'handlers');
    let files: string[];
    try {
      files = (await readdir(dir)).filter((f) => /\.(ts|mts|js|mjs)$/.test(f) && !f.endsWith('.d.ts')).sort();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    for (const file of files) {
      const module = (await import(moduleUrl(path.join(dir, file)))) as { default?: AppModule };
      if (typeof module.default !== 'function') throw new Error(`${path.join(dir, file)} must default-export a function (app) => void`);
      await module.default(this);
      this.logger.debug({ file }, 'loaded app module');
    }
  }

  private async loadTemplateFiles() {
    const entries = await loadTemplateFiles(path.resolve(this.config.APP_DIR, 'templates'));
    const byTenant = new Map<string, typeof entries>([['default', []]]);
    for (const entry of entries) {
      const tenantId = entry.tenantId ?? 'default';
      byTenant.set(tenantId, [...(byTenant.get(tenantId) ?? []), entry]);
    }
    for (const [tenantId, inputs] of byTenant) {
      const { upserted, removed } = await this.templateSvc.forTenant(tenantId).syncFromFiles(inputs.map(({ tenantId: _t, ...i }) => i));
      if (upserted || removed.length) this.logger.info({ tenantId, upserted, removed }, 'loaded template files');
    }
  }
}

function outdatedMessage(migrations: string[]): string {
  return `a newer Chronograph applied breaking migration${migrations.length > 1 ? 's' : ''} ${migrations.join(', ')} to the database, which this version does not have: run the newer version`;
}
