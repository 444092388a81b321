import { useEffect, useState } from 'react';

// Hash routing (`#/cache`, `#/workflows/12`): the backend serves one index.html at `/`, so the
// route never reaches the server and reloads and deep links work without server support.

export type PageName = 'cache' | 'workflows' | 'status';

export interface Route {
  page: PageName;
  /** Path segments after the page, e.g. the execution id in `#/workflows/12`. */
  params: string[];
}

const PAGES: PageName[] = ['cache', 'workflows', 'status'];

export function parseHash(hash: string): Route {
  const segments = hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  const [first, ...params] = segments;
  const page = PAGES.find((name) => name === first);
  return page ? { page, params } : { page: 'cache', params: [] };
}

export function hrefFor(page: PageName, ...params: (string | number)[]): string {
  return `#/${[page, ...params.map((part) => encodeURIComponent(String(part)))].join('/')}`;
}

export function useHashRoute(): Route {
  const [route, setRoute] = useState(() => parseHash(window.location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseHash(window.location.hash));
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return route;
}
