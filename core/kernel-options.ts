import type { DestinationStream, Logger } from 'pino';
import type { ServerDefinition } from './contracts.js';

/** What `createKernel()` takes: where it listens, its logger, its HTTP limits, and the servers it serves. */
export interface KernelOptions {
  /** port to listen on; 0 picks a free one (default 8099) */
  port?: number;
  /** address to bind (default 127.0.0.1) */
  host?: string;
  /** the URL clients and providers reach the gateway at; default http://localhost:<port> on loopback */
  publicUrl?: string;
  logger?: Logger;
  logLevel?: string;
  /** where the kernel's own logger writes (default stderr); ignored with `logger` */
  logDestination?: DestinationStream;
  /** request body limit in bytes (default 4 MiB) */
  bodyLimit?: number;
  /** time to receive a whole request, ms (default 30 s) */
  requestTimeout?: number;
  /** time to receive request headers, ms (default 10 s) */
  headersTimeout?: number;
  /** how long stop() waits for hooks and connections before forcing, ms (default 8 s) */
  closeTimeout?: number;
  /** extra Host names accepted besides loopback names (DNS-rebinding protection) */
  allowedHosts?: string[];
  /** extra Origins accepted besides loopback origins */
  allowedOrigins?: string[];
  /** servers to serve */
  servers?: ServerDefinition[];
  /**
   * this gateway's name among replicas (1-32 letters, digits, "-", "_"): plugins start the session ids
   * they hand out with `<replicaId>.`, so a load balancer can send each session back to its replica
   */
  replicaId?: string;
}
