import type { ChannelBroker, EventBus, JsonObject, Logger, ServerCatalog, Upstream, UpstreamListener, UpstreamOptions, UpstreamStatus } from '../../core/index.js';
import type { GroupConfig } from './config.js';
import { anonymousOr, MemberLink } from './member-link.js';
import { decodeCursor, encodeCursor, isListMethod, LISTS, memberItems, templatePattern, type ListMethod, type Snapshot } from './merged-lists.js';

const INVALID_PARAMS = -32602;
const METHOD_NOT_FOUND = -32601;
const SERVER_UNAVAILABLE = -32000;
const LATEST_VERSION = '2025-11-25';
/** a member's list is read in pages; more than this many pages is a member that loops */
const MAX_MEMBER_PAGES = 100;
/** how long a member that came back has to answer a ping before the group waits for its next start */
const PROBE_TIMEOUT_MS = 30_000;

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Which capability a member must announce for the group to ask it for a list. */
const CAPABILITY: Record<ListMethod, string> = {
  'tools/list': 'tools',
  'prompts/list': 'prompts',
  'resources/list': 'resources',
  'resources/templates/list': 'resources',
};

class GroupError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

type Outgoing =
  | { readonly link: MemberLink; readonly kind: 'forward'; readonly groupId: unknown }
  | { readonly link: MemberLink; readonly kind: 'internal'; readonly resolve: (m: JsonObject) => void };

export interface GroupUpstreamContext {
  readonly channels: () => ChannelBroker;
  readonly catalog: ServerCatalog;
  readonly version: string;
}

/**
 * A group as a server: it answers the handshake and the merged lists itself and fans every other
 * message out to its members through CHANNELS, one client session per member. The proxy in front of it
 * treats it as any server (ids, progress tokens, sessions, timeouts), so this class only maps names,
 * URIs and ids between the group and its members.
 */
export class GroupUpstream implements Upstream {
  private readonly statusValue: UpstreamStatus = { state: 'starting', restarts: 0 };
  readonly links: MemberLink[];
  readonly groupName: string;
  /** a member's own call timeout answers a call first: it names the member and counts toward its hang restart */
  readonly relaysCalls = true;
  private listener: UpstreamListener | undefined;
  private readonly config: GroupConfig;
  private readonly log: Logger;
  private nextId = 1;
  private readonly outgoing = new Map<string, Outgoing>();
  /** server-to-client requests of members, by the id the group gave them */
  private readonly serverRequests = new Map<string, { link: MemberLink; id: unknown }>();
  private readonly snapshots = new Map<ListMethod, Snapshot>();
  private snapshotSeq = 0;
  private uriOwners: Map<string, MemberLink> | undefined;
  private templates: { link: MemberLink; pattern: RegExp }[] | undefined;
  private stopped = false;
  private readonly probing = new Set<MemberLink>();
  private readonly events: EventBus | undefined;
  /** the state `server.changed` last reported */
  private reported: UpstreamStatus['state'] = 'starting';

  /** what the proxy declared to the group on behalf of its clients: the group declares the same to its members */
  private readonly declared: JsonObject;

  constructor(options: UpstreamOptions, private readonly context: GroupUpstreamContext, private readonly onStopped: () => void) {
    this.groupName = options.server.name;
    this.config = (options.server.entry as { group: GroupConfig }).group;
    this.log = options.log;
    this.declared = { ...(options.clientCapabilities ?? {}) };
    this.events = options.events;
    this.links = this.config.members.map((m) => {
      const hasAuth = context.catalog.get(m.server)?.entry.auth !== undefined;
      return new MemberLink(m, anonymousOr(options.identity, hasAuth), options.log, m.required ? () => this.availabilityChanged() : undefined);
    });
  }

  /**
   * Up while every required member is up; `failed` (with why, as its calls are told) while one is not: a
   * fail-closed group refuses every call then, and /health and the console say so.
   */
  get status(): UpstreamStatus {
    const why = this.statusValue.state === 'up' ? this.unavailableReason() : undefined;
    return why === undefined ? this.statusValue : { ...this.statusValue, state: 'failed', lastError: why };
  }

