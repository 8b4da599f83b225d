import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIPv6 } from 'node:net';

/** A body being received (AdmissionControl.receiving). */
export interface Receiving {
  /** The body is in (or will not come). */
  done(): void;
  /** `bytes` more of a body of unknown length arrived; false, after answering 503 and closing, when they do not fit. */
  grow(bytes: number): boolean;
}

export interface AdmissionOptions {
  /** Requests being worked on at once (MAX_CONCURRENT_REQUESTS); the rest wait in the queue. */
  maxConcurrent: number;
  /** The longest a request may wait for a slot when the queue is not congested (MAX_QUEUE_WAIT_MS). */
  maxQueueWaitMs: number;
  /**
   * Bytes of answers produced but not yet taken by their clients, across all responses
   * (MAX_UNSENT_BYTES). Above it, the sockets of the answers with the most unsent bytes are closed.
   */
  maxUnsentBytes: number;
  /**
   * Bytes of request bodies being received at once, counted as they arrive (MAX_RECEIVING_BYTES). A body
   * is received before its request waits for a slot, so that a slow upload holds memory, not a slot; a
   * request whose body would pass this budget is answered 503 SERVER_BUSY (see `receiving`).
   */
  maxReceivingBytes: number;
  /**
   * Bodies one client may have arriving at once (MAX_RECEIVING_PER_CLIENT; 0: no cap), a client being an
   * IPv4 address or an IPv6 /64 (clientKey). Only a body that did not come with its headers counts; past the cap the request is answered 503 SERVER_BUSY and its
   * connection closed, so one client trickling bodies cannot take the whole receiving budget.
   */
  maxReceivingPerClient?: number;
  /** Called for each request shed from the queue (503 SERVER_BUSY); for metrics and logs. */
  onShed?: (waitedMs: number) => void;
  /** Called for each stalled answer dropped to keep under maxUnsentBytes. */
  onEvicted?: (unsentBytes: number) => void;
  /**
   * Called once an overload is over: calmMs after the last request was shed, an answer was dropped or
   * more requests waited than there were slots (the instance then gives back the memory the overload
   * took, see collectGarbage).
   */
  onCalm?: () => void;
  /** How long an overload must have been over for onCalm (default 5 s). */
  calmMs?: number;
}

/**
 * The queue is congested when more requests wait than there are slots and it has not been empty for
 * this long (or the event loop has been stuck this long): it is then served newest first and requests
 * that waited longer than CONGESTED_WAIT_MS are shed (CoDel with adaptive LIFO, as described in
 * "Fail at scale", ACM Queue 2015).
 */
const CONGESTION_INTERVAL_MS = 100;
const CONGESTED_WAIT_MS = 50;
/** How often queued requests are checked for shedding, and stalled answers for the byte budget. */
const SWEEP_MS = 25;
/** A request body at least this large (by Content-Length) is admitted in the lane for large requests. */
export const LARGE_BODY_BYTES = 256 * 1024;
/** How often the event loop's lag is sampled. */
const LAG_PROBE_MS = 20;

interface Waiting {
  req: IncomingMessage;
  res: ServerResponse;
  since: number;
  run: () => void;
}

/**
 * Admission control for the GraphQL endpoint, so that no crowd of clients can hold an instance:
 *
 * - **Concurrency.** At most `maxConcurrent` requests are worked on at once (body parsing, validation,
 *   execution, database work); a request holds its slot until its answer's headers are written (for a
 *   subscription over SSE, until its stream starts) or its client goes. Its body is received before it
 *   asks for a slot (`receiving`, within the byte budget, a per-client cap and the body deadline of the
 *   caller): a client that sends its body slowly holds a connection and memory, never a slot.
 * - **Queueing that sheds.** Other requests wait. Normally first come, first served, for at most
 *   `maxQueueWaitMs`; once more requests wait than there are slots and the queue has stayed non-empty
 *   for 100 ms (more arrives than the instance can serve), it serves the newest first and sheds whatever
 *   waited longer than 50 ms, answering `503 SERVER_BUSY` with `Retry-After`. A request is never shed
 *   while a slot is free for it. A burst of thousands of requests then costs the instance the requests it
 *   can serve in that time, not all of them, and a client arriving during the burst is served at once
 *   instead of behind the burst. A request's wait counts from when the event loop could first have seen
 *   it: on a loop stuck in long synchronous work (the embedded database runs on it), requests wait in the
 *   kernel's socket buffers, unseen, and that wait counts too. A request whose client hangs up leaves the
 *   queue.
 * - **Answers nobody reads.** The bytes of answers that their clients have not taken (a client that
 *   stopped reading its socket; an SSE subscriber that stopped reading its stream) are budgeted: above
 *   `maxUnsentBytes`, the sockets of the answers holding the most unsent bytes are closed, so memory stays
 *   bounded however many clients stop reading. Bytes already in the kernel's socket buffers do not count.
 */
