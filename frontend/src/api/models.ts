// The API's shapes under the names the UI uses. They come from types.ts, which is generated from
// the backend's OpenAPI schema (`make frontend-types`); only what the schema leaves open is
// written out here: query filters, and the free-form `result` and `status` of an execution.
import type { components } from './types';

type Schemas = components['schemas'];

export type BarSize = Schemas['BarSize'];
export type SecType = Schemas['SecType'];
export type WhatToShow = Schemas['WhatToShow'];

// A record over BarSize, so the build fails when the backend adds a bar size this list lacks.
const LISTED: Record<BarSize, true> = {
  '5s': true,
  '30s': true,
  '1m': true,
  '2m': true,
  '3m': true,
  '5m': true,
  '10m': true,
  '15m': true,
  '20m': true,
  '30m': true,
  '1h': true,
  '2h': true,
  '4h': true,
  '1d': true,
  '1w': true,
  '1mo': true,
};

/** Every bar size, smallest first, in the order the selects list them. */
export const DATA_TYPES = Object.keys(LISTED) as BarSize[];

export type IsoDateTime = string;

export type AppConfig = Schemas['ConfigPublic'];

/** `/api/health` (readiness): 200 when the database answers, 503 with its own body when not. */
export type Health = Schemas['HealthPublic'] | HealthUnavailable;
export type HealthUnavailable = Schemas['HealthUnavailablePublic'];

export type SeriesStats = Schemas['SeriesStatsPublic'];
export type CacheStats = Schemas['CacheStatsPublic'];
export type CachedBars = Schemas['CachedBarsPublic'];
/**
 * `volume` is null where IBKR has none: it sends -1 for quote series (MIDPOINT, BID, ASK), which
 * the cache keeps as "no volume". The schema says number, so that is written out here.
 */
export type SeriesBar = Omit<Schemas['SeriesBarPublic'], 'volume'> & { volume: number | null };
export type CachedSeries = Omit<Schemas['SeriesPublic'], 'bars'> & { bars: SeriesBar[] };

/** Query filters shared by the bar listing, one series and clearing the cache. */
export interface BarFilters {
  symbol?: string;
  exchange?: string;
  data_type?: BarSize;
  /** Omitted: any (the series route: the asset class's default, STK / USD / TRADES / RTH). */
  sec_type?: SecType;
  currency?: string;
  expiry?: string;
  what_to_show?: WhatToShow;
  use_rth?: boolean;
  /** `YYYY-MM-DD` or an ISO time; a plain date is a UTC day. */
  date_from?: string;
  /** Inclusive; a plain date covers its whole UTC day. */
  date_to?: string;
}

/** Paging of one series: `limit` bars per page, `cursor` from the previous page's `next_cursor`. */
export interface SeriesPaging {
  limit?: number;
  cursor?: string;
}

export type CorporateAction = Schemas['CorporateActionPublic'];
export type CorporateActions = Schemas['CorporateActionsPublic'];

export type RefreshRequest = Schemas['RefreshRequest'];
export type RefreshJob = Schemas['RefreshJobPublic'];
export type JobStatus = RefreshJob['status'];
export type RefreshResult = Schemas['RefreshResultPublic'];
/** What a job plans to send at most, and how long that takes at IBKR's pacing budget. */
export type RequestEstimate = Schemas['RequestEstimatePublic'];
/** The `estimate` of a 422 `request_budget_exceeded`: the plan and the configured ceiling. */
export type BudgetEstimate = Schemas['RequestBudgetEstimate'];

export type Strategy = Schemas['StrategyPublic'];
export type StrategyParameter = Schemas['ParameterPublic'];
export type ExecuteRequest = Schemas['ExecuteRequest'];

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

/** An execution's `result` as the workflow executor writes it (the schema says only "object"). */
export interface ExecutionResult {
  signals: Record<string, Signal[]>;
  per_symbol: Record<string, SymbolOutcome>;
}

type WithResult<T> = Omit<T, 'status' | 'result'> & { status: ExecutionStatus; result: ExecutionResult | null };

export type Execution = WithResult<Schemas['ExecutionPublic']>;
export type ExecutionDetail = WithResult<Schemas['ExecutionDetailPublic']>;
export type Executions = Omit<Schemas['ExecutionsPublic'], 'data'> & { data: Execution[] };
