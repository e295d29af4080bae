import { ANONYMOUS, type ChannelBroker, type ClientChannel, type Identity, type JsonObject, type Logger } from '../../core/index.js';
import { globMatcher, type GroupMember } from './config.js';

/** What a group knows of a member: `up` once its session answered initialize, until its server goes down. */
export type MemberState = 'starting' | 'up' | 'down' | 'failed';

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * One member as a group instance sees it: a client channel to the member (a session of its own through
 * CHANNELS), the member's state, and the filter of its tools.
 */
export class MemberLink {
  private stateValue: MemberState = 'starting';
  channel: ClientChannel | undefined;
  /** the member's answer to this link's initialize */
  initResult: JsonObject | undefined;
  lastError: string | undefined;
  /** the member's server (re)started while this link's initialize was under way */
  startedDuringInit = false;
  private initializing: Promise<void> | undefined;
  private nextInit = 1;
  /** resolves the initialize in progress with the member's answer */
  private answered: (m: JsonObject) => void = () => undefined;
  private readonly allowed: (name: string) => boolean;

  constructor(
    readonly member: GroupMember,
    /** who calls the member: the group's caller for members with auth, anonymous otherwise */
    readonly identity: Identity,
    private readonly log: Logger,
    /** told after each change of `state` */
    private readonly changed: () => void = () => undefined,
  ) {
    const allow = member.allow ? globMatcher(member.allow) : undefined;
    const deny = member.deny ? globMatcher(member.deny) : undefined;
    this.allowed = (name) => (allow ? allow(name) : true) && !(deny?.(name) ?? false);
  }

  get state(): MemberState {
    return this.stateValue;
  }

  set state(state: MemberState) {
    if (state === this.stateValue) return;
    this.stateValue = state;
    this.changed();
  }

  get name(): string {
    return this.member.server;
  }

  /** True when the member's filter lets this tool (its own, unprefixed name) through. */
  toolAllowed(name: string): boolean {
    return this.allowed(name);
  }

  /** Opens the channel (once) and initializes a session; resolves when it answered or failed. */
  connect(channels: ChannelBroker, onMessage: (m: JsonObject) => void, initParams: JsonObject): Promise<void> {
    this.initializing ??= this.doConnect(channels, onMessage, initParams).finally(() => {
      this.initializing = undefined;
    });
    return this.initializing;
  }

  private async doConnect(channels: ChannelBroker, onMessage: (m: JsonObject) => void, initParams: JsonObject): Promise<void> {
    const id = `init-${this.nextInit++}`;
    const answer = new Promise<JsonObject>((resolve) => (this.answered = resolve));
    if (!this.channel) {
      const channel: ClientChannel = await channels.open(this.name, this.identity, (m) => {
        // the answer to this link's own initialize; everything else is the group's business
        if (typeof m.id === 'string' && m.id.startsWith('init-') && m.method === undefined) this.answered(m);
        else onMessage(m);
      }, () => this.lost(channel));
      this.channel = channel;
    }
    this.channel.send({ jsonrpc: '2.0', id, method: 'initialize', params: initParams });
    const message = await answer;
    if (isObject(message.result)) {
      this.initResult = message.result;
      this.state = 'up';
      this.lastError = undefined;
    } else {
      this.lastError = isObject(message.error) ? String(message.error.message) : 'no answer to initialize';
      if (this.state === 'up') this.state = 'down';
      this.log.warn({ member: this.name, error: this.lastError }, 'group member did not initialize; the group serves the others');
    }
  }

  /** True once a session exists, so a later `up` needs no new initialize. */
  get initialized(): boolean {
    return this.initResult !== undefined;
  }

  get initPending(): boolean {
    return this.initializing !== undefined;
  }

  /** What a caller is told about a member that is not up. */
  describeState(): string {
    const why = this.lastError ? ` (${this.lastError})` : '';
    switch (this.state) {
      case 'starting':
        return `not up yet: it has not answered initialize${why}`;
      case 'down':
        return `down: it stopped and the gateway is restarting it${why}`;
      case 'failed':
        return `failed: the gateway gave up restarting it${why}`;
      default:
        return 'up';
    }
  }

  close(): void {
    this.channel?.close();
    this.channel = undefined;
  }

  /** The proxy closed the channel (its session ended: an operator stopped the member's process): the next call connects afresh. */
  private lost(channel: ClientChannel): void {
    if (this.channel !== channel) return;
    this.channel = undefined;
    this.initResult = undefined;
    this.lastError = 'an operator stopped its process, which ended its session';
    if (this.state === 'up') this.state = 'down';
  }
}

export const anonymousOr = (identity: Identity | undefined, hasAuth: boolean): Identity => (hasAuth && identity ? identity : ANONYMOUS);
