/**
 * PagerDuty Events API v2 channel. A firing alert is a `trigger` event, a resolved one a `resolve`
 * event with the same `dedup_key` (stable per pool and condition), which closes the incident.
 */
import { redactUrl, REDACTED } from '../../config/config.js';
import { DEFAULT_PAGERDUTY_EVENTS_URL, type PagerDutyChannelConfig } from '../channel-config.js';
import { DeliveryError, type Alert, type AlertChannel, type AlertLevel } from '../types.js';
import { postJson } from './http.js';

/** A PagerDuty Events API v2 event. */
export interface PagerDutyEvent {
  routing_key: string;
  event_action: 'trigger' | 'resolve';
  dedup_key?: string;
  client?: string;
  payload?: {
    summary: string;
    severity: 'critical' | 'error' | 'warning' | 'info';
    source: string;
    component?: string;
    group?: string;
    class?: string;
    timestamp: string;
    custom_details: Record<string, unknown>;
  };
}

function pagerDutyEvent(alert: Alert, routingKey: string): PagerDutyEvent {
  if (alert.status === 'resolved') {
    if (alert.dedupKey === undefined) {
      throw new DeliveryError('a PagerDuty resolve needs a dedupKey (or a poolId and kind) to name the incident', { permanent: true });
    }
    return { routing_key: routingKey, event_action: 'resolve', dedup_key: alert.dedupKey };
  }
  const summary = alert.message.length > 1024 ? `${alert.message.slice(0, 1021)}...` : alert.message;
  return {
    routing_key: routingKey,
    event_action: 'trigger',
    ...(alert.dedupKey === undefined ? {} : { dedup_key: alert.dedupKey }),
    client: 'db-pool-otel',
    payload: {
      summary,
      severity: alert.level,
      source: alert.source,
      ...(alert.poolId === undefined ? {} : { component: alert.poolId }),
      group: 'db-pool-otel',
      ...(alert.kind === undefined ? {} : { class: alert.kind }),
      timestamp: alert.timestamp,
      custom_details: { message: alert.message, ...alert.details },
    },
  };
}

export class PagerDutyChannel implements AlertChannel {
  readonly type = 'pagerduty';
  readonly minLevel: AlertLevel;
  readonly label: string;
  readonly #routingKey: string;
  readonly #eventsUrl: string;
  readonly #timeoutMs: number | undefined;

  constructor(
    readonly name: string,
    config: PagerDutyChannelConfig,
  ) {
    this.#routingKey = config.routingKey;
    this.#eventsUrl = config.eventsUrl ?? DEFAULT_PAGERDUTY_EVENTS_URL;
    this.#timeoutMs = config.timeoutMs;
    this.minLevel = config.minLevel ?? 'info';
    this.label = `pagerduty ${redactUrl(this.#eventsUrl)}`;
  }

  async send(alert: Alert, timeoutMs: number): Promise<void> {
    await postJson(this.#eventsUrl, pagerDutyEvent(alert, this.#routingKey), this.#timeoutMs ?? timeoutMs);
  }

  describe(): Record<string, unknown> {
    const out: Record<string, unknown> = { type: this.type, routingKey: REDACTED, eventsUrl: redactUrl(this.#eventsUrl), minLevel: this.minLevel };
    if (this.#timeoutMs !== undefined) out.timeoutMs = this.#timeoutMs;
    return out;
  }

  secrets(): string[] {
    const out = [this.#routingKey];
    try {
      const u = new URL(this.#eventsUrl);
      if (u.password) out.push(u.password);
    } catch {
      // validated already
    }
    return out;
  }
}