  /** Why the group refuses calls: its first required member that is not up; undefined when none. */
  private unavailableReason(): string | undefined {
    const missing = this.links.find((l) => l.member.required && l.state !== 'up');
    return missing && `Group "${this.groupName}" is unavailable: its required member "${missing.name}" is ${missing.describeState()}`;
  }

  /** A required member's state changed: when that changes the group's own, say so (log, `server.changed`). */
  private availabilityChanged(): void {
    if (this.stopped) return;
    const now = this.status;
    if (now.state === this.reported) return;
    this.reported = now.state;
    if (now.state === 'failed') this.log.warn({ error: now.lastError }, 'the group refuses calls until its required member is up');
    else this.log.info('the group serves again: its required members are up');
    this.events?.emit('server.changed', { server: this.groupName });
  }

  async start(listener: UpstreamListener): Promise<void> {
    this.listener = listener;
    // members that do not answer in time are left out now and join with a list change when they come up
    await Promise.all(this.links.map((link) => within(this.connect(link), this.config.memberTimeoutMs)));
    if (this.stopped) return;
    this.statusValue.state = 'up';
    this.reported = 'up';
    listener.up();
    // a required member that is not up yet: said now (log, server.changed)
    this.availabilityChanged();
  }

  send(message: JsonObject | string): void {
    if (this.stopped) throw new Error(`Group "${this.groupName}" was stopped`);
    const m = typeof message === 'string' ? (JSON.parse(message) as JsonObject) : message;
    if (typeof m.method !== 'string') this.fromClientResponse(m);
    else if (m.id === undefined) this.fromClientNotification(m);
    else
      this.fromClientRequest(m).then(
        (result) => result && this.emit({ jsonrpc: '2.0', id: m.id, result }),
        (err: Error) => this.emit({ jsonrpc: '2.0', id: m.id, error: { code: err instanceof GroupError ? err.code : SERVER_UNAVAILABLE, message: err.message } }),
      );
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.statusValue.state = 'stopped';
    for (const out of this.outgoing.values()) if (out.kind === 'internal') out.resolve({ error: { message: 'the group stopped' } });
    this.outgoing.clear();
    for (const link of this.links) link.close();
    this.onStopped();
  }

  /** An upstream event of a member server (from the kernel's event bus). */
  memberEvent(server: string, what: 'ready' | 'crashed', willRetry = true): void {
    if (this.stopped) return;
    for (const link of this.links) {
      if (link.name !== server) continue;
      this.log.debug({ member: server, event: what, willRetry, state: link.state, initialized: link.initialized, initPending: link.initPending }, 'group member event');
      if (what === 'crashed') {
        const was = link.state;
        link.lastError = willRetry ? 'it crashed' : 'it kept crashing';
        link.state = willRetry ? 'down' : 'failed';
        if (was === 'up') this.membersChanged();
      } else if (link.initialized) {
        // it is back and answered the proxy's handshake: once it answers a ping its names come back
        if (link.state !== 'up') void this.probe(link);
      } else if (!link.initPending) {
        void this.connect(link);
      } else {
        // a handshake is under way; should it fail (it may time out just as the member comes up), redo it
        link.startedDuringInit = true;
      }
    }
  }

  // ---- members -------------------------------------------------------------------------------------

  private connect(link: MemberLink): Promise<void> {
    const was = link.state;
    const params = { protocolVersion: LATEST_VERSION, capabilities: this.declared, clientInfo: { name: `fluidmcp-group-${this.groupName}`, version: this.context.version } };
    return link.connect(this.context.channels(), (m) => this.fromMember(link, m), params).then(
      () => {
        this.log.debug({ member: link.name, was, now: link.state }, 'group member handshake done');
        const again = link.startedDuringInit;
        link.startedDuringInit = false;
        if (was !== 'up' && link.state === 'up' && this.statusValue.state === 'up') this.membersChanged();
        else if (link.state !== 'up' && again && !this.stopped) void this.connect(link);
      },
      (err: Error) => {
        link.lastError = err.message;
        this.log.warn({ member: link.name, error: err.message }, 'could not open a channel to a group member');
      },
    );
  }

