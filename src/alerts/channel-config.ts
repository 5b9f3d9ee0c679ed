/**
 * Alert channel configuration: the schema, validation into one issue per problem (the style of
 * `src/config/config.ts`), and redaction. Webhook URLs, Slack URLs, custom headers, PagerDuty routing keys
 * and SMTP passwords are secrets: issues, `describe()` output and log lines never carry them.
 */
import type { z } from 'zod';
import { REDACTED, redactUrl } from '../config/config.js';
import { bool, int, ms, nonEmptyStr, str, zodIssues } from '../config/config-schema.js';
import { InvalidConfigError, type ConfigIssue } from '../errors.js';
import { ALERT_LEVELS, type AlertLevel } from './types.js';
import { closest, describeShape, redactUnknown, safeDecode, stripUndefined } from '../util/object-utils.js';
import { lazy, zod } from '../util/load-zod.js';

interface ChannelCommon {
  /** Alerts below this level skip the channel (default 'info': everything). */
  minLevel?: AlertLevel;
  /** Per-attempt timeout for this channel (default: the handler's `timeoutMs`). */
  timeoutMs?: number;
}

/** Generic webhook: the alert as JSON, POSTed to `url`. */
export interface WebhookChannelConfig extends ChannelCommon {
  type: 'webhook';
  url: string;
  /** Extra request headers (e.g. `authorization`); their values are treated as secrets. */
  headers?: Record<string, string>;
}

/** Slack incoming webhook. */
export interface SlackChannelConfig extends ChannelCommon {
  type: 'slack';
  webhookUrl: string;
}

/** PagerDuty Events API v2. */
export interface PagerDutyChannelConfig extends ChannelCommon {
  type: 'pagerduty';
  /** The integration's routing key (32 characters). */
  routingKey: string;
  /** Default https://events.pagerduty.com/v2/enqueue. */
  eventsUrl?: string;
}

/** SMTP server settings, passed to nodemailer. */
export interface SmtpConfig {
  host: string;
  port: number;
  /** TLS from the start (port 465); otherwise STARTTLS when offered. Default false. */
  secure?: boolean;
  /** Refuse to send unless STARTTLS succeeds. */
  requireTLS?: boolean;
  auth?: { user: string; pass: string };
  tls?: { rejectUnauthorized?: boolean; servername?: string };
}

/** Email over SMTP. */
export interface EmailChannelConfig extends ChannelCommon {
  type: 'email';
  smtp: SmtpConfig;
  from: string;
  to: string | string[];
  /** Start of every subject line; default `[db-pool-otel]`. */
  subjectPrefix?: string;
}

export type ChannelConfig = WebhookChannelConfig | SlackChannelConfig | PagerDutyChannelConfig | EmailChannelConfig;

/** Retry policy of a failing channel: `attempts` tries, waiting base × factor^(n-1) (capped) between. */
export interface RetryOptions {
  /** Tries in all, including the first. Default 3. */
  attempts?: number;
  /** Wait before the second try. Default 200 ms. */
  baseDelayMs?: number;
  /** Growth of the wait per try. Default 2. */
  factor?: number;
  /** Longest wait. Default 5 000 ms. */
  maxDelayMs?: number;
}

export const RETRY_DEFAULTS: Required<RetryOptions> = { attempts: 3, baseDelayMs: 200, factor: 2, maxDelayMs: 5_000 };

/** Per-attempt timeout of a delivery (HTTP request, SMTP connection and commands). Default 5 s. */
const DEFAULT_TIMEOUT_MS = 5_000;

export const DEFAULT_PAGERDUTY_EVENTS_URL = 'https://events.pagerduty.com/v2/enqueue';

const httpUrl = () => str().refine(isHttpUrl, { error: 'must be an http:// or https:// URL' });
const address = () => str().refine(isAddress, { error: 'must be an email address (a@b.c or "Name <a@b.c>")' });

