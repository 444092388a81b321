import { useCallback, useEffect, useRef, useState } from 'react';
import { api } from '../api/client';
import { ApiError, errorMessage } from '../api/errors';
import type { JobStatus, RefreshJob, RefreshRequest } from '../api/types';
import { isCancelled, useApiToken } from './useApiToken';

export const POLL_INTERVAL_MS = 1000;

export interface TrackedJob {
  job: RefreshJob;
  /** Last polling problem, shown next to the job; polling goes on unless the job is gone. */
  pollError: string | null;
  /** The backend no longer knows the job (e.g. it restarted): stop asking. */
  lost: boolean;
}

export function isJobActive(status: JobStatus): boolean {
  return status === 'queued' || status === 'running';
}

function isTracking(tracked: TrackedJob): boolean {
  return isJobActive(tracked.job.status) && !tracked.lost;
}

/**
 * Starts cache refresh jobs and polls each one every second until it is completed, partial or
 * failed. `onFinished` runs whenever a job ends, so the caller can reload what the job changed.
 */
export function useRefreshJobs(onFinished?: () => void) {
  const { runProtected } = useApiToken();
  const [jobs, setJobs] = useState<TrackedJob[]>([]);
  const [startError, setStartError] = useState<unknown>(null);
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
        current.map((tracked) => {
          const answer = answers.find((item) => item.id === tracked.job.job_id);
          if (!answer) return tracked;
          if (answer.job) return { job: answer.job, pollError: null, lost: false };
          const lost = answer.error instanceof ApiError && answer.error.status === 404;
          return { ...tracked, lost, pollError: errorMessage(answer.error) };
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
    async (requests: RefreshRequest[]) => {
      setStartError(null);
      setStarting(true);
      const started: TrackedJob[] = [];
      try {
        for (const request of requests) {
          const job = await runProtected(() => api.startRefresh(request));
          started.push({ job, pollError: null, lost: false });
        }
        return true;
      } catch (error) {
        if (!isCancelled(error)) setStartError(error);
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

  const dismiss = useCallback(() => {
    setJobs([]);
    setStartError(null);
  }, []);

  return {
    jobs,
    start,
    starting,
    startError,
    dismiss,
    active: starting || jobs.some(isTracking),
  };
}
