import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';

/**
 * Contracts between the core and plugins, and between plugins. The core defines them and knows
 * nothing of what flows through them; plugins implement and consume them through DI tokens.
 */

/** One JSON message exchanged with a server or a client. */
export type JsonObject = { [key: string]: unknown };

export interface AuthConfig {
  type: string;
  flow?: string;
  [field: string]: unknown;
}

/** One entry of `mcpServers` as written in metadata.json or a config file. */
export interface ServerEntry {
  command?: string;
  args?: string[];
  env?: Record<string, string>;
  cwd?: string;
  url?: string;
  headers?: Record<string, string>;
  auth?: AuthConfig;
  /** "shared" (default): one process for all clients; "session": one per client session */
  isolation?: 'shared' | 'session';
  /**
   * more of the gateway's environment for a child process than the default set (PATH, HOME, …):
   * true for all of it, or a list of names; auth blocks' variables and FMCP_* settings never pass
   */
  inherit_env?: boolean | string[];
  [field: string]: unknown;
}

/** A server as the gateway serves it: its entry, where it came from, and who handles it. */
export interface ServerDefinition {
  readonly name: string;
  readonly entry: ServerEntry;
  /** the file the entry was read from */
  readonly source: string;
  /** the folder the server runs in (the package's folder) */
  readonly dir: string;
  /** transport kind that claimed it (set by the kernel at start) */
  transport: string;
  /** `${type}/${flow}` of the auth strategy that claimed it, if it has an auth block */
  auth?: string;
}

export interface ServerCatalog {
  list(): readonly ServerDefinition[];
  get(name: string): ServerDefinition | undefined;
}

/** Who a request acts for. Requests with the same key share a server process. */
export interface Identity {
  /** a stable, non-secret key (for example a hash of the token); "shared" for anonymous callers */
  readonly key: string;
  /** environment handed to the server process that serves this identity */
  readonly env: Readonly<Record<string, string>>;
  /** a display name for logs and tools, never a secret */
  readonly subject?: string;
  /**
   * who the caller is, stable when `key` changes (a renewed token): sessions are bound to it, and move
   * to the new key's process. Default: `key`.
   */
  readonly principal?: string;
  /**
   * a separate, capped share of the server's processes for callers like this one (for example callers
   * whose token nobody verified): at most `max` processes, and making room for one stops only another
   * process of the same share, never a process outside it. Default: the server's common share.
   */
  readonly quota?: { readonly name: string; readonly max: number };
}

/** The value sessions are bound to: `principal`, or `key` without one. */
export const principalOf = (identity: Identity): string => identity.principal ?? identity.key;

export const ANONYMOUS: Identity = Object.freeze({ key: 'shared', env: Object.freeze({}) });

/** What the kernel hands to request hooks and route handlers. */
export interface RequestContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly method: string;
  /** the path without its query string, as received */
  readonly path: string;
  readonly query: URLSearchParams;
  readonly params: Readonly<Record<string, string>>;
  /** the raw body, read before preHandler when the route reads bodies */
  body: Buffer | undefined;
  /** set by the auth step of guarded routes; ANONYMOUS for servers without auth */
  identity: Identity;
  readonly log: Logger;
  /** free slot for hooks to pass data along */
  readonly state: Record<string, unknown>;
  /** the path pattern of the matched route (for example `/:name/mcp`), set once the router matched */
  readonly route?: string;
}

// ---- transports: how the gateway reaches a server -------------------------------------------

export type UpstreamState = 'starting' | 'up' | 'down' | 'failed' | 'stopped';

export interface UpstreamStatus {
  state: UpstreamState;
  /** how many times it was restarted or reconnected */
  restarts: number;
  lastError?: string;
  pid?: number;
}

export interface UpstreamListener {
  /** one message from the server */
  message(message: JsonObject): void;
  /** the server is (again) reachable; the caller redoes any handshake */
  up(): void;
  /** the server went away; `willRetry` is false when the transport gave up or was stopped */
  down(error: Error, willRetry: boolean): void;
}

/** A message channel to one server instance (a child process, a remote URL). */
export interface Upstream {
  readonly status: UpstreamStatus;
  /**
   * starts it; resolves once the first `up` was emitted, or once a failed start was reported as
   * `down(error, true)` (the transport tries again by itself); rejects if it cannot start and will not retry
   */
  start(listener: UpstreamListener): Promise<void>;
  /** sends one message (an object, or its JSON text without a newline) */
  send(message: JsonObject | string): void;
  /** stops it for good; resolves when every resource is released */
  stop(): Promise<void>;
  /**
   * optional: the caller found it hung (alive but silent): end this run and start a fresh one as after a
   * crash. The listener hears `down` (with `reason`, which it also gives as its last error) at once.
   */
  restart?(reason: string): void;
  /**
   * optional: true when it relays calls to other servers that time out on their own (groups): its caller
   * then waits a little longer than its call timeout, so the relayed server's own timeout answers first
   */
  readonly relaysCalls?: boolean;
}

