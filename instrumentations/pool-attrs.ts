/**
 * The per-pool attribute cache of DbPoolInstrumentation's metrics: each pool's attribute sets built
 * once, frozen and shared by every measurement, so recording on the hot path allocates nothing.
 */
import type { Attributes } from '@opentelemetry/api';
import {
  ATTR_DB_CLIENT_CONNECTION_POOL_NAME,
  ATTR_DB_CLIENT_CONNECTION_STATE,
  DB_CLIENT_CONNECTION_STATE_VALUE_IDLE,
  DB_CLIENT_CONNECTION_STATE_VALUE_USED,
} from './semconv.js';
import { MAX_ATTR_VARIANTS } from './utils.js';

/** Attribute sets of one pool's metrics, built once (frozen and shared). */
export class PoolAttrs {
  readonly pool: Attributes;
  readonly idle: Attributes;
  readonly used: Attributes;
  /** The pool name on the metrics: the pool id, or POOL_NAME_OTHER past the meter mode's cap. */
  readonly name: string;
  /** Meter mode: its gauges were observed, so they are observed (as 0 when the pool is gone) from now on. */
  gauged = false;
  /** Meter mode: its counters of rare outcomes were started at 0 on the current instruments (ZERO_COUNTERS). */
  zeroed = false;
  /** Whether they are: meter mode, and not past ZERO_COUNTERS_MAX_POOLS pool ids (producer mode: the store does it). */
  zeroable = false;
  readonly #poolId: string;
  /** `with()`'s sets: attribute key, then value. */
  #variants: Map<string, Map<string, Attributes>> | undefined;

  constructor(poolId: string) {
    this.name = poolId;
    this.#poolId = poolId;
    this.pool = Object.freeze({ [ATTR_DB_CLIENT_CONNECTION_POOL_NAME]: poolId });
    this.idle = Object.freeze({
      [ATTR_DB_CLIENT_CONNECTION_POOL_NAME]: poolId,
      [ATTR_DB_CLIENT_CONNECTION_STATE]: DB_CLIENT_CONNECTION_STATE_VALUE_IDLE,
    });
    this.used = Object.freeze({
      [ATTR_DB_CLIENT_CONNECTION_POOL_NAME]: poolId,
      [ATTR_DB_CLIENT_CONNECTION_STATE]: DB_CLIENT_CONNECTION_STATE_VALUE_USED,
    });
  }

  /**
   * The pool's name plus one attribute with a bounded set of values, built once per value (up to
   * MAX_ATTR_VARIANTS a key, then per call). Every key used sorts after the pool name's, so the
   * keys are in sorted order.
   */
  with(key: string, value: string): Attributes {
    const variants = (this.#variants ??= new Map());
    let byValue = variants.get(key);
    if (byValue === undefined) {
      byValue = new Map();
      variants.set(key, byValue);
    }
    let a = byValue.get(value);
    if (a === undefined) {
      a = Object.freeze({ [ATTR_DB_CLIENT_CONNECTION_POOL_NAME]: this.#poolId, [key]: value });
      if (byValue.size < MAX_ATTR_VARIANTS) byValue.set(value, a);
    }
    return a;
  }
}
