import { createContext, useCallback, useContext, useRef, useState, type ReactNode } from 'react';
import { ApiError } from '../../api/errors';
import { clearStoredToken, getStoredToken, storeToken } from '../../api/token';
import { TokenDialog } from '../TokenDialog';
import { useConfig } from './useConfig';

/** Thrown when the user closes the token dialog: the action was dropped on purpose, not failed. */
export class ActionCancelled extends Error {
  constructor() {
    super('Cancelled.');
    this.name = 'ActionCancelled';
  }
}

export function isCancelled(error: unknown): boolean {
  return error instanceof ActionCancelled;
}

interface TokenContextValue {
  /**
   * Runs a changing action (refresh, delete, execute). When the backend needs a token and none is
   * stored, asks for it first; when the backend rejects the token (401/403), asks again with the
   * reason and retries.
   */
  runProtected: <T>(action: () => Promise<T>) => Promise<T>;
  hasToken: boolean;
  forgetToken: () => void;
  askToken: () => void;
}

const TokenContext = createContext<TokenContextValue | null>(null);

const FIRST_ASK = 'This backend requires an API token for changes to the cache. Enter it to continue.';

export function TokenProvider({ children }: { children: ReactNode }) {
  const { config } = useConfig();
  const [prompt, setPrompt] = useState<string | null>(null);
  const [hasToken, setHasToken] = useState(() => Boolean(getStoredToken()));
  const resolveRef = useRef<((token: string | null) => void) | null>(null);
  const tokenRequired = Boolean(config?.api_token_required);

  const requestToken = useCallback((message: string) => {
    resolveRef.current?.(null); // a second request replaces a pending one
    setPrompt(message);
    return new Promise<string | null>((resolve) => {
      resolveRef.current = resolve;
    });
  }, []);

  const finishPrompt = (token: string | null) => {
    if (token) {
      storeToken(token);
      setHasToken(true);
    }
    setPrompt(null);
    resolveRef.current?.(token);
    resolveRef.current = null;
  };

  const runProtected = useCallback(
    async <T,>(action: () => Promise<T>): Promise<T> => {
      if (tokenRequired && !getStoredToken()) {
        if (!(await requestToken(FIRST_ASK))) throw new ActionCancelled();
      }
      for (;;) {
        try {
          return await action();
        } catch (error) {
          if (!(error instanceof ApiError) || !error.isAuthError) throw error;
          clearStoredToken();
          setHasToken(false);
          const reason =
            error.status === 401
              ? `The backend asked for an API token (${error.message}).`
              : `The API token was rejected (${error.message}).`;
          if (!(await requestToken(`${reason} Enter the token to try again.`))) throw new ActionCancelled();
        }
      }
    },
    [tokenRequired, requestToken],
  );

  const forgetToken = useCallback(() => {
    clearStoredToken();
    setHasToken(false);
  }, []);

  const askToken = useCallback(() => {
    void requestToken('Enter the API token to use for changes to the cache.');
  }, [requestToken]);

  return (
    <TokenContext.Provider value={{ runProtected, hasToken, forgetToken, askToken }}>
      {children}
      {prompt !== null && <TokenDialog message={prompt} onSubmit={finishPrompt} onCancel={() => finishPrompt(null)} />}
    </TokenContext.Provider>
  );
}

export function useApiToken(): TokenContextValue {
  const value = useContext(TokenContext);
  if (!value) throw new Error('useApiToken must be used inside <TokenProvider>');
  return value;
}
