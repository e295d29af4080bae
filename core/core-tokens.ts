import type { AuthStrategy, ChannelBroker, ServerControl, EventStreamFactory, PendingStateStore, ReplicaDirectory, ServerCatalog, StrategyRegistry, TransportFactory } from './contracts.js';
import type { Kernel } from './kernel.js';
import type { Router } from './router.js';
import type { Logger } from 'pino';
import { defineToken } from './tokens.js';

/** Tokens the kernel provides. */
export const KERNEL = defineToken<Kernel>('kernel');
export const LOGGER = defineToken<Logger>('logger');
export const ROUTER = defineToken<Router>('router');
export const SERVERS = defineToken<ServerCatalog>('servers');
export const TRANSPORTS = defineToken<StrategyRegistry<TransportFactory>>('transports');
export const AUTH_STRATEGIES = defineToken<StrategyRegistry<AuthStrategy>>('auth-strategies');

/** Tokens plugins provide to each other. */
export const EVENT_STREAMS = defineToken<EventStreamFactory>('event-streams');
export const CHANNELS = defineToken<ChannelBroker>('channels');
export const PENDING_STATE = defineToken<PendingStateStore>('pending-state');
export const SERVER_CONTROL = defineToken<ServerControl>('server-control');
export const REPLICA_DIRECTORY = defineToken<ReplicaDirectory>('replica-directory');
