import { vi } from 'vitest';
import type { AppConfig, CacheStats, SeriesStats } from '../api/models';

// A fake backend behind `fetch`, the edge of the app: routes answer by "METHOD /path" and every
// call is recorded with its query, body and headers.

export interface RecordedCall {
  method: string;
  path: string;
  query: URLSearchParams;
  body: unknown;
  headers: Record<string, string>;
}

export interface FakeReply {
  status?: number;
  body?: unknown;
}

type Route = unknown | ((call: RecordedCall) => FakeReply | Promise<FakeReply>);

/** Marks a route value as a full reply (status + body) rather than a 200 body. */
export function reply(status: number, body?: unknown): () => FakeReply {
  return () => ({ status, body });
}

export function fakeApi(routes: Record<string, Route>) {
  const calls: RecordedCall[] = [];
  const fetchMock = vi.fn(async (input: RequestInfo | URL, init: RequestInit = {}) => {
    const url = new URL(String(input), 'http://app.test');
    const call: RecordedCall = {
      method: (init.method ?? 'GET').toUpperCase(),
      path: url.pathname,
      query: url.searchParams,
      body: typeof init.body === 'string' ? JSON.parse(init.body) : undefined,
      headers: { ...(init.headers as Record<string, string>) },
    };
    calls.push(call);
    const route = routes[`${call.method} ${call.path}`];
    let answer: FakeReply;
    if (route === undefined)
      answer = { status: 404, body: { detail: `No fake for ${call.method} ${call.path}`, code: 'not_found' } };
    else if (typeof route === 'function') answer = await (route as (call: RecordedCall) => FakeReply | Promise<FakeReply>)(call);
    else answer = { status: 200, body: route };
    const status = answer.status ?? 200;
    return new Response(answer.body === undefined ? null : JSON.stringify(answer.body), {
      status,
      headers: { 'Content-Type': 'application/json' },
    });
  });
  vi.stubGlobal('fetch', fetchMock);
  return {
    fetch: fetchMock,
    calls,
    callsTo: (method: string, path: string) => calls.filter((call) => call.method === method && call.path === path),
  };
}

type ConfigOverrides = Partial<Omit<AppConfig, 'gateway'>> & { gateway?: Partial<AppConfig['gateway']> };

export function makeConfig({ gateway, ...overrides }: ConfigOverrides = {}): AppConfig {
  return {
    debug_mode: false,
    cache_enabled: true,
    cache_symbols: ['NVDA', 'TSLA'],
    cache_exchange: 'NASDAQ',
    cache_ttl_hours: 24,
    ib_host: '127.0.0.1',
    ib_port: 4002,
    api_token_required: false,
    ...overrides,
    gateway: { connected: true, simulated: false, last_error: null, last_error_at: null, ...gateway },
  };
}

/** A US stock's TRADES in regular hours, as the API names every stock series. */
export const STOCK_IDENTITY = {
  sec_type: 'STK',
  currency: 'USD',
  expiry: null,
  what_to_show: 'TRADES',
  use_rth: true,
  con_id: null,
} as const;

export function makeSeries(overrides: Partial<SeriesStats> = {}): SeriesStats {
  return {
    symbol: 'NVDA',
    exchange: 'NASDAQ',
    data_type: '1d',
    ...STOCK_IDENTITY,
    bar_count: 3,
    first: '2025-11-24T00:00:00Z',
    last: '2025-11-26T00:00:00Z',
    last_updated: '2025-11-27T21:05:00Z',
    expired: false,
    expired_count: 0,
    hits: 8,
    misses: 1,
    partial_hits: 1,
    stale_serves: 0,
    hit_rate: 0.8,
    last_hit_at: '2025-11-28T14:30:00Z',
    last_refresh_at: '2025-11-27T21:05:00Z',
    ...overrides,
  };
}

export function makeStats(series: SeriesStats[], overrides: Partial<CacheStats> = {}): CacheStats {
  return { hits: 8, misses: 1, partial_hits: 1, stale_serves: 0, hit_rate: 0.8, series, ...overrides };
}