export class AdmissionControl {
  /** Requests with small bodies, the usual kind. */
  private readonly small: Lane;
  /**
   * Requests whose body is large (LARGE_BODY_BYTES or more, or of unknown length): reading, parsing and
   * checking them is costly, so they get slots of their own (an eighth of the others'), and a crowd of
   * them cannot fill the slots that small requests need.
   */
  private readonly large: Lane;
  /** Responses whose headers went out and whose body the client has not yet taken in full (SSE streams until they end). */
  private readonly delivering = new Set<ServerResponse>();
  private timer?: NodeJS.Timeout;

  private kicked = false;
  /** When the instance was last overloaded (see onCalm), and the timer that waits for calm. */
  private overloadedAt = 0;
  private calmTimer?: NodeJS.Timeout;
  /** Bytes reserved by bodies being received (or received and not yet answered). */
  private received = 0;
  /** Bodies still arriving (after the turn their headers came in), by client address. */
  private readonly arriving = new Map<string, number>();
  /** When the lag probe last ran: while the event loop is stuck, it cannot run. */
  private lastTick = performance.now();
  private readonly probe: NodeJS.Timeout;

  constructor(private readonly options: AdmissionOptions) {
    this.small = new Lane(options.maxConcurrent);
    this.large = new Lane(Math.max(1, Math.floor(options.maxConcurrent / 8)));
    this.probe = setInterval(() => (this.lastTick = performance.now()), LAG_PROBE_MS).unref();
  }

  /**
   * How long the event loop has been stuck in its current turn: a request read from its socket now has
   * waited about this long in the kernel's buffers, unseen (on a saturated loop that wait, not the
   * queue's, is the long one).
   */
  private loopLag(now: number): number {
    return Math.max(0, now - this.lastTick - LAG_PROBE_MS);
  }

  /** Requests admitted or waiting (the sweep stops when nothing is). */
  private get pending(): number {
    const { active, queued } = this.requests;
    return active + queued;
  }

  /** Requests being worked on (holding a slot), and requests waiting for one, in both lanes. */
  get requests(): { active: number; queued: number } {
    return { active: this.small.active + this.large.active, queued: this.small.queue.length + this.large.queue.length };
  }

  /** Whether a request's body is large (LARGE_BODY_BYTES or more by Content-Length, or of unknown length). */
  static isLarge(req: IncomingMessage): boolean {
    return bodyLength(req) >= LARGE_BODY_BYTES;
  }

