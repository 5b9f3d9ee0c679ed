/**
 * The types grafana/db-pool-dashboard.json is validated against (test/grafana/grafana-dashboard.test.ts).
 * `test/support/grafana-schema-generate.ts` turns them into the JSON Schema
 * `test/support/grafana-dashboard.schema.json` with ts-json-schema-generator (no extra properties
 * allowed anywhere), so a misspelled key fails the test.
 *
 * Everything comes from `@grafana/schema` (Grafana's classic dashboard model and the panel plugins'
 * option types), except what that package leaves out, allowed here on purpose:
 * - `__inputs`, `__requires`, `__elements`: the "export for sharing externally" keys that Grafana's
 *   import reads (the data-source input `DS_PROMETHEUS`, the plugins the dashboard needs);
 * - the Prometheus data source's query fields: panel `targets` are `Record<string, unknown>` in
 *   `@grafana/schema` and the package has no Prometheus query type, so `PrometheusTarget` below lists
 *   the fields the Prometheus plugin stores (refId, expr, legendFormat, format, ...);
 * - the same plugin's annotation-query fields (`expr`, `step`, `titleFormat`, `textFormat`, ...),
 *   which `AnnotationQuery` does not list.
 * Panel `options` and `fieldConfig.defaults.custom` are `Record<string, unknown>` in the dashboard
 * model; the test checks them per panel type against the plugin types below (all keys optional:
 * Grafana fills in defaults, but no unknown key passes).
 */
import type {
  AnnotationQuery,
  Dashboard,
  DataSourceRef,
  FieldConfigSource,
  Panel,
  RowPanel,
} from '@grafana/schema/dist/esm/raw/dashboard/x/Dashboard_types.gen';
import type * as Heatmap from '@grafana/schema/dist/esm/raw/composable/heatmap/panelcfg/x/HeatmapPanelCfg_types.gen';
import type * as Stat from '@grafana/schema/dist/esm/raw/composable/stat/panelcfg/x/StatPanelCfg_types.gen';
import type * as StateTimeline from '@grafana/schema/dist/esm/raw/composable/statetimeline/panelcfg/x/StateTimelinePanelCfg_types.gen';
import type * as TimeSeries from '@grafana/schema/dist/esm/raw/composable/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen';

/** An `__inputs` entry: what Grafana's "Import dashboard" asks for. */
export interface ExportInput {
  name: string;
  label: string;
  description: string;
  type: 'datasource' | 'constant';
  pluginId?: string;
  pluginName?: string;
  value?: string;
}

/** A `__requires` entry: a plugin (or Grafana itself) the dashboard needs. */
export interface ExportRequire {
  type: 'grafana' | 'datasource' | 'panel';
  id: string;
  name: string;
  version: string;
}

/** A query of the Prometheus data source, as the plugin stores it in `targets`. */
export interface PrometheusTarget {
  refId: string;
  expr: string;
  datasource?: DataSourceRef;
  legendFormat?: string;
  /** `time_series` (default), `table`, or `heatmap` (buckets sorted and de-accumulated by `le`). */
  format?: 'time_series' | 'table' | 'heatmap';
  range?: boolean;
  instant?: boolean;
  interval?: string;
  intervalFactor?: number;
  editorMode?: 'code' | 'builder';
  exemplar?: boolean;
  hide?: boolean;
}

/** An annotation query of the Prometheus data source: the dashboard model's fields plus the plugin's. */
export interface PrometheusAnnotationQuery extends AnnotationQuery {
  expr: string;
  refId?: string;
  step?: string;
  titleFormat?: string;
  textFormat?: string;
  tagKeys?: string;
  useValueForTime?: boolean;
}

/** A panel as exported: the model's panel with Prometheus targets. */
export interface DashboardPanel extends Omit<Panel, 'targets'> {
  targets?: PrometheusTarget[];
}

/** A row as exported (its `panels` hold the row's panels only while it is collapsed). */
export interface DashboardRow extends Omit<RowPanel, 'panels'> {
  panels: DashboardPanel[];
}

/** The dashboard file: Grafana's `Dashboard` model plus the export keys. */
export interface DashboardFile extends Omit<Dashboard, 'panels' | 'annotations' | 'id'> {
  __inputs: ExportInput[];
  __requires: ExportRequire[];
  __elements?: Record<string, never>;
  /** `null` in a file meant for import: Grafana assigns the database id. */
  id: null;
  annotations?: { list?: Array<AnnotationQuery | PrometheusAnnotationQuery> };
  panels?: Array<DashboardPanel | DashboardRow>;
}

export type FieldDefaults = FieldConfigSource['defaults'];

// Panel plugin options, every key optional (Grafana fills in defaults), none unknown.
export type StatOptions = Partial<Stat.Options>;
export type TimeSeriesOptions = Partial<TimeSeries.Options>;
export type TimeSeriesCustom = Partial<TimeSeries.FieldConfig>;
export type HeatmapOptions = Partial<Heatmap.Options>;
export type HeatmapCustom = Partial<Heatmap.FieldConfig>;
export type StateTimelineOptions = Partial<StateTimeline.Options>;
export type StateTimelineCustom = Partial<StateTimeline.FieldConfig>;