  /** Pings a member that came back; when it answers, it is up again and the group's lists change. */
  private async probe(link: MemberLink): Promise<void> {
    if (this.probing.has(link)) return;
    this.probing.add(link);
    const answer = await this.ask(link, 'ping', {}, PROBE_TIMEOUT_MS).finally(() => this.probing.delete(link));
    if (this.stopped || link.state === 'up' || answer.result === undefined) return;
    link.state = 'up';
    link.lastError = undefined;
    this.membersChanged();
  }

  /** A member joined or left: merged lists are stale, and the group's clients are told. */
  private membersChanged(): void {
    this.invalidate();
    if (this.statusValue.state !== 'up') return;
    for (const list of ['tools', 'prompts', 'resources']) this.emit({ jsonrpc: '2.0', method: `notifications/${list}/list_changed` });
  }

  private invalidate(): void {
    this.snapshots.clear();
    this.uriOwners = undefined;
    this.templates = undefined;
  }

  private fromMember(link: MemberLink, m: JsonObject): void {
    if (this.stopped) return;
    if (typeof m.method !== 'string') {
      const out = typeof m.id === 'string' ? this.outgoing.get(m.id) : undefined;
      if (!out || out.link !== link) return;
      this.outgoing.delete(m.id as string);
      if (out.kind === 'internal') out.resolve(m);
      else this.emit({ ...m, id: out.groupId });
      return;
    }
    if (m.id !== undefined) {
      const id = `s${this.nextId++}`;
      this.serverRequests.set(id, { link, id: m.id });
      this.emit({ ...m, id });
      return;
    }
    const method = m.method;
    if (method === 'notifications/tools/list_changed' || method === 'notifications/prompts/list_changed' || method === 'notifications/resources/list_changed') {
      this.invalidate();
    } else if (method === 'notifications/cancelled' && isObject(m.params)) {
      // the member gave up on one of its own requests to the client
      for (const [id, req] of this.serverRequests) {
        if (req.link === link && req.id === m.params.requestId) {
          this.serverRequests.delete(id);
          this.emit({ ...m, params: { ...m.params, requestId: id } });
        }
      }
      return;
    }
    this.emit(m);
  }

