// Types of the backend's JSON API. They mirror the API contract; keep them in step with it.

export const DATA_TYPES = ['1m', '5m', '15m', '30m', '1h', '1d'] as const;
export type DataType = (typeof DATA_TYPES)[number];

export type IsoDateTime = string;

export interface AppConfig {
  debug_mode: boolean;
  cache_enabled: boolean;
  cache_symbols: string[];
  cache_exchange: string;
  cache_ttl_hours: number;
  ib_host: string;
  ib_port: number;
  api_token_required: boolean;
  gateway?: GatewayState;
}

export interface GatewayState {
  connected: boolean;
  simulated: boolean;
  /** Why the last connect failed or the connection dropped; kept after a reconnect fails again. */
  last_error?: string | null;
  last_error_at?: IsoDateTime | null;
}

/** `/api/health` (readiness): 200 when the database answers, 503 with the same shape when not. */
export interface Health {
  status: 'ok' | 'degraded' | 'unavailable';
  database: 'ok' | 'unreachable';
  code?: string;
  detail?: unknown;
}

export interface HitCounters {
  hits: number;
  misses: number;
  partial_hits: number;
  stale_serves: number;
  hit_rate: number | null;
}

export interface SeriesStats extends HitCounters {
  symbol: string;
  exchange: string;
  data_type: string;
  bar_count: number;
  first: IsoDateTime | null;
  last: IsoDateTime | null;
  last_updated: IsoDateTime | null;
  expired: boolean;
  expired_count: number;
  last_hit_at: IsoDateTime | null;
  last_refresh_at: IsoDateTime | null;
}

export interface CacheStats extends HitCounters {
  series: SeriesStats[];
}

export interface CachedBar {
  id: number;
  symbol: string;
  exchange: string;
  data_type: string;
  timestamp: IsoDateTime;
  ohlcv_data: {
    open: number;
    high: number;
    low: number;
    close: number;
    volume: number;
    wap?: number;
    bar_count?: number;
  };
  indicators: Record<string, unknown> | null;
  metadata: Record<string, unknown>;
  fetched_at: IsoDateTime;
  expires_at: IsoDateTime;
  expired: boolean;
}

export interface Page<T> {
  data: T[];
  count: number;
}

export interface SeriesBar {
  timestamp: IsoDateTime;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  wap: number | null;
  bar_count: number | null;
  is_final: boolean;
}

export interface CachedSeries {
  symbol: string;
  exchange: string;
  data_type: string;
  count: number;
  first: IsoDateTime | null;
  last: IsoDateTime | null;
  fetched_from: IsoDateTime | null;
  fetched_to: IsoDateTime | null;
  expired: boolean;
  bars: SeriesBar[];
  /** Pass back as `cursor` for the next page; null on the last page. */
  next_cursor?: string | null;
  /** Bars in the whole filtered range; `count` is the bars in this page. */
  total?: number;
}

/** Paging of one series: `limit` bars per page, `cursor` from the previous page's `next_cursor`. */
export interface SeriesPaging {
  limit?: number;
  cursor?: string;
}

/** Filters shared by the bar listing, one series and clearing the cache. */
export interface BarFilters {
  symbol?: string;
  exchange?: string;
  data_type?: string;
  date_from?: string;
  date_to?: string;
}

export interface RefreshRequest {
  symbols: string[];
  exchange?: string;
  data_type?: string;
  days_back?: number;
  force?: boolean;
}

export type JobStatus = 'queued' | 'running' | 'completed' | 'partial' | 'failed' | 'cancelled';

/** What a job plans to send at most, and how long that takes at IBKR's pacing budget. */
export interface RequestEstimate {
  requests: number;
  duration_s: number;
}

/** The `estimate` of a 422 `request_budget_exceeded`: the plan and the configured ceiling. */
export interface BudgetEstimate extends RequestEstimate {
  ceiling: number;
}

export interface RefreshResult {
  symbol: string;
  data_type: string;
  status: 'ok' | 'error' | 'cancelled';
  /** Bars this job committed for the symbol, also when the symbol then failed or was cancelled. */
  bars_fetched: number;
  bars_cached: number;
  error: { code: string; detail: unknown; status_code: number } | null;
}

export interface RefreshJob {
  job_id: string;
  status: JobStatus;
  created_at: IsoDateTime;
  finished_at: IsoDateTime | null;
  request: Partial<RefreshRequest> & Record<string, unknown>;
  progress: { done: number; total: number };
  results: RefreshResult[];
  estimate?: RequestEstimate;
}

export interface StrategyParameter {
  name: string;
  type: 'int' | 'float';
  default: number;
  min: number | null;
  max: number | null;
  description: string;
}

export interface Strategy {
  name: string;
  description: string;
  parameters: StrategyParameter[];
}

export interface ExecuteRequest {
  strategy: string;
  symbols: string[];
  data_type: string;
  lookback_days: number;
  params: Record<string, number>;
}

export type ExecutionStatus =
  | 'pending'
  | 'running'
  | 'completed'
  | 'partial'
  | 'failed'
  /** The process stopped while the run was in progress (marked at the next start-up). */
  | 'interrupted'
  /** The caller went away before the run finished. */
  | 'cancelled';

export interface Signal {
  timestamp: IsoDateTime;
  signal: 'buy' | 'sell';
  price: number;
}

export interface SymbolOutcome {
  /** `partial`: bars were served with expected bars missing. */
  status: 'ok' | 'partial' | 'error';
  bars: number;
  error?: string;
  missing_bars?: number;
  /** [start, end) of each run of missing bars: end is where the last missing bar ends. */
  missing_ranges?: [IsoDateTime, IsoDateTime][];
  /** Set when there were more ranges than the entry lists. */
  missing_ranges_total?: number;
}

export interface ExecutionResult {
  signals: Record<string, Signal[]>;
  per_symbol: Record<string, SymbolOutcome>;
}

export interface Execution {
  id: number | string;
  strategy: string;
  status: ExecutionStatus;
  debug_mode: boolean;
  symbols: string[];
  data_type: string;
  parameters: Record<string, unknown>;
  result: ExecutionResult | null;
  error: string | null;
  started_at: IsoDateTime | null;
  finished_at: IsoDateTime | null;
}

export interface ExecutionLog {
  step: string;
  level: string;
  message: string;
  created_at: IsoDateTime;
}

export type DataSource = 'cache' | 'ibkr' | 'mixed' | 'stale_cache';
export type HitKind = 'hit' | 'miss' | 'partial' | 'stale';

export interface LineageRecord {
  step: string;
  symbol: string;
  data_type: string;
  range_start: IsoDateTime | null;
  range_end: IsoDateTime | null;
  metadata: {
    data_source: DataSource;
    debug_mode: boolean;
    cache_hit: HitKind;
    bar_count: number;
    fetched_at_min: IsoDateTime | null;
    fetched_at_max: IsoDateTime | null;
    checksum: string;
  };
}

export interface ExecutionDetail extends Execution {
  logs: ExecutionLog[];
  lineage: LineageRecord[];
}

/** Body of every error response. */
export interface ErrorBody {
  detail: unknown;
  code?: string;
  /** With `request_budget_exceeded`. */
  estimate?: BudgetEstimate;
}
