import type { DependencyContainer } from 'tsyringe';
import { errors } from './errors.js';

/** A typed DI token: a symbol that remembers the type it stands for. */
export interface Token<T> {
  readonly id: string;
  readonly symbol: symbol;
  /** phantom field: carries T for the type checker only */
  readonly __type?: T;
}

export function defineToken<T>(id: string): Token<T> {
  return Object.freeze({ id, symbol: Symbol.for(`fluidmcp:${id}`) });
}

export function provide<T>(container: DependencyContainer, token: Token<T>, value: T): void {
  container.register(token.symbol, { useValue: value });
}

export function resolve<T>(container: DependencyContainer, token: Token<T>): T {
  if (!container.isRegistered(token.symbol, true)) throw errors.FMCP_ERR_TOKEN_MISSING(token.id);
  return container.resolve<T>(token.symbol);
}

export function tryResolve<T>(container: DependencyContainer, token: Token<T>): T | undefined {
  return container.isRegistered(token.symbol, true) ? container.resolve<T>(token.symbol) : undefined;
}
