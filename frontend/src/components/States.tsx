import type { ReactNode } from 'react';
import { ApiError, errorMessage } from '../api/errors';

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

export function ErrorNotice({ error, title, onRetry }: ErrorNoticeProps) {
  const message = errorMessage(error);
  const isDebugMiss = error instanceof ApiError && error.code === 'cache_miss_debug_mode';
  const command = message.match(POPULATE_COMMAND)?.[1]?.trim();
  return (
    <div className="notice notice-error" role="alert">
      <strong className="notice-title">
        {isDebugMiss ? 'Not in the cache (DEBUG MODE)' : (title ?? 'Something went wrong')}
      </strong>
      <p className="notice-text">{message}</p>
      {command && (
        <p className="notice-text">
          Fill the cache with: <code className="command">{command}</code>
        </p>
      )}
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
