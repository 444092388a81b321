import { describeDetail } from '../../api/errors';
import type { RefreshResult } from '../../api/models';
import { formatEstimate, formatInteger, formatUtc } from '../../shared/format';
import { jobLabel, seriesName } from '../../shared/series';
import { ErrorNotice } from '../../shared/States';
import { StatusBadge } from '../../shared/StatusBadge';
import { isJobActive, type TrackedJob } from './useRefreshJobs';

function plural(count: number, word: string): string {
  return `${formatInteger(count)} ${count === 1 ? word : `${word}s`}`;
}

/** A symbol's outcome; `bars_fetched` counts what was committed, also before a stop or an error. */
function resultText(result: RefreshResult): string {
  const fetched = plural(result.bars_fetched, 'bar');
  if (result.status === 'ok') return `${fetched} fetched, ${formatInteger(result.bars_cached)} cached`;
  if (result.status === 'cancelled') {
    return `Cancelled: ${fetched} fetched before it stopped, ${formatInteger(result.bars_cached)} cached`;
  }
  const error = result.error;
  const reason = error ? describeDetail(error.detail) || `Failed (${error.code || `HTTP ${error.status_code}`}).` : 'Failed.';
  return result.bars_fetched > 0
    ? `${reason} ${fetched} fetched before the error were kept, ${formatInteger(result.bars_cached)} cached.`
    : reason;
}

interface RefreshJobsPanelProps {
  jobs: TrackedJob[];
  startError: unknown;
  onCancel: (jobId: string) => void;
  onResume?: (jobId: string) => void;
  onDismiss: () => void;
}

/** Progress, plan and per-symbol outcome of the refresh jobs started last; running ones can be cancelled. */
export function RefreshJobsPanel({ jobs, startError, onCancel, onResume, onDismiss }: RefreshJobsPanelProps) {
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
      {jobs.map(({ job, pollError, lost, cancelling, cancelError, resuming, resumeError }) => {
        const { done, total } = job.progress;
        const symbolList = job.request.symbols ?? job.results.map((result) => result.symbol);
        const symbols = symbolList.join(', ');
        const what = jobLabel(symbolList, job.request);
        const cancellable = isJobActive(job.status) && !lost;
        const resumable = job.status === 'interrupted' && !lost && onResume != null;
        return (
          <div key={job.job_id} className="job" data-testid={`job-${job.job_id}`}>
            <div className="job-head">
              <StatusBadge status={job.status} testId="job-state" />
              <span className="job-what">{what}</span>
              <span className="job-progress-text" data-testid="job-progress">
                {done} / {total} done
              </span>
              {cancellable && (
                <button
                  type="button"
                  className="button button-small button-danger-outline"
                  data-testid="job-cancel"
                  onClick={() => onCancel(job.job_id)}
                  disabled={cancelling}
                >
                  {cancelling ? 'Cancelling…' : 'Cancel'} <span className="visually-hidden">refresh of {what}</span>
                </button>
              )}
              {resumable && (
                <button
                  type="button"
                  className="button button-small"
                  data-testid="job-resume"
                  onClick={() => onResume(job.job_id)}
                  disabled={resuming}
                >
                  {resuming ? 'Resuming…' : 'Resume'} <span className="visually-hidden">refresh of {what}</span>
                </button>
              )}
            </div>
            <progress className="job-progress" max={Math.max(total, 1)} value={done} aria-label={`Progress of ${symbols}`} />
            {job.estimate && (
              <p className="muted small" data-testid="job-estimate">
                Plan: {formatEstimate(job.estimate)}
              </p>
            )}
            {job.status === 'cancelled' && (
              <p className="muted small">Cancelled on request: nothing more is sent to IBKR; bars already stored stay cached.</p>
            )}
            {job.status === 'interrupted' && (
              <p className="muted small" data-testid="job-interrupted">
                The backend running this job stopped. Resume fetches only what is still missing; bars already stored stay cached.
              </p>
            )}
            {job.finished_at && <p className="muted small">Finished {formatUtc(job.finished_at, true)}</p>}
            {lost && <p className="field-error">The backend no longer knows this job (it may have restarted).</p>}
            {pollError && !lost && <p className="field-error">Could not check progress: {pollError} Retrying…</p>}
            {resumeError && (
              <p className="field-error" role="alert">
                The job was not resumed: {resumeError}
              </p>
            )}
            {cancelError && (
              <p className="field-error" role="alert">
                The job was not cancelled: {cancelError}
              </p>
            )}
            {job.results.length > 0 && (
              <ul className="job-results">
                {job.results.map((result, index) => (
                  <li key={`${index}-${result.symbol}`} className={`job-result job-result-${result.status}`}>
                    <StatusBadge status={result.status} />
                    <strong>{seriesName({ ...job.request, ...result })}</strong>
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
