import { definePlugin, type Plugin } from '../../core/index.js';

// placeholder: replaced by the real plugin
export function authOAuth2Pkce(_options: Record<string, unknown> = {}): Plugin {
  return definePlugin({ name: 'auth-oauth2-pkce', register() {} });
}
