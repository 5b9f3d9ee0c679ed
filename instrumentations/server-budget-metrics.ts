/**
 * The server's connection budget as metrics: observable gauges whose callback reads every live
 * pool's view of its server (`liveServerBudgets()` of the core) at each collection, so a fleet of
 * processes can be summed per server in Prometheus (grafana/prometheus-alerts.yml, the
 * "Fleet connection budget" row of the dashboard).
 *
 * Every series carries the pool name and where the pool connects (`server.address`,
 * `server.port`, `db.namespace`): summed by server address and port over every instance of every
 * job, `pool_max` is what the fleet may open and `pool_open` what it has open, against the
 * server's `limit` minus `reserved`. Pools behind a transaction pooler (`transactionPooling: true`)
 * report none of these: their connections go to the pooler, whose address they carry, so neither
 * their max nor the server's limit read through the pooler belongs under that address.
 *
 * Meter mode: observable gauges on the instrumentation's meter. Producer mode: the same data
 * appended to the producer's collection ({@link ServerBudgetGauges.appendTo}), live pools only.
 *
 * Collections also ask the pools to read what is due (the backends at most every few seconds),
 * on an idle connection, in the background: the values arrive with the next collection.
 */
import {
  ValueType,
  type Attributes,
  type BatchObservableCallback,
  type BatchObservableResult,
  type HrTime,
  type Meter,
  type ObservableGauge,
} from '@opentelemetry/api';
import { millisToHrTime } from './otel-helpers.js';
import type { AggregationTemporality, CollectionResult, DataPointType, InstrumentType, MetricData } from '@opentelemetry/sdk-metrics';
import { liveServerBudgets } from '../src/internal.js';
import {
  ATTR_DB_CLIENT_CONNECTION_POOL_NAME,
  ATTR_DB_NAMESPACE,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  METRIC_DB_POOL_SERVER_CONNECTION_BACKENDS,
  METRIC_DB_POOL_SERVER_CONNECTION_LIMIT,
  METRIC_DB_POOL_SERVER_CONNECTION_POOL_MAX,
  METRIC_DB_POOL_SERVER_CONNECTION_POOL_OPEN,
  METRIC_DB_POOL_SERVER_CONNECTION_RESERVED,
} from './semconv.js';
import { DEFAULT_MAX_POOL_SERIES, POOL_NAME_OTHER } from './utils.js';

/** The gauges, in the order of a reading's values. */
const GAUGES = [
  [METRIC_DB_POOL_SERVER_CONNECTION_LIMIT, "The server's max_connections, as the pool read it on its first connection (or last reconnect)."],
  [
    METRIC_DB_POOL_SERVER_CONNECTION_RESERVED,
    "The server's slots ordinary roles cannot get: superuser_reserved_connections plus reserved_connections (PostgreSQL 16+).",
  ],
  [METRIC_DB_POOL_SERVER_CONNECTION_BACKENDS, 'Client backends on the server (every client, not only this pool), read at most every few seconds.'],
  [METRIC_DB_POOL_SERVER_CONNECTION_POOL_MAX, "The pool's max: how many connections it may open to the server."],
  [METRIC_DB_POOL_SERVER_CONNECTION_POOL_OPEN, 'Connections the pool has open to the server (lent or idle).'],
] as const;

const LIMIT = 0;
const RESERVED = 1;
const BACKENDS = 2;
const POOL_MAX = 3;
const POOL_OPEN = 4;

/** One attribute set's values in one collection; NaN: not known (not reported). */
type Reading = [number, number, number, number, number];

// sdk-metrics enums, by value (only their types are imported).
const DATA_POINT_GAUGE = 2 as DataPointType.GAUGE;
const CUMULATIVE = 1 as AggregationTemporality.CUMULATIVE;
const OBSERVABLE_GAUGE = 'OBSERVABLE_GAUGE' as InstrumentType.OBSERVABLE_GAUGE;

/** Registers and observes the server-budget gauges on a meter, or hands their data to a producer. */
export class ServerBudgetGauges {
  /** Producer mode: when the data points' series start (the first collection). */
  #start: HrTime | undefined;
  #attached: { meter: Meter; callback: BatchObservableCallback; gauges: ObservableGauge[] } | undefined;
  /**
   * Attribute sets reported so far, by key. sdk-metrics keeps exporting the last value of a set an
   * observable stops reporting, so a set once reported is reported from then on: its live values,
   * or 0 once its pool is gone (a stopped pool would otherwise claim its max forever). Bounded:
   * past `maxSeries()` sets (the instrumentation's maxPoolSeries), new pools are reported under the
   * pool name `_OTHER`.
   */
  readonly #seen = new Map<string, Attributes>();

  constructor(
    /** Whether to report (the instrumentation is enabled). */
    private readonly enabled: () => boolean,
    private readonly maxSeries: () => number = () => DEFAULT_MAX_POOL_SERIES,
  ) {}

