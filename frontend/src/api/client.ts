// Typed client of the backend API. URLs are relative: the backend serves this app on the same
// origin, and the Vite dev server proxies /api to it.
import { ApiError } from './errors';
import type {
  AppConfig,
  BarFilters,
  CachedBars,
  CachedSeries,
  CacheStats,
  CorporateActions,
  ExecuteRequest,
  Execution,
  ExecutionDetail,
  Executions,
  Health,
  RefreshJob,
  RefreshRequest,
  SeriesPaging,
  Strategy,
} from './models';
import { getStoredToken } from './token';

type QueryValue = string | number | boolean | null | undefined;

interface RequestOptions {
  method?: 'GET' | 'POST' | 'DELETE';
  query?: Record<string, QueryValue>;
  body?: unknown;
  /** Send the stored API token (changing endpoints need it when the backend has one). */
  authorize?: boolean;
}

export function buildUrl(path: string, query?: Record<string, QueryValue>): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value === undefined || value === null || value === '') continue;
    params.set(key, String(value));
  }
  const search = params.toString();
  return search ? `${path}?${search}` : path;
}

async function readJson(response: Response): Promise<unknown> {
  const text = await response.text();
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined; // e.g. an HTML error page from a proxy: the status code says enough
  }
}

async function request<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (options.body !== undefined) headers['Content-Type'] = 'application/json';
  if (options.authorize) {
    const token = getStoredToken();
    if (token) headers.Authorization = `Bearer ${token}`;
  }

  let response: Response;
  try {
    response = await fetch(buildUrl(path, options.query), {
      method: options.method ?? 'GET',
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
  } catch {
    throw new ApiError(0, 'network_error', null);
  }

  const body = await readJson(response);
  if (!response.ok) {
    const errorBody = (body && typeof body === 'object' ? body : {}) as Record<string, unknown>;
    const code = typeof errorBody.code === 'string' ? errorBody.code : '';
    throw new ApiError(response.status, code, errorBody.detail, errorBody);
  }
  return body as T;
}

const enc = encodeURIComponent;

export const api = {
  getConfig: () => request<AppConfig>('/api/config'),

  /** Readiness. A 503 is an answer too: the body says what is unavailable. */
  getHealth: () =>
    request<Health>('/api/health').catch((error: unknown) => {
      if (error instanceof ApiError && error.status === 503 && typeof error.body.database === 'string') {
        return error.body as unknown as Health;
      }
      throw error;
    }),

  getCacheStats: () => request<CacheStats>('/api/market-data/cache/stats'),

  /** Splits and dividend adjustments the cache detected and healed, newest first. */
  getCorporateActions: (filters: BarFilters = {}) =>
    request<CorporateActions>('/api/market-data/cache/actions', { query: { ...filters } }),

  listCachedBars: (filters: BarFilters & { limit?: number; offset?: number }) =>
    request<CachedBars>('/api/market-data/cache', { query: { ...filters } }),

  /** One page of a series' bars; `paging.cursor` is the previous page's `next_cursor`. */
  getCachedSeries: (symbol: string, filters: Omit<BarFilters, 'symbol'> = {}, paging: SeriesPaging = {}) =>
    request<CachedSeries>(`/api/market-data/cache/${enc(symbol)}`, { query: { ...filters, ...paging } }),

  startRefresh: (body: RefreshRequest) =>
    request<RefreshJob>('/api/market-data/cache/refresh', {
      method: 'POST',
      query: { wait: false },
      body,
      authorize: true,
    }),

  getRefreshJob: (jobId: string) => request<RefreshJob>(`/api/market-data/cache/refresh/${enc(jobId)}`),

  /** Asks a queued or running job to stop; answers the job (a finished one unchanged). */
  cancelRefresh: (jobId: string) =>
    request<RefreshJob>(`/api/market-data/cache/refresh/${enc(jobId)}`, { method: 'DELETE', authorize: true }),

  /** Takes an interrupted job over on the backend answering; it fetches only what is still missing. */
  resumeRefresh: (jobId: string) =>
    request<RefreshJob>(`/api/market-data/cache/refresh/${enc(jobId)}/resume`, { method: 'POST', authorize: true }),

  /** Deletes the bars matching the filters; with no filter at all it sends `all=true`. */
  clearCache: (filters: BarFilters) => {
    const hasFilter = Object.values(filters).some((value) => value !== undefined && value !== '');
    return request<{ deleted: number }>('/api/market-data/cache', {
      method: 'DELETE',
      query: hasFilter ? { ...filters } : { all: true },
      authorize: true,
    });
  },

  getStrategies: () => request<Strategy[]>('/api/strategies'),

  executeWorkflow: (body: ExecuteRequest) =>
    request<Execution>('/api/workflows/execute', { method: 'POST', body, authorize: true }),

  listExecutions: (limit: number, offset: number) =>
    request<Executions>('/api/workflows/executions', { query: { limit, offset } }),

  getExecution: (id: string | number) => request<ExecutionDetail>(`/api/workflows/executions/${enc(String(id))}`),
};