  /**
   * Counts a body about to be received against MAX_RECEIVING_BYTES as its bytes arrive (`grow`): a
   * small body until it is in, a large one until its response closes. One whose Content-Length (at most
   * `limit`) cannot fit even now is refused before it is read. While it is still arriving (from the turn
   * of the event loop after its headers: a body that came with them never counts) it also counts against
   * its client (clientKey). Returns what to call as bytes arrive and once the body is in (or will not
   * come); undefined, after answering 503 SERVER_BUSY, when the budget has no room. The body is read
   * before `admit`: it holds no slot while it arrives.
   */
  receiving(req: IncomingMessage, res: ServerResponse, limit: number): Receiving | undefined {
    const max = this.options.maxReceivingBytes;
    const address = clientKey(req.socket.remoteAddress ?? '');
    const declared = Math.min(bodyLength(req), limit);
    // Bytes are counted as they arrive, not as declared: reserving each body's Content-Length (or
    // MAX_REQUEST_BYTES for one of unknown length) let four slow bodies of 16 MiB, or four SSE
    // subscriptions sent chunked, hold the whole budget and refuse every other request. One that could
    // not fit even now is refused before it is read. One body alone always fits.
    const fits = (bytes: number) => this.received + bytes <= max || this.received === 0;
    if (Number.isFinite(declared) && !fits(declared)) {
      this.refuseBody(res);
      return undefined;
    }
    let reserved = 0;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.received -= reserved;
    };
    res.once('close', release);
    const perClient = this.options.maxReceivingPerClient ?? 0;
    let arrived = false;
    let counted: string | undefined;
    const check = setImmediate(() => {
      if (arrived || res.destroyed || perClient <= 0) return;
      const count = (this.arriving.get(address) ?? 0) + 1;
      if (count > perClient) {
        this.refuseBody(res);
        return;
      }
      this.arriving.set(address, count);
      counted = address;
    });
    const done = () => {
      if (arrived) return;
      arrived = true;
      clearImmediate(check);
      // A small body is in: from here its memory is bounded by the queue and the slots, as any request's
      // is; a large one stays counted until its answer (its lane has few slots, and many may wait).
      if (reserved < LARGE_BODY_BYTES) release();
      if (counted === undefined) return;
      const left = (this.arriving.get(counted) ?? 1) - 1;
      if (left > 0) this.arriving.set(counted, left);
      else this.arriving.delete(counted);
    };
    res.once('close', done);
    return {
      done,
      grow: (bytes) => {
        if (released) return true;
        // Past the budget while other bodies hold part of it (one body alone always fits).
        if (this.received + bytes > max && this.received > reserved) {
          this.refuseBody(res);
          return false;
        }
        this.received += bytes;
        reserved += bytes;
        return true;
      },
    };
  }

  /** A body refused while it is received: shed (503 SERVER_BUSY), and the connection closes with the answer, its body unread. */
  private refuseBody(res: ServerResponse): void {
    this.options.onShed?.(0);
    this.overloaded();
    busy(res, true);
  }

  /** Runs `run` (which must answer `res`) when a slot is free, or sheds the request. */
  admit(req: IncomingMessage, res: ServerResponse, run: () => void): void {
    const now = performance.now();
    const waiting: Waiting = { req, res, since: now - this.loopLag(now), run };
    const lane = AdmissionControl.isLarge(req) ? this.large : this.small;
    lane.queue.push(waiting);
    res.once('close', () => lane.remove(waiting));
    this.kick();
    this.schedule();
  }

  /**
   * Starts queued requests on the next turn of the event loop, never inside the callback that queued
   * or released: work on the embedded database runs to completion within one callback (PGlite executes
   * synchronously and its queue resolves in microtasks), so starting at once would serve a crowd of
   * requests one by one as their sockets are read, before any of the others is even seen, and nothing
   * could be shed. Deferred, every request that has arrived is in the queue when the next is chosen.
   */
  private kick() {
    if (this.kicked) return;
    this.kicked = true;
    setImmediate(() => {
      this.kicked = false;
      this.next(this.small);
      this.next(this.large);
    });
  }

  /** Notes an overload; onCalm follows once none has been noted for calmMs. */
  private overloaded() {
    this.overloadedAt = performance.now();
    if (this.calmTimer || !this.options.onCalm) return;
    const calmMs = this.options.calmMs ?? 5_000;
    const check = () => {
      const quiet = performance.now() - this.overloadedAt;
      if (quiet >= calmMs) {
        this.calmTimer = undefined;
        this.options.onCalm?.();
      } else this.calmTimer = setTimeout(check, calmMs - quiet).unref();
    };
    this.calmTimer = setTimeout(check, calmMs).unref();
  }

  /** Refuses every queued request (shutdown); admitted ones finish. */
  refuseQueued(answer: (req: IncomingMessage, res: ServerResponse) => void): void {
    for (const lane of [this.small, this.large]) {
      for (const waiting of lane.queue.splice(0)) answer(waiting.req, waiting.res);
      lane.lastEmptyAt = performance.now();
    }
  }

  close(): void {
    clearInterval(this.probe);
    clearTimeout(this.calmTimer);
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private start(lane: Lane, res: ServerResponse, run: () => void) {
    lane.active++;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      lane.active--;
      this.kick();
    };
    // The slot is freed when the answer starts going out: from then on the work is done and what is
    // left is delivery, which the byte budget watches.
    const writeHead = res.writeHead;
    const delivering = this.delivering;
    res.writeHead = function (this: ServerResponse, ...args: Parameters<ServerResponse['writeHead']>) {
      release();
      delivering.add(res);
      return writeHead.apply(this, args);
    } as ServerResponse['writeHead'];
    res.once('close', () => {
      release();
      this.delivering.delete(res);
    });
    res.once('finish', () => this.delivering.delete(res));
    this.schedule();
    run();
  }

  /**
   * Fills the free slots from the queue, then sheds what is left and waited too long: a request is never
   * refused while a slot is free for it.
   */
  private next(lane: Lane) {
    const now = performance.now();
    const congested = this.congested(lane, now);
    while (lane.active < lane.slots && lane.queue.length > 0) {
      // Congested: newest first (it is the one most likely still wanted, and it keeps a client that
      // arrives during a burst from waiting behind the whole burst).
      const waiting = congested ? lane.queue.pop()! : lane.queue.shift()!;
      // A client that hung up (or half-closed: Node then ends the socket) can no longer get an answer.
      if (!waiting.res.destroyed && waiting.req.socket.writable) this.start(lane, waiting.res, waiting.run);
    }
    this.shed(lane, now, congested);
    if (lane.queue.length === 0) lane.lastEmptyAt = now;
  }

  private congested(lane: Lane, now: number): boolean {
    if (lane.queue.length <= lane.slots) return false;
    this.overloaded();
    return now - lane.lastEmptyAt > CONGESTION_INTERVAL_MS || this.loopLag(now) > CONGESTION_INTERVAL_MS;
  }

  /** Answers SERVER_BUSY to every queued request that waited longer than the current limit. */
  private shed(lane: Lane, now: number, congested: boolean) {
    if (lane.queue.length === 0) return;
    const limit = congested ? CONGESTED_WAIT_MS : this.options.maxQueueWaitMs;
    const kept: Waiting[] = [];
    for (const waiting of lane.queue) {
      if (now - waiting.since <= limit) kept.push(waiting);
      else {
        this.options.onShed?.(now - waiting.since);
        this.overloaded();
        busy(waiting.res);
      }
    }
    if (kept.length === lane.queue.length) return;
    lane.queue.splice(0, lane.queue.length, ...kept);
    if (lane.queue.length === 0) lane.lastEmptyAt = now;
  }

  /** Keeps the unsent bytes of answers under the budget, dropping the answers with the most unsent bytes first. */
  private enforceByteBudget() {
    let unsent = 0;
    const stalled: { res: ServerResponse; bytes: number }[] = [];
    for (const res of this.delivering) {
      const bytes = unsentBytes(res);
      unsent += bytes;
      if (bytes > 0) stalled.push({ res, bytes });
    }
    if (unsent <= this.options.maxUnsentBytes) return;
    stalled.sort((a, b) => b.bytes - a.bytes);
    for (const { res, bytes } of stalled) {
      if (unsent <= this.options.maxUnsentBytes) break;
      unsent -= bytes;
      this.delivering.delete(res);
      this.options.onEvicted?.(bytes);
      this.overloaded();
      res.destroy();
    }
  }

  private schedule() {
    this.timer ??= setInterval(() => {
      this.next(this.small);
      this.next(this.large);
      this.enforceByteBudget();
      if (this.pending === 0 && this.delivering.size === 0) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    }, SWEEP_MS).unref();
  }
}

