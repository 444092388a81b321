// The API token lives in sessionStorage: it survives reloads of the tab but not closing it, and is
// never written anywhere else.
const TOKEN_KEY = 'market-data-cache.api-token';

export function getStoredToken(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null; // storage can be disabled by the browser; then the user is asked each time
  }
}

export function storeToken(token: string): void {
  try {
    sessionStorage.setItem(TOKEN_KEY, token);
  } catch {
    /* see getStoredToken */
  }
}

export function clearStoredToken(): void {
  try {
    sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    /* see getStoredToken */
  }
}