export interface UpstreamOptions {
  readonly server: ServerDefinition;
  /** extra environment for this instance (the identity's), on top of the entry's own */
  readonly env: Readonly<Record<string, string>>;
  /** a short label for logs (server name and identity key) */
  readonly label: string;
  readonly log: Logger;
  /** the kernel's event bus, for transports that report what their servers say (`upstream.stderr`) */
  readonly events?: EventBus;
  /** the caller this instance serves, for upstreams that call other servers as that caller (groups) */
  readonly identity?: Identity;
  /**
   * what the gateway declares to this server, in its own handshake, that its clients can do; upstreams
   * that speak to other servers for their clients (groups) declare the same, and no more
   */
  readonly clientCapabilities?: Readonly<Record<string, unknown>>;
}

export interface TransportFactory {
  /** transport kind: the key the plugin registers it under */
  readonly kind: string;
  /** true when this transport serves the entry */
  claims(entry: ServerEntry): boolean;
  /** throws a config error naming the field when the entry is unusable */
  validate?(server: ServerDefinition): void;
  create(options: UpstreamOptions): Upstream;
}

// ---- auth: who may call a server ---------------------------------------------------------------

export interface AuthStrategy {
  /** `${type}/${flow}`, or `${type}` for types without flows */
  readonly key: string;
  /** throws a config error naming the field when the auth block is unusable */
  validate?(server: ServerDefinition): void;
  /** called at start for each server it guards */
  setup?(server: ServerDefinition): void | Promise<void>;
  /** what start-up prints for a server it guards: `Added <name> endpoints<suffix>`, then `lines` */
  banner?(server: ServerDefinition, publicUrl: string): { suffix?: string; lines?: string[] };
  /** the caller's identity, or throws FMCP_ERR_UNAUTHORIZED (the strategy may set response headers first) */
  authenticate(ctx: RequestContext, server: ServerDefinition): Identity | Promise<Identity>;
}

export interface StrategyRegistry<T> {
  /**
   * registers `value` under `key`; a duplicate key is FMCP_ERR_STRATEGY_DUPLICATE naming both plugins.
   * `plugin` is filled in by PluginApi's registries; pass it only on the kernel's own registry.
   */
  register(key: string, value: T, plugin?: string): void;
  get(key: string): T | undefined;
  keys(): string[];
  values(): T[];
  /** the plugin that registered `key` */
  owner(key: string): string | undefined;
}

// ---- streams toward clients ----------------------------------------------------------------------

export interface EventStream {
  readonly closed: boolean;
  /** writes one event; returns false when it was dropped because the stream is closed */
  send(data: string, event?: string): boolean;
  comment(text: string): void;
  close(reason?: string): void;
  onClose(listener: () => void): void;
}

export interface EventStreamOptions {
  headers?: Record<string, string>;
  status?: number;
}

export interface EventStreamFactory {
  open(res: ServerResponse, options?: EventStreamOptions): EventStream;
}

// ---- client channels: talk to a server as a client would ---------------------------------------

export interface ClientChannel {
  readonly id: string;
  /** sends one message from the client to the server, as `identity` when given (its current credentials) */
  send(message: JsonObject, identity?: Identity): void;
  close(): void;
}

export interface ChannelBroker {
  /**
   * a long-lived channel: every message for it arrives through `onMessage`. `address`: the client's network
   * address, for a client's own channel: it then holds a place under the session limits from its opening
   * (rejects with the limit's coded error, with its `headers`, when there is none) and may be closed to make room
   */
  open(server: string, identity: Identity, onMessage: (message: JsonObject) => void, onClose?: () => void, address?: string): Promise<ClientChannel>;
  /** one request: resolves with its response; notifications that belong to it go to `onNotification` */
  call(server: string, identity: Identity, request: JsonObject, onNotification?: (message: JsonObject) => void, signal?: AbortSignal): Promise<JsonObject>;
}

// ---- short-lived state (pending logins) ----------------------------------------------------------

export interface PendingStateStore {
  /** true when values leave this process (a store shared by replicas, such as Redis): a user seals what must not be kept in clear */
  readonly shared?: boolean;
  /** stores `value` under `key` for `ttlMs` */
  put(key: string, value: JsonObject, ttlMs: number): Promise<void>;
  /** returns and deletes in one step: a key is taken at most once */
  take(key: string): Promise<JsonObject | undefined>;
  size(): Promise<number>;
}

// ---- replicas: where each one is reached by the others -------------------------------------------

