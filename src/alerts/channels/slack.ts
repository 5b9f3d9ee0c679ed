/**
 * Slack incoming-webhook channel: a notification line (`text`) and one attachment coloured by
 * level (green once resolved) holding Block Kit sections with the message and the facts.
 */
import { redactEndpoint, urlSecrets, type SlackChannelConfig } from '../channel-config.js';
import type { Alert, AlertChannel, AlertLevel } from '../types.js';
import { postJson } from './http.js';

/** Attachment colours by level; resolved alerts are green. */
const SLACK_COLORS: Record<AlertLevel | 'resolved', string> = {
  critical: '#D00000',
  error: '#E01E5A',
  warning: '#ECB22E',
  info: '#439FE0',
  resolved: '#2EB67D',
};

const EMOJI: Record<AlertLevel | 'resolved', string> = {
  critical: ':rotating_light:',
  error: ':red_circle:',
  warning: ':warning:',
  info: ':information_source:',
  resolved: ':white_check_mark:',
};

/** Slack's three escapes for mrkdwn and plain text. */
function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** The title line: `CRITICAL: PoolDown on pool "main"` or `Resolved: PoolDown on pool "main"`. */
function alertTitle(alert: Alert): string {
  const what = alert.kind ?? 'Alert';
  const where = alert.poolId === undefined ? '' : ` on pool "${alert.poolId}"`;
  return alert.status === 'resolved' ? `Resolved: ${what}${where}` : `${alert.level.toUpperCase()}: ${what}${where}`;
}

function slackPayload(alert: Alert): Record<string, unknown> {
  const tone = alert.status === 'resolved' ? 'resolved' : alert.level;
  const title = alertTitle(alert);
  const facts = [
    alert.poolId === undefined ? undefined : `*Pool:* ${esc(alert.poolId)}`,
    alert.kind === undefined ? undefined : `*Alert:* ${esc(alert.kind)}`,
    `*Level:* ${alert.level}`,
    `*Status:* ${alert.status}`,
  ].filter((f): f is string => f !== undefined);
  return {
    text: `${EMOJI[tone]} ${esc(title)}: ${esc(alert.message)}`,
    attachments: [
      {
        color: SLACK_COLORS[tone],
        fallback: `${title}: ${alert.message}`,
        blocks: [
          { type: 'section', text: { type: 'mrkdwn', text: `*${esc(title)}*\n${esc(alert.message)}` } },
          { type: 'section', fields: facts.map((text) => ({ type: 'mrkdwn', text })) },
          { type: 'context', elements: [{ type: 'mrkdwn', text: `db-pool-otel on ${esc(alert.source)} · ${alert.timestamp}` }] },
        ],
      },
    ],
  };
}

export class SlackChannel implements AlertChannel {
  readonly type = 'slack';
  readonly minLevel: AlertLevel;
  readonly label: string;
  readonly #url: string;
  readonly #timeoutMs: number | undefined;

  constructor(
    readonly name: string,
    config: SlackChannelConfig,
  ) {
    this.#url = config.webhookUrl;
    this.#timeoutMs = config.timeoutMs;
    this.minLevel = config.minLevel ?? 'info';
    this.label = `slack ${redactEndpoint(config.webhookUrl)}`;
  }

  async send(alert: Alert, timeoutMs: number): Promise<void> {
    await postJson(this.#url, slackPayload(alert), this.#timeoutMs ?? timeoutMs);
  }

  describe(): Record<string, unknown> {
    const out: Record<string, unknown> = { type: this.type, webhookUrl: redactEndpoint(this.#url), minLevel: this.minLevel };
    if (this.#timeoutMs !== undefined) out.timeoutMs = this.#timeoutMs;
    return out;
  }

  secrets(): string[] {
    return urlSecrets(this.#url);
  }
}