/** The channel and retry schemas, built on the first validation that needs them (util/load-zod). */
const channelSchemas = lazy(() => {
  const z = zod();
  const common = {
    minLevel: z.enum(ALERT_LEVELS as [AlertLevel, ...AlertLevel[]], { error: 'must be info, warning, error or critical' }).optional(),
    timeoutMs: ms(100, 120_000).optional(),
  };

  const schemas = {
    webhook: z.strictObject({
      type: z.literal('webhook'),
      url: httpUrl(),
      headers: z.record(z.string(), str(), { error: 'must be an object of header names to strings' }).optional(),
      ...common,
    }),
    slack: z.strictObject({ type: z.literal('slack'), webhookUrl: httpUrl(), ...common }),
    pagerduty: z.strictObject({
      type: z.literal('pagerduty'),
      routingKey: str().regex(/^\S{1,128}$/, { error: 'must be the integration key: 1-128 characters, no spaces' }),
      eventsUrl: httpUrl().optional(),
      ...common,
    }),
    email: z.strictObject({
      type: z.literal('email'),
      smtp: z.strictObject(
        {
          host: nonEmptyStr(),
          port: int(1, 65_535),
          secure: bool().optional(),
          requireTLS: bool().optional(),
          auth: z.strictObject({ user: nonEmptyStr(), pass: str() }, { error: 'must be an object { user, pass }' }).optional(),
          tls: z.strictObject({ rejectUnauthorized: bool().optional(), servername: nonEmptyStr().optional() }, { error: 'must be an object' }).optional(),
        },
        { error: 'must be an object { host, port, secure?, auth? }' },
      ),
      from: address(),
      to: z.union([address(), z.array(address(), { error: 'must be an address or a list of addresses' }).min(1, { error: 'must name at least one address' })], {
        error: 'must be an address or a list of addresses',
      }),
      subjectPrefix: str().optional(),
      ...common,
    }),
  } satisfies Record<(typeof CHANNEL_TYPES)[number], z.ZodType>;

  const retrySchema = z.strictObject(
    {
      attempts: int(1, 10).optional(),
      baseDelayMs: ms(0, 60_000).optional(),
      factor: z.number({ error: 'must be a number' }).min(1, { error: 'must be from 1 to 10' }).max(10, { error: 'must be from 1 to 10' }).optional(),
      maxDelayMs: ms(0, 600_000).optional(),
    },
    { error: 'must be an object { attempts?, baseDelayMs?, factor?, maxDelayMs? }' },
  );
  return { schemas, retrySchema };
});

const CHANNEL_TYPES = ['webhook', 'slack', 'pagerduty', 'email'] as const;
const channelNamePattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const HANDLER_KEYS = ['channels', 'retry', 'timeoutMs', 'logger', 'source'];

/** Options of `AlertHandler` as validated. */
export interface ValidatedHandlerOptions {
  channels: [string, ChannelConfig][];
  retry: Required<RetryOptions>;
  timeoutMs: number;
}

/**
 * Validates the handler's options; throws {@link InvalidConfigError} listing every problem with its
 * dotted path (`channels.pager.routingKey`), secrets redacted.
 */
export function validateHandlerOptions(input: unknown): ValidatedHandlerOptions {
  const issues: ConfigIssue[] = [];
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new InvalidConfigError(
      [{ path: '(options)', value: describeShape(input), rule: 'must be an object { channels?, retry?, timeoutMs?, logger?, source? }' }],
      'AlertHandler',
    );
  }
  const o = input as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!HANDLER_KEYS.includes(key)) {
      const guess = closest(key, HANDLER_KEYS);
      issues.push({ path: key, value: redactUnknown(o[key]), rule: `is not a known option${guess ? ` (did you mean "${guess}"?)` : ''}` });
    }
  }
  const channels: [string, ChannelConfig][] = [];
  if (o.channels !== undefined) {
    if (o.channels === null || typeof o.channels !== 'object' || Array.isArray(o.channels)) {
      issues.push({ path: 'channels', value: describeShape(o.channels), rule: 'must be an object of channel name to channel settings' });
    } else {
      for (const [name, cfg] of Object.entries(o.channels as Record<string, unknown>)) {
        const base = `channels.${name}`;
        if (!channelNamePattern.test(name)) {
          issues.push({ path: base, value: name, rule: 'channel names are 1-64 characters of letters, digits, "_", "." or "-"' });
          continue;
        }
        const parsed = parseChannel(cfg, base, issues);
        if (parsed) channels.push([name, parsed]);
      }
    }
  }
  let retry = RETRY_DEFAULTS;
  if (o.retry !== undefined) {
    const { retrySchema } = channelSchemas();
    const r = retrySchema.safeParse(o.retry);
    if (r.success) retry = { ...RETRY_DEFAULTS, ...stripUndefined(r.data) };
    else issues.push(...channelIssues(r.error.issues, o.retry, 'retry', Object.keys(retrySchema.shape)));
  }
  let timeoutMs = DEFAULT_TIMEOUT_MS;
  if (o.timeoutMs !== undefined) {
    const r = ms(100, 120_000).safeParse(o.timeoutMs);
    if (r.success) timeoutMs = r.data;
    else issues.push({ path: 'timeoutMs', value: o.timeoutMs, rule: r.error.issues[0]!.message });
  }
  if (o.logger !== undefined && o.logger !== null && typeof (o.logger as { warn?: unknown }).warn !== 'function') {
    issues.push({ path: 'logger', value: describeShape(o.logger), rule: 'must have a warn(message) method, or be null for silence' });
  }
  if (o.source !== undefined && (typeof o.source !== 'string' || o.source.length === 0 || o.source.length > 255)) {
    issues.push({ path: 'source', value: o.source, rule: 'must be a string of 1-255 characters' });
  }
  if (issues.length > 0) throw new InvalidConfigError(issues, 'AlertHandler');
  return { channels, retry, timeoutMs };
}