/**
 * The replicas of one deployment (each with a replica id, sharing a store) by id, with the internal URL the
 * others reach it at. A request that belongs to state one replica holds is forwarded there; the URL comes
 * only from here, never from the request.
 */
export interface ReplicaDirectory {
  /** this replica's id */
  readonly self: string;
  /** the base URL (`http://host:port`) replica `id` published, or undefined when it is not registered (stopped, gone) */
  lookup(id: string): Promise<string | undefined>;
}

/** How a request forwarded to the replica that holds its state ended. */
export type ForwardOutcome = 'forwarded' | 'holder_gone' | 'failed';

// ---- events: what plugins tell each other (the core only carries them) --------------------------

/** How a login callback ended. */
export type LoginOutcome = 'success' | 'bad_state' | 'provider_error' | 'bad_request' | 'store_unavailable';

/**
 * Events the built-in plugins emit, by name. `server` is always the name of a configured server.
 * Events never carry tokens, identities or request data.
 */
export interface GatewayEvents {
  /** a server instance came up: its process started (or restarted), or its remote connection opened */
  'upstream.started': { server: string };
  /** a server instance finished its handshake and takes calls (after each start or restart) */
  'upstream.ready': { server: string };
  /** a line a server wrote to its error output, when the log does not already carry it (below debug level) */
  'upstream.stderr': { server: string; label: string; line: string };
  /** a server instance went down without the gateway asking; `wasUp` is false when it never came up */
  'upstream.crashed': { server: string; wasUp: boolean; willRetry: boolean };
  /** the gateway stopped a server instance (idle, evicted, gateway stopping) */
  'upstream.stopped': { server: string; wasUp: boolean };
  /** a server's state changed while its upstream stayed up (a group whose required member went or came back) */
  'server.changed': { server: string };
  /** a call the gateway sent to a server was settled: `ok` is false for JSON-RPC errors, timeouts and failures */
  'call.completed': { server: string; ms: number; ok: boolean };
  /** a login callback ended */
  'login.outcome': { server: string; outcome: LoginOutcome };
  /** a request's credential was refused (answered 401 as invalid): nothing was served or started for it */
  'auth.rejected': { server: string };
  /** an event stream toward a client opened or closed */
  'stream.opened': Record<string, never>;
  'stream.closed': Record<string, never>;
  /** a request that continues state another replica holds was sent there (or could not be: the holder is gone, or failed) */
  'replica.forwarded': { server: string; outcome: ForwardOutcome };
  /** one line the kernel's own logger wrote (JSON, already redacted), emitted only while someone listens */
  'log.line': { line: string };
}

/** The data of an event: typed for the names in GatewayEvents, `unknown` for any other name. */
export type EventData<K extends string> = K extends keyof GatewayEvents ? GatewayEvents[K] : unknown;

/**
 * The kernel's event bus (`api.events`). Listeners run synchronously inside `emit` and must be quick;
 * an error thrown by one is logged and does not reach the emitter.
 */
export interface EventBus {
  /** adds a listener; returns a function that removes it */
  on<K extends string>(name: K, listener: (data: EventData<K>) => void): () => void;
  emit<K extends string>(name: K, data: EventData<K>): void;
  /** true when someone listens to `name`: lets an emitter skip building an event nobody reads */
  listening(name: string): boolean;
}

// ---- server control: what an admin surface may see and do -----------------------------------------

/** One running instance of a server (a process or a remote connection). Never carries a secret. */
export interface InstanceActivity {
  /** a short, non-secret id: "shared", or a prefix of the identity's key or session */
  readonly id: string;
  readonly state: UpstreamState | 'ready';
  readonly pid?: number;
  readonly inFlight: number;
  readonly restarts: number;
  /** ms since the epoch when it last came up */
  readonly upSince?: number;
  readonly lastError?: string;
}

/** A server as it runs now. */
export interface ServerActivity {
  /** `starting`, `up`, `down` (restarting), `failed`, `stopped`, or `on demand` (started per caller) */
  readonly state: string;
  readonly instances: readonly InstanceActivity[];
  readonly sessions: number;
  /**
   * `sessions` by how their client reaches the gateway: `streamable-http`, `sse` (legacy HTTP+SSE) and
   * `channel` (a plugin's own link, such as a group's to its member)
   */
  readonly sessionTransports?: Readonly<Record<string, number>>;
  readonly inFlight: number;
  readonly restarts: number;
  readonly upSince?: number;
  readonly lastError?: string;
}

export interface ServerControl {
  /** the server's activity now; throws FMCP_ERR_UNKNOWN_SERVER for an unknown name */
  activity(server: string): ServerActivity;
  /** stops every instance of the server and starts the shared one again; resolves once it settled */
  restart(server: string): Promise<{ stopped: number; state: string }>;
  /** stops one instance by its id; false when there is none */
  stopInstance(server: string, id: string): Promise<boolean>;
}