  private ask(link: MemberLink, method: string, params: JsonObject, timeoutMs = this.config.memberTimeoutMs): Promise<JsonObject> {
    const channel = link.channel;
    if (!channel) return Promise.resolve({ error: { message: 'no session' } });
    const id = `q${this.nextId++}`;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.outgoing.delete(id);
        channel.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: id, reason: 'the group stopped waiting' } });
        resolve({ error: { message: `no answer within ${timeoutMs} ms` } });
      }, timeoutMs);
      this.outgoing.set(id, { link, kind: 'internal', resolve: (m) => (clearTimeout(timer), resolve(m)) });
      channel.send({ jsonrpc: '2.0', id, method, params });
    });
  }

  private forward(link: MemberLink, request: JsonObject, params: JsonObject): void {
    const id = `f${this.nextId++}`;
    this.outgoing.set(id, { link, kind: 'forward', groupId: request.id });
    link.channel!.send({ jsonrpc: '2.0', id, method: request.method, params });
  }

  // ---- from the group's clients (through the proxy's instance) --------------------------------------

  /** The answer of a request the group answers itself; undefined when a member answers it. */
  private async fromClientRequest(m: JsonObject): Promise<JsonObject | undefined> {
    const method = m.method as string;
    const params = isObject(m.params) ? m.params : {};
    if (method === 'initialize') return this.initializeResult(params);
    if (method === 'ping') return {};
    // a member whose handshake failed (not up in time) gets another one, and one the gateway gave up on is
    // tried again (the proxy starts a failed server afresh after a while): each joins with a list change
    for (const link of this.links) {
      if (!link.initialized && !link.initPending && link.state !== 'up') void this.connect(link);
      else if (link.initialized && link.state === 'failed') void this.probe(link);
    }
    const unavailable = this.unavailableReason();
    if (unavailable !== undefined) throw new GroupError(SERVER_UNAVAILABLE, unavailable);
    if (isListMethod(method)) return this.listPage(method, params.cursor);
    if (method === 'logging/setLevel') {
      await Promise.all(this.links.filter((l) => l.state === 'up').map((l) => this.ask(l, method, params)));
      return {};
    }
    let routed: { link: MemberLink; params: JsonObject } | undefined;
    if (method === 'tools/call') routed = this.byName(params, 'tool');
    else if (method === 'prompts/get') routed = this.byName(params, 'prompt');
    else if (method === 'resources/read' || method === 'resources/subscribe' || method === 'resources/unsubscribe') routed = { link: await this.byUri(params.uri), params };
    else if (method === 'completion/complete') routed = await this.byRef(params);
    else throw new GroupError(METHOD_NOT_FOUND, `Method not found: ${method} (group "${this.groupName}")`);
    const { link } = routed;
    if (link.state !== 'up' || !link.channel) {
      throw new GroupError(SERVER_UNAVAILABLE, `"${method}" goes to member "${link.name}" of group "${this.groupName}", which is ${link.describeState()}; the other members keep serving`);
    }
    this.forward(link, m, routed.params);
    return undefined;
  }

  private fromClientNotification(m: JsonObject): void {
    if (m.method === 'notifications/cancelled' && isObject(m.params)) {
      for (const [id, out] of this.outgoing) {
        if (out.kind === 'forward' && out.groupId === m.params.requestId) {
          this.outgoing.delete(id);
          out.link.channel?.send({ ...m, params: { ...m.params, requestId: id } });
        }
      }
    } else if (m.method === 'notifications/roots/list_changed') {
      for (const link of this.links) link.channel?.send(m);
    }
  }

  private fromClientResponse(m: JsonObject): void {
    const req = typeof m.id === 'string' ? this.serverRequests.get(m.id) : undefined;
    if (!req) return;
    this.serverRequests.delete(m.id as string);
    req.link.channel?.send({ ...m, id: req.id });
  }

  private emit(message: JsonObject): void {
    if (this.stopped) return;
    try {
      this.listener?.message(message);
    } catch (err) {
      this.log.warn({ error: (err as Error).message }, 'could not deliver a message from a group member');
    }
  }

  // ---- routing ---------------------------------------------------------------------------------------

  private byName(params: JsonObject, what: 'tool' | 'prompt'): { link: MemberLink; params: JsonObject } {
    const name = params.name;
    const sep = this.config.separator;
    const link = typeof name === 'string' ? this.links.find((l) => name.startsWith(l.member.prefix + sep)) : undefined;
    if (!link) {
      const prefixes = this.links.map((l) => `"${l.member.prefix}${sep}"`).join(', ');
      throw new GroupError(INVALID_PARAMS, `Unknown ${what} "${String(name)}" in group "${this.groupName}": its names start with a member's prefix (${prefixes})`);
    }
    const own = (name as string).slice(link.member.prefix.length + sep.length);
    if (what === 'tool' && !link.toolAllowed(own)) {
      throw new GroupError(INVALID_PARAMS, `Unknown tool "${String(name)}" in group "${this.groupName}": the tools filter of member "${link.name}" leaves "${own}" out`);
    }
    return { link, params: { ...params, name: own } };
  }

  private async byUri(uri: unknown): Promise<MemberLink> {
    if (typeof uri !== 'string') throw new GroupError(INVALID_PARAMS, 'Invalid params: "uri" must be a string');
    if (!this.uriOwners) await this.merge('resources/list');
    const owner = this.uriOwners?.get(uri);
    if (owner) return owner;
    if (!this.templates) await this.merge('resources/templates/list');
    const templated = this.templates?.find((t) => t.pattern.test(uri));
    if (templated) return templated.link;
    throw new GroupError(INVALID_PARAMS, `Unknown resource "${uri}" in group "${this.groupName}": no member that is up lists it or a template that matches it`);
  }

  private async byRef(params: JsonObject): Promise<{ link: MemberLink; params: JsonObject }> {
    const ref = isObject(params.ref) ? params.ref : {};
    if (ref.type === 'ref/prompt') {
      const routed = this.byName(ref, 'prompt');
      return { link: routed.link, params: { ...params, ref: routed.params } };
    }
    return { link: await this.byUri(ref.uri), params };
  }

  // ---- merged lists ------------------------------------------------------------------------------------

  private async listPage(method: ListMethod, cursor: unknown): Promise<JsonObject> {
    const at = cursor === undefined ? { s: -1, o: 0 } : decodeCursor(cursor);
    if (!at) throw new GroupError(INVALID_PARAMS, `Invalid cursor for ${method} of group "${this.groupName}": pass back the nextCursor of the previous page`);
    let snapshot = this.snapshots.get(method);
    if (cursor === undefined || snapshot?.id !== at.s) snapshot = await this.merge(method);
    const end = at.o + this.config.pageSize;
    const result: JsonObject = { [LISTS[method].field]: snapshot.items.slice(at.o, end) };
    if (end < snapshot.items.length) result.nextCursor = encodeCursor(snapshot.id, end);
    return result;
  }

  /** Reads every page of every member that is up, in member order, and keeps the merged list. */
  private async merge(method: ListMethod): Promise<Snapshot> {
    const capability = CAPABILITY[method];
    const perMember = await Promise.all(
      this.links.map(async (link) => {
        if (link.state !== 'up' || !isObject(link.initResult?.capabilities) || link.initResult.capabilities[capability] === undefined) return [];
        return memberItems(method, link, await this.readAll(link, method), this.config.separator).map((item) => ({ link, item }));
      }),
    );
    const all = perMember.flat();
    if (method === 'resources/list') {
      const owners = new Map<string, MemberLink>();
      for (const { link, item } of all) {
        const first = owners.get(item.uri as string);
        if (!first) owners.set(item.uri as string, link);
        else if (first !== link) this.log.warn({ uri: item.uri, servedBy: first.name, alsoListedBy: link.name }, 'two group members list the same resource URI; the first one serves it');
      }
      this.uriOwners = owners;
    } else if (method === 'resources/templates/list') {
      this.templates = all.map(({ link, item }) => ({ link, pattern: templatePattern(item.uriTemplate as string) }));
    }
    const seen = new Set<string>();
    const key = LISTS[method].key;
    const items = all.filter(({ item }) => !seen.has(item[key] as string) && seen.add(item[key] as string)).map(({ item }) => item);
    const snapshot = { id: ++this.snapshotSeq, items };
    this.snapshots.set(method, snapshot);
    return snapshot;
  }

  private async readAll(link: MemberLink, method: ListMethod): Promise<JsonObject[]> {
    const items: JsonObject[] = [];
    let cursor: unknown;
    for (let page = 0; page < MAX_MEMBER_PAGES; page++) {
      const answer = await this.ask(link, method, cursor === undefined ? {} : { cursor });
      if (!isObject(answer.result)) {
        const error = isObject(answer.error) ? String(answer.error.message) : 'no result';
        this.log.warn({ member: link.name, method, error }, 'a group member did not answer a list; the group lists the others');
        return items;
      }
      const list = answer.result[LISTS[method].field];
      if (Array.isArray(list)) items.push(...list.filter(isObject));
      cursor = answer.result.nextCursor;
      if (typeof cursor !== 'string') break;
    }
    return items;
  }

  private initializeResult(params: JsonObject): JsonObject {
    const sep = this.config.separator;
    const parts: string[] = [];
    if (this.config.instructions) parts.push(this.config.instructions);
    parts.push(`This server is the group "${this.groupName}" of ${this.links.length} servers; tool and prompt names start with the member's prefix and "${sep}".`);
    const members: JsonObject = {};
    for (const link of this.links) {
      const init = link.initResult;
      if (init) members[link.name] = init.serverInfo ?? {};
      if (typeof init?.instructions === 'string' && init.instructions.trim() !== '') parts.push(`## ${link.member.prefix}${sep} (server "${link.name}")\n${init.instructions.trim()}`);
    }
    return {
      protocolVersion: typeof params.protocolVersion === 'string' ? params.protocolVersion : LATEST_VERSION,
      capabilities: { tools: { listChanged: true }, prompts: { listChanged: true }, resources: { subscribe: true, listChanged: true }, logging: {}, completions: {} },
      serverInfo: { name: this.groupName, title: `FluidMCP group "${this.groupName}": ${this.links.map((l) => l.name).join(', ')}`, version: this.context.version },
      instructions: parts.join('\n\n'),
      _meta: { 'fluidmcp/members': members },
    };
  }
}

function within(promise: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([promise, new Promise<void>((r) => (timer = setTimeout(r, ms)))]).finally(() => clearTimeout(timer));
}
