import { createHash } from 'node:crypto';
import { ANONYMOUS, type InstanceActivity, type ServerActivity, type ServerControl, type ServerDefinition } from '../../core/index.js';
import { withTimeout, type Dispatcher } from './dispatcher.js';
import { InstancePool } from './instance-pool.js';
import type { ServerInstance } from './server-instance.js';
import type { SessionTransport } from './sessions.js';

/** The SERVER_CONTROL token: what an admin surface sees of each server, and restarts. */
export class ServerControls implements ServerControl {
  constructor(
    private readonly dispatcher: Dispatcher,
    private readonly startTimeoutMs: number,
  ) {}

  activity(name: string): ServerActivity {
    const server = this.dispatcher.server(name);
    const instances = this.dispatcher.pool.entriesOf(name).map(([key, instance]) => describe(server, key, instance));
    const shared = instances.find((i) => i.id === 'shared');
    const onDemand = server.auth !== undefined || server.entry.isolation === 'session';
    const state = shared ? shared.state : onDemand ? 'on demand' : 'stopped';
    let sessions = 0;
    const sessionTransports: Record<SessionTransport, number> = { 'streamable-http': 0, sse: 0, channel: 0 };
    for (const s of this.dispatcher.sessions.all()) {
      if (s.server !== server) continue;
      sessions++;
      sessionTransports[s.transport]++;
    }
    const lastError = shared?.lastError ?? instances.find((i) => i.lastError !== undefined)?.lastError;
    return {
      state,
      instances,
      sessions,
      sessionTransports,
      inFlight: instances.reduce((n, i) => n + i.inFlight, 0),
      restarts: instances.reduce((n, i) => n + i.restarts, 0),
      ...(shared?.upSince !== undefined ? { upSince: shared.upSince } : {}),
      ...(lastError !== undefined ? { lastError } : {}),
    };
  }

  /**
   * Stops every process of the server and starts the shared one again. Sessions of the shared process stay
   * (the gateway redoes the handshake, as after a crash); those of the other processes end, as on stop.
   */
  async restart(name: string): Promise<{ stopped: number; state: string }> {
    const server = this.dispatcher.server(name);
    const entries = this.dispatcher.pool.entriesOf(name);
    // each process stops at once (its calls in flight get an error); then the sessions bound to it end
    const why = `An operator restarted server "${name}" while this call was in flight: send it again`;
    const stopping = entries.map(([key]) => this.dispatcher.pool.release(key, why));
    for (const [key] of entries) if (instanceId(server, key) !== 'shared') this.dispatcher.endSessionsOf(key, stoppedByOperator(name));
    await Promise.all(stopping);
    if (server.auth === undefined && server.entry.isolation !== 'session') {
      const instance = this.dispatcher.pool.get(server, ANONYMOUS, InstancePool.keyOf(server, ANONYMOUS));
      await withTimeout(instance.whenSettled(), this.startTimeoutMs, `Server "${name}" restart`).catch(() => undefined);
    }
    return { stopped: entries.length, state: this.activity(name).state };
  }

  async stopInstance(name: string, id: string): Promise<boolean> {
    const server = this.dispatcher.server(name);
    const found = this.dispatcher.pool.entriesOf(name).find(([key]) => instanceId(server, key) === id);
    if (!found) return false;
    // the process stops at once (its calls in flight get an error); its sessions end before any call of theirs could start a new one
    const stopping = this.dispatcher.pool.release(found[0], callStoppedByOperator(name));
    this.dispatcher.endSessionsOf(found[0], stoppedByOperator(name));
    await stopping;
    return true;
  }
}

const callStoppedByOperator = (name: string): string =>
  `An operator stopped the process of server "${name}" that served this call: send it again (the sessions of that process ended: initialize first)`;
const stoppedByOperator = (name: string): string => `it ended because an operator stopped the process of server "${name}" that served it`;

/** "shared", or the first 12 hex digits of a hash of the rest of the key (a token hash or a session id). */
function instanceId(server: ServerDefinition, key: string): string {
  const rest = key.slice(server.name.length + 1);
  return rest === 'shared' ? 'shared' : createHash('sha256').update(rest).digest('hex').slice(0, 12);
}

function describe(server: ServerDefinition, key: string, instance: ServerInstance): InstanceActivity {
  const status = instance.status();
  // ready, unless its upstream says otherwise (a fail-closed group whose required member is not up)
  const state = instance.state === 'ready' ? status.state : instance.state;
  return {
    id: instanceId(server, key),
    state,
    inFlight: status.inFlight,
    restarts: status.restarts,
    ...(status.pid !== undefined ? { pid: status.pid } : {}),
    ...(instance.upSince !== undefined ? { upSince: instance.upSince } : {}),
    ...(status.lastError !== undefined ? { lastError: status.lastError } : {}),
  };
}
