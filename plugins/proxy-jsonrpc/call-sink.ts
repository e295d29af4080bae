import type { JsonObject } from '../../core/index.js';

/** Where the messages of one call go: its response, and the notifications and requests it causes. */
export interface CallSink {
  /** the client session the call belongs to, if any */
  readonly session: SessionLike | undefined;
  /** the call came from a 2026-07-28 client: its result keeps that era's fields (else they are removed, modern-era.ts toLegacyResult) */
  readonly modern?: boolean;
  /** the final response, with the client's id restored; called exactly once */
  response(message: JsonObject): void;
  /** a notification caused by this call (progress, logging) */
  notification(message: JsonObject): void;
  /** a server-to-client request caused by this call; false when this call cannot carry it */
  request(message: JsonObject): boolean;
  /**
   * Optional: takes a server-to-client request this call caused in its own way (the 2026-07-28 MRTR
   * bridge), before any session routing; `answer` sends the client's answer (or an error) to the server.
   */
  takeServerRequest?(message: JsonObject, answer: (response: JsonObject) => void): boolean;
  /** Optional, with takeServerRequest: whether this call's client could answer the request at all */
  canAnswer?(message: JsonObject): boolean;
  /**
   * Optional: the call was refused before it reached a server (every process busy, a message too deeply nested to send): answer `message` with
   * this HTTP status and headers where the transport can, else as `response`
   */
  refused?(message: JsonObject, status: number, headers: Record<string, string>): void;
  /**
   * the call ended without a response (cancelled by the client, its session ended): end what carries
   * it, so the client's request gets a definite end; `clientId` is the call's id as the client sent it
   */
  cancelled?(clientId: unknown, reason: string): void;
}

/** What the instance needs of a client session. */
export interface SessionLike {
  readonly id: string;
  /** delivers a message on the session's own stream; false when it has none */
  push(message: JsonObject): boolean;
  /** tracks a server request sent to this session, so its end can answer it */
  readonly serverRequests: Set<string>;
  /** the capabilities the client declared in initialize */
  readonly capabilities: JsonObject;
  /** the level the client asked for with logging/setLevel, if it did */
  logLevel: string | undefined;
  /** resource URIs the client subscribed to */
  readonly subscriptions: Set<string>;
}
