import { createContext, useContext, useEffect, type ReactNode } from 'react';
import { api } from '../api/client';
import type { Health } from '../api/types';
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
}

const HealthContext = createContext<HealthState>({ health: undefined, error: null, loading: true, reload: () => {} });

export function isDatabaseDown(health: Health | undefined): boolean {
  return health?.database === 'unreachable';
}

export function HealthProvider({ children }: { children: ReactNode }) {
  const { data, error, loading, reload } = useApiData(api.getHealth, 'health');
  const down = isDatabaseDown(data);

  useEffect(() => {
    const timer = window.setInterval(reload, down ? HEALTH_POLL_WHILE_DOWN_MS : HEALTH_POLL_MS);
    return () => window.clearInterval(timer);
  }, [reload, down]);

  return <HealthContext.Provider value={{ health: data, error, loading, reload }}>{children}</HealthContext.Provider>;
}

export function useHealth(): HealthState {
  return useContext(HealthContext);
}
