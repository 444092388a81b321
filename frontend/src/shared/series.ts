// What a series is, in the UI: an IB contract (symbol, asset class, currency, a future's expiry,
// exchange) read as one bar size, one whatToShow and in regular or all hours. The rules mirror
// the backend's (backend/market_data/domain.py), so the form refuses what the API would refuse
// before anything is sent; the API still has the last word.
import type { RefreshRequest, SecType, WhatToShow } from '../api/models';

export type { SecType, WhatToShow };

/** The names people know the asset classes by, in the order the asset-class selects list them. */
export const ASSET_CLASS_LABELS: Record<SecType, string> = {
  STK: 'Stock/ETF',
  IND: 'Index',
  FUT: 'Future',
  CONTFUT: 'Continuous future',
  CASH: 'FX',
  CRYPTO: 'Crypto',
};

/** IBKR's security types; the record above fails the build when the API adds one it lacks. */
export const SEC_TYPES = Object.keys(ASSET_CLASS_LABELS) as SecType[];

// A record over WhatToShow, so the build fails when the API adds one this list lacks.
const WHAT_TO_SHOW_LISTED: Record<WhatToShow, true> = {
  TRADES: true,
  MIDPOINT: true,
  BID: true,
  ASK: true,
  BID_ASK: true,
  ADJUSTED_LAST: true,
  AGGTRADES: true,
};
export const WHAT_TO_SHOW = Object.keys(WHAT_TO_SHOW_LISTED) as WhatToShow[];

const QUOTES: WhatToShow[] = ['MIDPOINT', 'BID', 'ASK', 'BID_ASK'];

/** What IBKR serves for each asset class; it refuses the rest (TRADES on FX, on crypto). */
export const ALLOWED_WHAT_TO_SHOW: Record<SecType, readonly WhatToShow[]> = {
  STK: ['TRADES', ...QUOTES, 'ADJUSTED_LAST'],
  IND: ['TRADES'],
  FUT: ['TRADES', ...QUOTES],
  CONTFUT: ['TRADES', ...QUOTES],
  CASH: QUOTES,
  CRYPTO: ['AGGTRADES', ...QUOTES],
};

/** What the API picks when a request names no whatToShow. */
export const DEFAULT_WHAT_TO_SHOW: Record<SecType, WhatToShow> = {
  STK: 'TRADES',
  IND: 'TRADES',
  FUT: 'TRADES',
  CONTFUT: 'TRADES',
  CASH: 'MIDPOINT',
  CRYPTO: 'AGGTRADES',
};

/** The exchange the API picks when a request names none (stocks: the CACHE_EXCHANGE setting). */
export const DEFAULT_EXCHANGE: Record<Exclude<SecType, 'STK'>, string> = {
  IND: 'CBOE',
  FUT: 'CME',
  CONTFUT: 'CME',
  CASH: 'IDEALPRO',
  CRYPTO: 'PAXOS',
};

export const DEFAULT_CURRENCY = 'USD';

/**
 * Whether regular and all hours are different series: stocks have pre- and after-market bars,
 * futures the overnight Globex session. Indices, FX and crypto are served the same either way,
 * and the cache keeps them as regular hours.
 */
export function hoursMatter(secType: SecType): boolean {
  return secType === 'STK' || secType === 'FUT' || secType === 'CONTFUT';
}

/** Bar sizes whose bars carry a date but no time of day. */
export function isDailyOrLonger(dataType: string): boolean {
  return dataType === '1d' || dataType === '1w' || dataType === '1mo';
}

/** A future's lastTradeDateOrContractMonth: a contract month or a last trading day. */
const EXPIRY_PATTERN = /^\d{4}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])?$/;

/** Why an expiry typed for a future cannot be sent, or null when it can. */
export function expiryProblem(expiry: string): string | null {
  const text = expiry.trim();
  if (!text) {
    return 'A future needs its expiry: enter the contract month as YYYYMM (e.g. 202503) or the last trading day as YYYYMMDD. For the rolling front contract choose Continuous future.';
  }
  if (!EXPIRY_PATTERN.test(text)) {
    return `Expiry “${text}” is not a contract month: use YYYYMM (e.g. 202503) or YYYYMMDD (e.g. 20250321).`;
  }
  return null;
}

/**
 * The fields that say which series of a symbol a row is. Left out (a request's defaults, a
 * backend that predates them), they mean a US stock's TRADES in regular hours.
 */
export interface SeriesIdentityFields {
  sec_type?: SecType;
  currency?: string | null;
  expiry?: string | null;
  what_to_show?: WhatToShow | null;
  use_rth?: boolean;
}

export interface SeriesIdentity extends SeriesIdentityFields {
  symbol: string;
  exchange: string;
  data_type: string;
}

export interface Identity {
  secType: SecType;
  currency: string;
  expiry: string;
  whatToShow: WhatToShow;
  useRth: boolean;
}

/** The identity with a stock's defaults filled in where a row has none. */
export function identityOf(series: SeriesIdentityFields): Identity {
  return {
    secType: series.sec_type || 'STK',
    currency: series.currency || DEFAULT_CURRENCY,
    expiry: series.expiry || '',
    whatToShow: series.what_to_show || 'TRADES',
    useRth: series.use_rth ?? true,
  };
}

