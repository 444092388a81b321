import { createContext, useContext, useEffect, useRef, useState, type ReactNode } from 'react';
import { api } from '../../api/client';
import type { Health, HealthUnavailable } from '../../api/models';
import { useApiData } from './useApiData';

// Readiness of the backend, polled for the whole app: while the database does not answer every
// page says so in one banner instead of showing tables that cannot load. While it is down the
// poll is quicker, so the banner goes soon after the database is back.
export const HEALTH_POLL_MS = 15_000;
export const HEALTH_POLL_WHILE_DOWN_MS = 5_000;

interface HealthState {
  health: Health | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
  /** How many times the database came back after being unavailable. */
  recoveries: number;
}

const HealthContext = createContext<HealthState>({
  health: undefined,
  error: null,
  loading: true,
  reload: () => {},
  recoveries: 0,
});

export function isDatabaseDown(health: Health | undefined): health is HealthUnavailable {
  return health?.database === 'unreachable';
}

export function HealthProvider({ children }: { children: ReactNode }) {
  const { data, error, loading, reload } = useApiData(api.getHealth, 'health');
  const down = isDatabaseDown(data);
  const [recoveries, setRecoveries] = useState(0);
  const wasDown = useRef(false);

  useEffect(() => {
    const timer = window.setInterval(reload, down ? HEALTH_POLL_WHILE_DOWN_MS : HEALTH_POLL_MS);
    return () => window.clearInterval(timer);
  }, [reload, down]);

  useEffect(() => {
    if (!data) return;
    if (wasDown.current && !down) setRecoveries((count) => count + 1);
    wasDown.current = down;
  }, [data, down]);

  return <HealthContext.Provider value={{ health: data, error, loading, reload, recoveries }}>{children}</HealthContext.Provider>;
}

/** Runs `reload` when the database answers again, so sections that failed while it was down fill in. */
export function useReloadOnRecovery(reload: () => void) {
  const { recoveries } = useHealth();
  const reloadRef = useRef(reload);
  reloadRef.current = reload;
  useEffect(() => {
    if (recoveries > 0) reloadRef.current();
  }, [recoveries]);
}

export function useHealth(): HealthState {
  return useContext(HealthContext);
}
