import { useCallback, useEffect, useRef, useState } from 'react';
import { api } from '../../api/client';
import { ApiError, errorMessage } from '../../api/errors';
import type { JobStatus, RefreshJob, RefreshRequest } from '../../api/models';
import { isCancelled, useApiToken } from '../../shared/hooks/useApiToken';

export const POLL_INTERVAL_MS = 1000;

export interface TrackedJob {
  job: RefreshJob;
  /** Last polling problem, shown next to the job; polling goes on unless the job is gone. */
  pollError: string | null;
  /** The backend no longer knows the job (e.g. it restarted): stop asking. */
  lost: boolean;
  /** A cancel was asked for and the job has not stopped yet. */
  cancelling: boolean;
  /** Why the last cancel was not accepted. */
  cancelError: string | null;
  /** A resume was asked for and not answered yet. */
  resuming?: boolean;
  /** Why the last resume was not accepted. */
  resumeError?: string | null;
}

/** Where a start was asked for, so its error shows beside the control that asked. */
export type StartOrigin = 'table' | 'form';

function tracked(job: RefreshJob): TrackedJob {
  return { job, pollError: null, lost: false, cancelling: false, cancelError: null };
}

export function isJobActive(status: JobStatus): boolean {
  return status === 'queued' || status === 'running';
}

function isTracking(tracked: TrackedJob): boolean {
  return isJobActive(tracked.job.status) && !tracked.lost;
}

/**
 * Starts cache refresh jobs, cancels them on request, and polls each one every second until it is
 * completed, partial, failed or cancelled. `onFinished` runs whenever a job ends, so the caller can
 * reload what the job changed (a cancelled or failed job keeps the bars it had committed).
 */
export function useRefreshJobs(onFinished?: () => void) {
  const { runProtected } = useApiToken();
  const [jobs, setJobs] = useState<TrackedJob[]>([]);
  const [startFailure, setStartFailure] = useState<{ error: unknown; origin: StartOrigin } | null>(null);
  const [starting, setStarting] = useState(false);
  const [pollRound, setPollRound] = useState(0);

  const trackedIds = jobs
    .filter(isTracking)
    .map((tracked) => tracked.job.job_id)
    .join(',');

  useEffect(() => {
    if (!trackedIds) return;
    let cancelled = false;
    const timer = window.setTimeout(async () => {
      const ids = trackedIds.split(',');
      const answers = await Promise.all(
        ids.map((id) =>
          api.getRefreshJob(id).then(
            (job) => ({ id, job, error: null as unknown }),
            (error: unknown) => ({ id, job: null, error }),
          ),
        ),
      );
      if (cancelled) return;
      setJobs((current) =>
        current.map((item) => {
          const answer = answers.find((candidate) => candidate.id === item.job.job_id);
          // A job that has ended (e.g. the cancel's answer said so) stays ended: a poll sent
          // before that answer must not bring it back.
          if (!answer || !isJobActive(item.job.status)) return item;
          if (answer.job) return { ...item, job: answer.job, pollError: null, lost: false };
          const lost = answer.error instanceof ApiError && answer.error.status === 404;
          return { ...item, lost, pollError: errorMessage(answer.error) };
        }),
      );
      setPollRound((round) => round + 1);
    }, POLL_INTERVAL_MS);
    return () => {
      cancelled = true;
      window.clearTimeout(timer);
    };
  }, [trackedIds, pollRound]);

  // Tell the caller each time a job ends (including one that was already over when it was created).
  const endedCount = jobs.filter((tracked) => !isJobActive(tracked.job.status)).length;
  const endedBefore = useRef(0);
  const onFinishedRef = useRef(onFinished);
  onFinishedRef.current = onFinished;
  useEffect(() => {
    if (endedCount > endedBefore.current) onFinishedRef.current?.();
    endedBefore.current = endedCount;
  }, [endedCount]);

  /** Posts one job per request; the new batch replaces the jobs shown before. */
  const start = useCallback(
    async (requests: RefreshRequest[], origin: StartOrigin = 'table') => {
      setStartFailure(null);
      setStarting(true);
      const started: TrackedJob[] = [];
      try {
        for (const request of requests) {
          const job = await runProtected(() => api.startRefresh(request));
          started.push(tracked(job));
        }
        return true;
      } catch (error) {
        if (!isCancelled(error)) setStartFailure({ error, origin });
        return false;
      } finally {
        // Jobs that did start are tracked even when a later one of the batch failed to start.
        if (started.length > 0) {
          endedBefore.current = 0;
          setJobs(started);
        }
        setStarting(false);
      }
    },
    [runProtected],
  );

  const update = useCallback((jobId: string, change: (item: TrackedJob) => TrackedJob) => {
    setJobs((current) => current.map((item) => (item.job.job_id === jobId ? change(item) : item)));
  }, []);

  /** Asks the backend to stop a job; polling shows it as cancelled once it has stopped. */
  const cancel = useCallback(
    async (jobId: string) => {
      update(jobId, (item) => ({ ...item, cancelling: true, cancelError: null }));
      try {
        const job = await runProtected(() => api.cancelRefresh(jobId));
        update(jobId, (item) => ({ ...item, job, pollError: null }));
      } catch (error) {
        if (isCancelled(error)) update(jobId, (item) => ({ ...item, cancelling: false }));
        else if (error instanceof ApiError && error.status === 404) {
          update(jobId, (item) => ({ ...item, cancelling: false, lost: true }));
        } else update(jobId, (item) => ({ ...item, cancelling: false, cancelError: errorMessage(error) }));
      }
    },
    [runProtected, update],
  );

  /** Resumes an interrupted job (its backend stopped); polling follows it again. */
  const resume = useCallback(
    async (jobId: string) => {
      update(jobId, (item) => ({ ...item, resuming: true, resumeError: null }));
      try {
        const job = await runProtected(() => api.resumeRefresh(jobId));
        update(jobId, (item) => ({ ...item, job, resuming: false, pollError: null }));
      } catch (error) {
        update(jobId, (item) => ({
          ...item,
          resuming: false,
          resumeError: isCancelled(error) ? null : errorMessage(error),
        }));
      }
    },
    [runProtected, update],
  );

  const dismiss = useCallback(() => {
    setJobs([]);
    setStartFailure(null);
  }, []);

  return {
    jobs,
    start,
    cancel,
    resume,
    starting,
    startError: startFailure?.error ?? null,
    startErrorOrigin: startFailure?.origin ?? null,
    dismiss,
    active: starting || jobs.some(isTracking),
  };
}
