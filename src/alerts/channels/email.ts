/**
 * Email channel: one plain-text message per alert over SMTP, through nodemailer (loaded on first
 * use, so applications without an email channel never load it).
 *
 * Subject: `[db-pool-otel] CRITICAL: PoolDown on pool "main"` (or `... RESOLVED: ...`); the body
 * holds the message and the facts.
 */
import { REDACTED } from '../../config/config.js';
import type { EmailChannelConfig, SmtpConfig } from '../channel-config.js';
import { DeliveryError, type Alert, type AlertChannel, type AlertLevel } from '../types.js';

/** The part of a nodemailer transport this channel uses. */
interface SmtpTransport {
  sendMail(message: EmailMessage): Promise<unknown>;
  close(): void;
}

export interface EmailMessage {
  from: string;
  to: string[];
  subject: string;
  text: string;
  headers: Record<string, string>;
}

function emailMessage(alert: Alert, config: { from: string; to: string | string[]; subjectPrefix?: string }): EmailMessage {
  const prefix = config.subjectPrefix ?? '[db-pool-otel]';
  const what = alert.kind ?? 'Alert';
  const where = alert.poolId === undefined ? '' : ` on pool "${alert.poolId}"`;
  const state = alert.status === 'resolved' ? 'RESOLVED' : alert.level.toUpperCase();
  const subject = `${prefix ? `${prefix} ` : ''}${state}: ${what}${where}`.replace(/[\r\n]+/g, ' ');
  const facts: [string, string | undefined][] = [
    ['Status', alert.status],
    ['Level', alert.level],
    ['Pool', alert.poolId],
    ['Alert', alert.kind],
    ['Time', alert.timestamp],
    ['Source', alert.source],
    ['Dedup key', alert.dedupKey],
  ];
  const lines = [alert.message, '', ...facts.filter(([, v]) => v !== undefined).map(([k, v]) => `${`${k}:`.padEnd(11)}${v}`)];
  const details = Object.entries(alert.details);
  if (details.length > 0) {
    lines.push('', 'Details:');
    for (const [k, v] of details) lines.push(`  ${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  }
  lines.push('', '-- ', 'db-pool-otel alert handler');
  const headers: Record<string, string> = { 'X-DB-Pool-Otel-Status': alert.status };
  if (alert.dedupKey !== undefined) headers['X-DB-Pool-Otel-Dedup-Key'] = alert.dedupKey;
  return { from: config.from, to: Array.isArray(config.to) ? config.to : [config.to], subject, text: lines.join('\n'), headers };
}

export class EmailChannel implements AlertChannel {
  readonly type = 'email';
  readonly minLevel: AlertLevel;
  readonly label: string;
  readonly #config: EmailChannelConfig;
  #transport: Promise<SmtpTransport> | undefined;
  #transportTimeoutMs = 0;

  constructor(
    readonly name: string,
    config: EmailChannelConfig,
  ) {
    this.#config = { ...config, smtp: { ...config.smtp, ...(config.smtp.auth ? { auth: { ...config.smtp.auth } } : {}) } };
    this.minLevel = config.minLevel ?? 'info';
    this.label = `email smtp://${config.smtp.host}:${config.smtp.port}`;
  }

  async send(alert: Alert, timeoutMs: number): Promise<void> {
    const limit = this.#config.timeoutMs ?? timeoutMs;
    const transport = await this.#transporter(limit);
    const msg = emailMessage(alert, this.#config);
    let timer: NodeJS.Timeout | undefined;
    // nodemailer bounds connect, greeting and each idle gap; this bounds the whole conversation.
    const overall = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new DeliveryError(`SMTP conversation not finished within ${3 * limit} ms`)), 3 * limit);
    });
    try {
      await Promise.race([transport.sendMail(msg), overall]);
    } catch (err) {
      throw toDeliveryError(err);
    } finally {
      clearTimeout(timer);
    }
  }

  async #transporter(timeoutMs: number): Promise<SmtpTransport> {
    if (!this.#transport || this.#transportTimeoutMs !== timeoutMs) {
      this.#transportTimeoutMs = timeoutMs;
      const smtp: SmtpConfig = this.#config.smtp;
      this.#transport = import('nodemailer').then(({ createTransport }) => {
        return createTransport({
          host: smtp.host,
          port: smtp.port,
          secure: smtp.secure ?? false,
          ...(smtp.requireTLS === undefined ? {} : { requireTLS: smtp.requireTLS }),
          ...(smtp.auth ? { auth: { user: smtp.auth.user, pass: smtp.auth.pass } } : {}),
          ...(smtp.tls ? { tls: { ...smtp.tls } } : {}),
          connectionTimeout: timeoutMs,
          greetingTimeout: timeoutMs,
          socketTimeout: timeoutMs,
          logger: false,
          debug: false,
        });
      });
      this.#transport.catch(() => {
        this.#transport = undefined;
      });
    }
    return this.#transport;
  }

  describe(): Record<string, unknown> {
    const { smtp } = this.#config;
    const out: Record<string, unknown> = {
      type: this.type,
      smtp: {
        host: smtp.host,
        port: smtp.port,
        secure: smtp.secure ?? false,
        ...(smtp.requireTLS === undefined ? {} : { requireTLS: smtp.requireTLS }),
        ...(smtp.auth ? { auth: { user: smtp.auth.user, pass: REDACTED } } : {}),
        ...(smtp.tls ? { tls: { ...smtp.tls } } : {}),
      },
      from: this.#config.from,
      to: this.#config.to,
      minLevel: this.minLevel,
    };
    if (this.#config.subjectPrefix !== undefined) out.subjectPrefix = this.#config.subjectPrefix;
    if (this.#config.timeoutMs !== undefined) out.timeoutMs = this.#config.timeoutMs;
    return out;
  }

  secrets(): string[] {
    const pass = this.#config.smtp.auth?.pass;
    return pass ? [pass, Buffer.from(pass).toString('base64')] : [];
  }

  close(): void {
    const t = this.#transport;
    this.#transport = undefined;
    t?.then(
      (tr) => tr.close(),
      () => {},
    );
  }
}

/** SMTP failures: a refused login or a 5xx reply will not get better by retrying. */
function toDeliveryError(err: unknown): DeliveryError {
  if (err instanceof DeliveryError) return err;
  const e = err as { message?: unknown; code?: unknown; responseCode?: unknown };
  const message = typeof e?.message === 'string' ? e.message : String(err);
  const code = typeof e?.code === 'string' ? e.code : undefined;
  const responseCode = typeof e?.responseCode === 'number' ? e.responseCode : undefined;
  const permanent = code === 'EAUTH' || code === 'EENVELOPE' || (responseCode !== undefined && responseCode >= 500);
  return new DeliveryError(code && !message.includes(code) ? `${code}: ${message}` : message, { permanent, cause: err });
}
