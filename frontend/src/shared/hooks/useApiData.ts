import { useCallback, useEffect, useState } from 'react';

export interface ApiData<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
}

/**
 * Loads data with `load` whenever `key` changes and on `reload()`. A reload keeps the data shown
 * until the new answer arrives, so tables don't flash; a new key starts empty, so data of one
 * series is never shown under the name of another.
 */
export function useApiData<T>(load: () => Promise<T>, key: string): ApiData<T> {
  const [state, setState] = useState<{ key: string; data?: T; error: unknown; loading: boolean }>({
    key,
    error: null,
    loading: true,
  });
  const [version, setVersion] = useState(0);

  useEffect(() => {
    let current = true;
    setState((previous) => ({
      key,
      data: previous.key === key ? previous.data : undefined,
      error: null,
      loading: true,
    }));
    load().then(
      (data) => current && setState({ key, data, error: null, loading: false }),
      (error: unknown) => current && setState((previous) => ({ ...previous, key, error, loading: false })),
    );
    return () => {
      current = false;
    };
    // `load` is a new closure on each render; `key` says when what it loads has changed.
  }, [key, version]);

  const reload = useCallback(() => setVersion((value) => value + 1), []);
  const fresh = state.key === key;
  return {
    data: fresh ? state.data : undefined,
    error: fresh ? state.error : null,
    loading: fresh ? state.loading : true,
    reload,
  };
}
