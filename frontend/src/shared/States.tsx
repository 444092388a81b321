import type { ReactNode } from 'react';
import { ApiError, budgetEstimate, errorMessage, isDatabaseUnavailable } from '../api/errors';
import type { BudgetEstimate } from '../api/models';
import { formatDuration, formatInteger } from './format';
import './States.css';

export function Loading({ children = 'Loading…' }: { children?: ReactNode }) {
  return (
    <p className="state state-loading" role="status">
      <span className="spinner" aria-hidden="true" />
      {children}
    </p>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="state state-empty">{children}</p>;
}

// A debug-mode cache miss tells the user which command fills the cache; show it as a command.
const POPULATE_COMMAND = /(make populate-cache[^\n"']*)/;

interface ErrorNoticeProps {
  error: unknown;
  /** What was being done, e.g. "Could not load the cached series". */
  title?: string;
  onRetry?: () => void;
}

/** A refused plan in plain words, and how to make it fit. */
export function BudgetExplanation({ estimate }: { estimate: BudgetEstimate }) {
  return (
    <>
      <p className="notice-text" data-testid="budget-estimate">
        It would send about {formatInteger(estimate.requests)} IBKR requests, which take{' '}
        {formatDuration(estimate.duration_s).replace(/^~/, 'about ')} at IBKR&apos;s pacing budget; the limit is{' '}
        {formatInteger(estimate.ceiling)} requests.
      </p>
      <p className="notice-text">Ask for a shorter range (fewer days back), fewer symbols or a larger bar size.</p>
    </>
  );
}

function noticeTitle(error: unknown, title: string | undefined): string {
  if (error instanceof ApiError && error.code === 'cache_miss_debug_mode') return 'Not in the cache (DEBUG MODE)';
  if (isDatabaseUnavailable(error)) return 'Database unavailable';
  return title ?? 'Something went wrong';
}

export function ErrorNotice({ error, title, onRetry }: ErrorNoticeProps) {
  const message = errorMessage(error);
  const command = message.match(POPULATE_COMMAND)?.[1]?.trim();
  const estimate = budgetEstimate(error);
  return (
    <div className="notice notice-error" role="alert">
      <strong className="notice-title">{noticeTitle(error, title)}</strong>
      <p className="notice-text">{message}</p>
      {command && (
        <p className="notice-text">
          Fill the cache with: <code className="command">{command}</code>
        </p>
      )}
      {estimate && <BudgetExplanation estimate={estimate} />}
      {onRetry && (
        <button type="button" className="button button-small" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}

export function SuccessNotice({ children, onDismiss }: { children: ReactNode; onDismiss?: () => void }) {
  return (
    <div className="notice notice-success" role="status">
      <span className="notice-text">{children}</span>
      {onDismiss && (
        <button type="button" className="button button-small button-ghost" onClick={onDismiss} aria-label="Dismiss message">
          ×
        </button>
      )}
    </div>
  );
}
