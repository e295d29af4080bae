import type { EventBus, JsonObject, Logger, Upstream } from '../../core/index.js';
import type { CallSink, SessionLike } from './call-sink.js';

/** One call in flight to a server instance, under the instance's own id. */
export interface PendingCall {
  /** false while it waits in the queue of a starting server */
  sent: boolean;
  readonly clientId: unknown;
  readonly sink: CallSink;
  readonly deadline: number;
  readonly progressToken: unknown;
  /** performance.now() when sent, or -1 when nobody listens to call.completed */
  readonly started: number;
  /** how many messages the server had sent when the call was made (silence-watch.ts) */
  readonly heard: number;
}

/** What a server instance is made with (instance-pool.ts fills it from the proxy's options). */
export interface InstanceOptions {
  readonly name: string;
  readonly upstream: Upstream;
  readonly log: Logger;
  readonly callTimeoutMs: number;
  readonly handshakeTimeoutMs: number;
  readonly maxQueued: number;
  readonly clientInfo: { name: string; version: string };
  /** the client sessions this instance serves, most recently seen first */
  readonly sessions: () => Iterable<SessionLike>;
  /** the client capabilities the gateway declares to the server (those of the one session it serves, or none) */
  readonly clientCapabilities: JsonObject;
  /** where upstream.* and call.completed events go */
  readonly events?: EventBus;
  /** also told every list change and resource update the server sends (2026-07-28 `subscriptions/listen` streams) */
  readonly broadcast?: (message: JsonObject) => void;
  /** called after each handshake, before queued calls go out (a restarted server gets its sessions' state back) */
  readonly onReady?: () => void;
}

export type InstanceState = 'starting' | 'ready' | 'down' | 'failed' | 'stopped';
