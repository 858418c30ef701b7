// What every part of the store is given: the database, the field cipher, a logger and a clock.
import type { Surreal } from 'surrealdb';
import type { FieldCipher } from './crypto.ts';

export interface StoreLog {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface StoreContext {
  db: Surreal;
  cipher: FieldCipher;
  log: StoreLog;
  now(): number;
  /** How long after its close a customer's message reopens a conversation instead of starting a new one (default 24 h). */
  reopenWindowMs?: number;
}

/** The same default as the conversation machine's `reopenWindowSec`: both sides must agree. */
export const DEFAULT_REOPEN_WINDOW_MS = 24 * 3600 * 1000;

export const silentLog: StoreLog = { debug() {}, info() {}, warn() {}, error() {} };

/** Opens a sealed value, or says so instead of failing the whole answer when one value cannot be opened. */
export async function openSealed(ctx: StoreContext, sealed: unknown, where: string): Promise<string | undefined> {
  if (typeof sealed !== 'string') return undefined;
  try {
    return await ctx.cipher.open(sealed);
  } catch (e) {
    ctx.log.error({ where, reason: (e as Error).message }, 'sealed value cannot be opened');
    return undefined;
  }
}
