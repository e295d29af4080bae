import { definePlugin, type Plugin } from '../../core/index.js';

// placeholder: replaced by the real plugin
export function proxyJsonRpc(_options: Record<string, unknown> = {}): Plugin {
  return definePlugin({ name: 'proxy-jsonrpc', register() {} });
}
