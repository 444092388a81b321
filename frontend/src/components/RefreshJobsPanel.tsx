import { describeDetail } from '../api/errors';
import type { RefreshResult } from '../api/types';
import { formatInteger, formatUtc } from '../format';
import { isJobActive, type TrackedJob } from '../hooks/useRefreshJobs';
import { ErrorNotice } from './States';
import { StatusBadge } from './StatusBadge';

function resultText(result: RefreshResult): string {
  if (result.status === 'ok') {
    return `${formatInteger(result.bars_fetched)} bars fetched, ${formatInteger(result.bars_cached)} cached`;
  }
  const error = result.error;
  if (!error) return 'Failed.';
  return describeDetail(error.detail) || `Failed (${error.code || `HTTP ${error.status_code}`}).`;
}

interface RefreshJobsPanelProps {
  jobs: TrackedJob[];
  startError: unknown;
  onDismiss: () => void;
}

/** Progress and per-symbol outcome of the refresh jobs started last. */
export function RefreshJobsPanel({ jobs, startError, onDismiss }: RefreshJobsPanelProps) {
  if (jobs.length === 0 && !startError) return null;
  const anyActive = jobs.some((tracked) => isJobActive(tracked.job.status) && !tracked.lost);
  return (
    <section className="card job-panel" data-testid="job-status" aria-live="polite" aria-label="Refresh jobs">
      <div className="card-header">
        <h3 className="card-title">Refresh {jobs.length > 1 ? 'jobs' : 'job'}</h3>
        {!anyActive && (
          <button type="button" className="button button-small button-ghost" onClick={onDismiss}>
            Dismiss
          </button>
        )}
      </div>
      {startError != null && <ErrorNotice error={startError} title="The refresh could not be started" />}
      {jobs.map(({ job, pollError, lost }) => {
        const { done, total } = job.progress;
        const symbols = (job.request.symbols ?? job.results.map((result) => result.symbol)).join(', ');
        return (
          <div key={job.job_id} className="job" data-testid={`job-${job.job_id}`}>
            <div className="job-head">
              <StatusBadge status={job.status} testId="job-state" />
              <span className="job-what">
                {symbols}
                {job.request.data_type ? ` · ${job.request.data_type}` : ''}
              </span>
              <span className="job-progress-text" data-testid="job-progress">
                {done} / {total} done
              </span>
            </div>
            <progress className="job-progress" max={Math.max(total, 1)} value={done} aria-label={`Progress of ${symbols}`} />
            {job.finished_at && <p className="muted small">Finished {formatUtc(job.finished_at, true)}</p>}
            {lost && <p className="field-error">The backend no longer knows this job (it may have restarted).</p>}
            {pollError && !lost && <p className="field-error">Could not check progress: {pollError} Retrying…</p>}
            {job.results.length > 0 && (
              <ul className="job-results">
                {job.results.map((result) => (
                  <li key={`${result.symbol}-${result.data_type}`} className={`job-result job-result-${result.status}`}>
                    <StatusBadge status={result.status} />
                    <strong>
                      {result.symbol} {result.data_type}
                    </strong>
                    <span>{resultText(result)}</span>
                  </li>
                ))}
              </ul>
            )}
          </div>
        );
      })}
    </section>
  );
}