function parseChannel(cfg: unknown, base: string, issues: ConfigIssue[]): ChannelConfig | undefined {
  if (cfg === null || typeof cfg !== 'object' || Array.isArray(cfg)) {
    issues.push({ path: base, value: describeShape(cfg), rule: 'must be an object with a type: webhook, slack, pagerduty or email' });
    return undefined;
  }
  const type = (cfg as { type?: unknown }).type;
  if (typeof type !== 'string' || !(CHANNEL_TYPES as readonly string[]).includes(type)) {
    issues.push({
      path: `${base}.type`,
      value: type,
      rule: type === undefined ? 'is required: webhook, slack, pagerduty or email' : 'must be webhook, slack, pagerduty or email',
    });
    return undefined;
  }
  const schema = channelSchemas().schemas[type as (typeof CHANNEL_TYPES)[number]];
  const r = schema.safeParse(cfg);
  if (!r.success) {
    issues.push(...channelIssues(r.error.issues, cfg, base, Object.keys(schema.shape)));
    return undefined;
  }
  return stripUndefined(r.data) as ChannelConfig;
}

function channelIssues(zIssues: readonly z.core.$ZodIssue[], input: unknown, prefix: string, known: string[]): ConfigIssue[] {
  return zodIssues(zIssues, input, { prefix, known, redactUnknown, redact: (path, value) => redactValue(path[path.length - 1] ?? '', value, path) });
}

// ---------------------------------------------------------------- redaction

/** A webhook URL as it may be shown: scheme and host only, e.g. `https://hooks.slack.com/[REDACTED]`. */
export function redactEndpoint(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}/${REDACTED}`;
  } catch {
    return REDACTED;
  }
}

const URL_SECRET_KEYS = new Set(['url', 'webhookUrl']);
const PLAIN_SECRET_KEYS = new Set(['routingKey', 'pass', 'password']);

/** A copy of (part of) a channel config with its secrets replaced. */
function redactValue(key: string, value: unknown, path: readonly string[] = []): unknown {
  if (value === undefined) return undefined;
  if (path.includes('headers') && path[path.length - 1] !== 'headers') return REDACTED;
  if (URL_SECRET_KEYS.has(key)) return typeof value === 'string' ? redactEndpoint(value) : describeShape(value);
  if (key === 'eventsUrl') return typeof value === 'string' ? redactUrl(value) : describeShape(value);
  if (PLAIN_SECRET_KEYS.has(key)) return REDACTED;
  if (key === 'headers' && value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value).map((k) => [k, REDACTED]));
  }
  if (Array.isArray(value)) return value.map((v) => redactValue('', v));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, redactValue(k, v)]));
  }
  return value;
}

/**
 * The secret strings of a URL: the whole URL and the parts past the host (path, query, userinfo),
 * so a log line that quotes any of them can be scrubbed.
 */
export function urlSecrets(url: string): string[] {
  const out: string[] = [];
  try {
    const u = new URL(url);
    out.push(u.href);
    const tail = `${u.pathname}${u.search}${u.hash}`;
    if (tail.length > 1) out.push(tail, u.pathname.length > 1 ? u.pathname : '');
    if (u.username) out.push(u.username);
    if (u.password) out.push(u.password, safeDecode(u.password));
    for (const v of u.searchParams.values()) if (v.length >= 4) out.push(v);
    for (const seg of u.pathname.split('/')) if (seg.length >= 12) out.push(seg, safeDecode(seg));
  } catch {
    // not a URL: the string itself is the secret
  }
  // Short pieces ("/", "/ok") are not secrets, and scrubbing them would mangle ordinary text.
  return [url, ...out.filter((s) => s.length >= 8)];
}

/**
 * Replaces every known secret in a text by `[REDACTED]`, longest first (so a URL is replaced whole
 * before its path is).
 */
export class Scrubber {
  #secrets: string[] = [];

  add(secrets: Iterable<string>): void {
    const all = new Set([...this.#secrets, ...[...secrets].filter((s) => s.length >= 3)]);
    this.#secrets = [...all].sort((a, b) => b.length - a.length);
  }

  scrub(text: string): string {
    let out = text;
    for (const s of this.#secrets) if (out.includes(s)) out = out.split(s).join(REDACTED);
    return out;
  }
}

// ---------------------------------------------------------------- helpers

function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname.length > 0;
  } catch {
    return false;
  }
}

const BARE_ADDRESS = /^[^\s@<>",]+@[^\s@<>",]+\.?[^\s@<>",]*$/;
function isAddress(s: string): boolean {
  const named = /^[^<>]*<([^<>]+)>$/.exec(s.trim());
  return BARE_ADDRESS.test(named ? named[1]! : s.trim());
}