  /** Creates the gauges on `meter` (removing them from the previous one). */
  attach(meter: Meter): void {
    this.detach();
    const gauges = GAUGES.map(([name, description]) => meter.createObservableGauge(name, { description, unit: '{connection}', valueType: ValueType.INT }));
    const callback: BatchObservableCallback = (result) => this.#observe(result, gauges);
    meter.addBatchObservableCallback(callback, gauges);
    this.#attached = { meter, callback, gauges };
  }

  detach(): void {
    const a = this.#attached;
    if (a) a.meter.removeBatchObservableCallback(a.callback, a.gauges);
    this.#attached = undefined;
  }

  /** The readings of the live pools now, by attribute set (pools sharing one are summed). */
  readings(): Map<string, { attributes: Attributes; values: Reading }> {
    const out = new Map<string, { attributes: Attributes; values: Reading }>();
    for (const b of liveServerBudgets({ refresh: true })) {
      if (b.via !== 'server') continue;
      let name = b.poolId;
      let key = keyOf(name, b.serverAddress, b.serverPort, b.database);
      if (!this.#seen.has(key) && this.#seen.size >= this.maxSeries()) {
        name = POOL_NAME_OTHER;
        key = keyOf(name, b.serverAddress, b.serverPort, b.database);
      }
      let r = out.get(key);
      if (r === undefined) {
        const attributes: Attributes = {
          [ATTR_DB_CLIENT_CONNECTION_POOL_NAME]: name,
          [ATTR_SERVER_ADDRESS]: b.serverAddress,
          [ATTR_SERVER_PORT]: b.serverPort,
        };
        if (b.database !== undefined) attributes[ATTR_DB_NAMESPACE] = b.database;
        r = { attributes: this.#seen.get(key) ?? Object.freeze(attributes), values: [NaN, NaN, NaN, 0, 0] };
        out.set(key, r);
      }
      const v = r.values;
      const g = b.budget;
      if (g !== null) {
        v[LIMIT] = Number.isNaN(v[LIMIT]) ? g.maxConnections : Math.max(v[LIMIT], g.maxConnections);
        const reserved = g.superuserReservedConnections + (g.reservedConnections ?? 0);
        v[RESERVED] = Number.isNaN(v[RESERVED]) ? reserved : Math.max(v[RESERVED], reserved);
        if (g.backends !== null) v[BACKENDS] = Number.isNaN(v[BACKENDS]) ? g.backends : Math.max(v[BACKENDS], g.backends);
      }
      v[POOL_MAX] += b.max;
      v[POOL_OPEN] += b.open;
    }
    return out;
  }

  /**
   * Producer mode: the gauges' data of the live pools added to `result` (in the scope of the
   * instrumentation's other metrics when there is one), when enabled.
   */
  appendTo(result: CollectionResult, scope: { name: string; version: string }): CollectionResult {
    if (!this.enabled()) return result;
    const readings = this.readings();
    if (readings.size === 0) return result;
    const endTime = millisToHrTime(Date.now());
    const startTime = (this.#start ??= endTime);
    const metrics: MetricData[] = GAUGES.map(([name, description], i) => ({
      descriptor: { name, description, unit: '{connection}', valueType: ValueType.INT, type: OBSERVABLE_GAUGE, advice: {} },
      aggregationTemporality: CUMULATIVE,
      dataPointType: DATA_POINT_GAUGE,
      dataPoints: [...readings.values()]
        .filter((r) => !Number.isNaN(r.values[i]))
        .map((r) => ({ startTime, endTime, attributes: r.attributes, value: r.values[i]! })),
    }));
    const scopes = result.resourceMetrics.scopeMetrics;
    const own = scopes.find((s) => s.scope.name === scope.name);
    const withData = metrics.filter((m) => m.dataPoints.length > 0);
    return {
      ...result,
      resourceMetrics: {
        ...result.resourceMetrics,
        scopeMetrics: own
          ? scopes.map((s) => (s === own ? { ...s, metrics: [...s.metrics, ...withData] } : s))
          : [...scopes, { scope: { ...scope }, metrics: withData }],
      },
    };
  }

  #observe(result: BatchObservableResult, gauges: ObservableGauge[]): void {
    if (!this.enabled()) return;
    const now = this.readings();
    for (const [key, { attributes, values }] of now) {
      this.#seen.set(key, attributes);
      for (let i = 0; i < gauges.length; i++) if (!Number.isNaN(values[i])) result.observe(gauges[i]!, values[i]!, attributes);
    }
    for (const [key, attributes] of this.#seen) {
      if (now.has(key)) continue;
      for (const gauge of gauges) result.observe(gauge, 0, attributes);
    }
  }
}

function keyOf(name: string, address: string, port: number, database: string | undefined): string {
  return `${name}\u0000${address}\u0000${port}\u0000${database ?? ''}`;
}
