import { createContext, useContext, useEffect, type ReactNode } from 'react';
import { api } from '../../api/client';
import type { AppConfig } from '../../api/models';
import { useApiData } from './useApiData';

// The backend's configuration decides the DEBUG MODE banner, the gateway indicator and whether
// changing actions need a token. It is polled so the header follows a restarted backend or a
// gateway that connects or drops.
const CONFIG_POLL_MS = 15_000;

interface ConfigState {
  config: AppConfig | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
}

const ConfigContext = createContext<ConfigState>({ config: undefined, error: null, loading: true, reload: () => {} });

export function ConfigProvider({ children }: { children: ReactNode }) {
  const { data, error, loading, reload } = useApiData(api.getConfig, 'config');

  useEffect(() => {
    const timer = window.setInterval(reload, CONFIG_POLL_MS);
    return () => window.clearInterval(timer);
  }, [reload]);

  return <ConfigContext.Provider value={{ config: data, error, loading, reload }}>{children}</ConfigContext.Provider>;
}

export function useConfig(): ConfigState {
  return useContext(ConfigContext);
}
