/**
 * Generic webhook channel: the alert as one JSON object, POSTed to the configured URL.
 *
 * Payload: `{ version: 1, level, message, poolId, kind, status: 'firing' | 'resolved', dedupKey,
 * timestamp, source, details }`.
 */
import { REDACTED } from '../../config/config.js';
import { redactEndpoint, urlSecrets, type WebhookChannelConfig } from '../channel-config.js';
import type { Alert, AlertChannel, AlertLevel } from '../types.js';
import { postJson } from './http.js';

/** The JSON body the generic webhook receives. */
export interface WebhookPayload {
  version: 1;
  level: AlertLevel;
  message: string;
  poolId: string | null;
  kind: string | null;
  status: 'firing' | 'resolved';
  dedupKey: string | null;
  timestamp: string;
  source: string;
  details: Record<string, unknown>;
}

function webhookPayload(alert: Alert): WebhookPayload {
  return {
    version: 1,
    level: alert.level,
    message: alert.message,
    poolId: alert.poolId ?? null,
    kind: alert.kind ?? null,
    status: alert.status,
    dedupKey: alert.dedupKey ?? null,
    timestamp: alert.timestamp,
    source: alert.source,
    details: alert.details,
  };
}

export class WebhookChannel implements AlertChannel {
  readonly type = 'webhook';
  readonly minLevel: AlertLevel;
  readonly label: string;
  readonly #url: string;
  readonly #headers: Record<string, string>;
  readonly #timeoutMs: number | undefined;

  constructor(
    readonly name: string,
    config: WebhookChannelConfig,
  ) {
    this.#url = config.url;
    this.#headers = { ...config.headers };
    this.#timeoutMs = config.timeoutMs;
    this.minLevel = config.minLevel ?? 'info';
    this.label = `webhook ${redactEndpoint(config.url)}`;
  }

  async send(alert: Alert, timeoutMs: number): Promise<void> {
    await postJson(this.#url, webhookPayload(alert), this.#timeoutMs ?? timeoutMs, this.#headers);
  }

  describe(): Record<string, unknown> {
    const out: Record<string, unknown> = { type: this.type, url: redactEndpoint(this.#url), minLevel: this.minLevel };
    if (Object.keys(this.#headers).length > 0) out.headers = Object.fromEntries(Object.keys(this.#headers).map((k) => [k, REDACTED]));
    if (this.#timeoutMs !== undefined) out.timeoutMs = this.#timeoutMs;
    return out;
  }

  secrets(): string[] {
    return [...urlSecrets(this.#url), ...Object.values(this.#headers).flatMap((v) => [v, ...v.split(/\s+/).filter((p) => p.length >= 8)])];
  }
}