/** The contract: `NVDA`, `ES 202503 FUT`, `EUR.USD CASH`, `BTC CRYPTO`; a stock alone as its symbol. */
export function instrumentLabel(series: Pick<SeriesIdentity, 'symbol'> & SeriesIdentityFields): string {
  return [symbolLabel(series.symbol, series), ...contractParts(series)].join(' ');
}

/** An FX pair's symbol is its base currency: shown with its quote, `EUR.USD`, unless typed as a pair. */
function symbolLabel(symbol: string, series: SeriesIdentityFields): string {
  const { secType, currency } = identityOf(series);
  return secType === 'CASH' && /^[A-Z]{3}$/.test(symbol) ? `${symbol}.${currency}` : symbol;
}

/** What follows the symbol in a contract's name: a future's expiry, the asset class, a currency. */
function contractParts(series: SeriesIdentityFields): string[] {
  const { secType, currency, expiry } = identityOf(series);
  const parts: string[] = [];
  if (expiry) parts.push(expiry);
  if (secType !== 'STK') parts.push(secType);
  if (secType !== 'CASH' && currency !== DEFAULT_CURRENCY) parts.push(currency);
  return parts;
}

/** A refresh job's series: `NVDA, TSLA · 1d`, `ES, NQ 202503 FUT · 1m · MIDPOINT · all hours`. */
export function jobLabel(symbols: string[], request: SeriesIdentityFields & { data_type?: string }): string {
  const contracts = [symbols.map((symbol) => symbolLabel(symbol, request)).join(', '), ...contractParts(request)].join(' ');
  return [contracts, ...(request.data_type ? [request.data_type] : []), ...seriesVariant(request)].join(' · ');
}

/** What sets the series apart from a symbol's TRADES in regular hours: `['MIDPOINT', 'all hours']`. */
export function seriesVariant(series: SeriesIdentityFields): string[] {
  const { whatToShow, useRth } = identityOf(series);
  const parts: string[] = [];
  if (whatToShow !== 'TRADES') parts.push(whatToShow);
  if (!useRth) parts.push('all hours');
  return parts;
}

/** `ES 202503 FUT · MIDPOINT · all hours`; a stock's TRADES in regular hours is just `NVDA`. */
export function seriesLabel(series: Pick<SeriesIdentity, 'symbol'> & SeriesIdentityFields): string {
  return [instrumentLabel(series), ...seriesVariant(series)].join(' · ');
}

/** With the bar size: `NVDA 1d`, `ES 202503 FUT 1m · MIDPOINT · all hours`. */
export function seriesName(series: Pick<SeriesIdentity, 'symbol' | 'data_type'> & SeriesIdentityFields): string {
  return [`${instrumentLabel(series)} ${series.data_type}`, ...seriesVariant(series)].join(' · ');
}

/** Tells every cached series apart, also two that differ only in whatToShow or hours. */
export function seriesKey(series: SeriesIdentity): string {
  const { secType, currency, expiry, whatToShow, useRth } = identityOf(series);
  return [series.symbol, series.exchange, series.data_type, secType, currency, expiry, whatToShow, useRth ? 'rth' : 'all'].join(
    '|',
  );
}

/** A name for test ids and the like: `NVDA-1d`, `ES-202503-FUT-1m-MIDPOINT-all-hours`. */
export function seriesSlug(series: Pick<SeriesIdentity, 'symbol' | 'data_type'> & SeriesIdentityFields): string {
  return seriesName(series).replace(/\s*·\s*|\s+/g, '-');
}

export interface SeriesQuery {
  sec_type: SecType;
  currency: string;
  expiry?: string;
  what_to_show: WhatToShow;
  use_rth: boolean;
}

/**
 * The identity as query parameters of the series route. Every field is named, so the API opens
 * exactly this series rather than the asset class's default one.
 */
export function seriesQuery(series: SeriesIdentityFields): SeriesQuery {
  const { secType, currency, expiry, whatToShow, useRth } = identityOf(series);
  return { sec_type: secType, currency, ...(expiry ? { expiry } : {}), what_to_show: whatToShow, use_rth: useRth };
}

export type SeriesRequestFields = Pick<RefreshRequest, 'sec_type' | 'currency' | 'expiry' | 'what_to_show' | 'use_rth'>;

/**
 * The identity as fields of a refresh request, each only where it differs from a US stock's
 * TRADES in regular hours: a stock's request stays what it always was. A currency left at USD is
 * left out, so the API reads an FX pair typed as `EUR.USD` or `USDJPY` with its own quote currency.
 */
export function refreshFields(series: SeriesIdentityFields): SeriesRequestFields {
  const { secType, currency, expiry, whatToShow, useRth } = identityOf(series);
  return {
    ...(secType !== 'STK' ? { sec_type: secType } : {}),
    ...(currency !== DEFAULT_CURRENCY ? { currency } : {}),
    ...(expiry ? { expiry } : {}),
    ...(whatToShow !== 'TRADES' ? { what_to_show: whatToShow } : {}),
    ...(!useRth ? { use_rth: false } : {}),
  };
}