/** A queue and its slots. */
class Lane {
  active = 0;
  readonly queue: Waiting[] = [];
  /** When the queue was last empty (congestion starts CONGESTION_INTERVAL_MS after it). */
  lastEmptyAt = performance.now();

  constructor(readonly slots: number) {}

  remove(waiting: Waiting) {
    const index = this.queue.indexOf(waiting);
    if (index < 0) return;
    this.queue.splice(index, 1);
    if (this.queue.length === 0) this.lastEmptyAt = performance.now();
  }
}

/** A request body's length by its headers; of unknown length (chunked) counts as infinite. */
function bodyLength(req: IncomingMessage): number {
  return Number(req.headers['content-length'] ?? (req.headers['transfer-encoding'] ? Number.POSITIVE_INFINITY : 0));
}

/** Bytes of an answer still in this process, waiting for its client to read (not those in the kernel's socket buffer). */
function unsentBytes(res: ServerResponse): number {
  return res.writableLength; // the response's own buffer plus its socket's
}

/** Answers 503 SERVER_BUSY with Retry-After; `close` also closes the connection (a body left unread). */
function busy(res: ServerResponse, close = false) {
  if (res.headersSent || res.destroyed) return;
  const body = JSON.stringify({
    errors: [
      {
        message: 'This Chronograph instance is busy: the request waited too long for a free slot and was not run; retry shortly',
        extensions: { code: 'SERVER_BUSY' },
      },
    ],
  });
  res.writeHead(503, {
    'content-type': 'application/json; charset=utf-8',
    'retry-after': '1',
    'content-length': Buffer.byteLength(body),
    ...(close && { connection: 'close' }),
  });
  res.end(body);
}

/**
 * Whom a request is counted against: an IPv4 address as it is (also when it comes IPv4-mapped, as
 * `::ffff:10.0.0.7`), an IPv6 address by its /64, since a host is commonly given a whole /64 and may send
 * from any address in it: counted by exact address, one such client had 2^64 caps.
 */
export function clientKey(address: string): string {
  const bare = address.split('%')[0]!;
  if (!isIPv6(bare)) return address;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare);
  if (mapped) return mapped[1]!;
  const halves = bare.split('::');
  const groups = (part: string | undefined) => (part ? part.split(':').flatMap((g) => (g.includes('.') ? ['0', '0'] : [g])) : []);
  const left = groups(halves[0]);
  const right = groups(halves[1]);
  const all = halves.length > 1 ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right] : left;
  return `${all
    .slice(0, 4)
    .map((g) => Number.parseInt(g, 16).toString(16))
    .join(':')}::/64`;
}
