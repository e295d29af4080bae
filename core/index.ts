import 'reflect-metadata';

export { isAnyAddress, isLoopback } from './host-guard.js';
export { createKernel, Kernel, type KernelOptions, type KernelState, type PluginApi } from './kernel.js';
export { definePlugin, type Plugin } from './plugin.js';
export { Router, type Route, type RouteHandler, type RouteOptions, type RouteMatch } from './router.js';
export { applicationHookNames, requestHookNames, type HookName, type HookSignatures, type ApplicationHook, type RequestHook, type ErrorHook } from './hooks.js';
export { defineToken, type Token } from './tokens.js';
export * from './core-tokens.js';
export * from './contracts.js';
export { errors, FluidError, type ErrorCode, type ErrorFactory } from './errors.js';
export { createLogger, drainStderr, stderrDestination, REDACT_PATHS, type Logger, type LoggerSettings } from './logger.js';
export { loadConfigFile, parseConfig, readConfigFile, configError, serverFieldError, authKey, isHttpUrl, type LoadedConfig } from './metadata.js';
export { sendJson, sendError, readBody, jsonText } from './http.js';
export { KeyedRegistry } from './registry.js';
export { GATEWAY_NODE_FLAGS, missingNodeFlags } from './node-flags.js';
export { KernelEvents } from './events.js';
export { MemoryStateStore } from './state-store.js';
export { CORS_ALLOW_HEADERS, CORS_EXPOSE_HEADERS, type RouteCors } from './cors.js';
