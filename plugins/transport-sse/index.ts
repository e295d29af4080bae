import { definePlugin, type Plugin } from '../../core/index.js';

// placeholder: replaced by the real plugin
export function transportSse(_options: Record<string, unknown> = {}): Plugin {
  return definePlugin({ name: 'transport-sse', register() {} });
}
