export interface ReconnectSettings {
  /** first delay before reconnecting, ms */
  initialDelayMs: number;
  /** longest delay between attempts, ms */
  maxDelayMs: number;
  /** attempts before giving up (Infinity: never) */
  maxAttempts: number;
}

export interface RemoteSettings {
  /** time to receive the response headers of a GET, DELETE or HTTP+SSE POST, ms */
  headersTimeoutMs: number;
  /** Streamable HTTP POST: time to the answer's headers and longest silence inside it, ms */
  requestTimeoutMs: number;
  /** HTTP+SSE: time to wait for the `endpoint` event, ms */
  endpointTimeoutMs: number;
  /** largest JSON answer or single SSE event read from a remote server, bytes */
  maxMessageBytes: number;
  reconnect: ReconnectSettings;
}
