// Turns error responses into sentences a user can act on. Every error body of the API is
// `{detail: string | object, code: string}`; 422 details are FastAPI's list of field errors.
import type { BudgetEstimate } from './models';

export const DATABASE_UNAVAILABLE = 'database_unavailable';
export const REQUEST_BUDGET_EXCEEDED = 'request_budget_exceeded';

const LOCATION_PREFIXES = new Set(['body', 'query', 'path', 'header']);

/** FastAPI's `{loc, msg}`, or the backend's own `{field, message}` (field as `query.what_to_show`). */
interface FieldError {
  loc?: unknown[];
  msg?: string;
  field?: string;
  message?: string;
}

function describeFieldError(item: unknown): string {
  if (typeof item === 'string') return item;
  if (!item || typeof item !== 'object') return String(item);
  const { loc, msg, field: named, message } = item as FieldError;
  const text = msg ?? message ?? JSON.stringify(item);
  const parts = Array.isArray(loc) ? loc : typeof named === 'string' && named ? named.split('.') : [];
  const path = parts.filter((part, i) => !(i === 0 && LOCATION_PREFIXES.has(String(part))));
  const field = path
    .map((part) => (typeof part === 'number' || /^\d+$/.test(String(part)) ? `[${part}]` : String(part)))
    .join('.')
    .replace(/\.\[/g, '[');
  return field ? `${field}: ${text}` : text;
}

/** The `detail` of an error body in plain words, or '' when it says nothing. */
export function describeDetail(detail: unknown): string {
  if (detail === null || detail === undefined) return '';
  if (typeof detail === 'string') return detail.trim();
  if (Array.isArray(detail)) return detail.map(describeFieldError).join('; ');
  if (typeof detail === 'object') {
    const record = detail as Record<string, unknown>;
    for (const key of ['message', 'detail', 'msg', 'error']) {
      if (typeof record[key] === 'string') return (record[key] as string).trim();
    }
    return JSON.stringify(detail);
  }
  return String(detail);
}

/** What to say about a known code when the body gives no detail. */
function describeCode(code: string): string {
  if (code === DATABASE_UNAVAILABLE) return 'The backend cannot reach its database.';
  return '';
}

/** What to say when the body gives no detail. */
export function describeStatus(status: number): string {
  switch (status) {
    case 0:
      return 'Could not reach the server. Check that the backend is running.';
    case 401:
      return 'An API token is required for this action.';
    case 403:
      return 'The API token was rejected.';
    case 404:
      return 'Not found.';
    case 409:
      return 'The request conflicts with the current state.';
    case 422:
      return 'The request was not valid.';
    case 503:
      return 'The IBKR gateway is unavailable.';
    default:
      return status >= 500 ? `The server failed (HTTP ${status}).` : `The request failed (HTTP ${status}).`;
  }
}

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly detail: unknown;
  /** The whole error body, for fields beside `detail` and `code` (e.g. a refused plan's `estimate`). */
  readonly body: Record<string, unknown>;

  constructor(status: number, code: string, detail: unknown, body: Record<string, unknown> = {}) {
    super(describeDetail(detail) || describeCode(code) || describeStatus(status));
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.body = body;
  }

  /** True when the token was missing or wrong, so the user should be asked for it again. */
  get isAuthError(): boolean {
    return this.status === 401 || this.status === 403;
  }
}

/** Plain-words message of anything thrown. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return describeDetail(error) || 'Something went wrong.';
}

/** True for the 503 every data route answers while the database does not. */
export function isDatabaseUnavailable(error: unknown): boolean {
  return error instanceof ApiError && error.code === DATABASE_UNAVAILABLE;
}

function isNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

/** The plan of a request refused for costing more IBKR requests than the ceiling, else null. */
export function budgetEstimate(error: unknown): BudgetEstimate | null {
  if (!(error instanceof ApiError) || error.code !== REQUEST_BUDGET_EXCEEDED) return null;
  const estimate = error.body.estimate as Partial<BudgetEstimate> | undefined;
  if (!estimate || !isNumber(estimate.requests) || !isNumber(estimate.duration_s) || !isNumber(estimate.ceiling)) {
    return null;
  }
  return { requests: estimate.requests, duration_s: estimate.duration_s, ceiling: estimate.ceiling };
}
