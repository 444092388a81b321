import { useCallback, useMemo, useState } from 'react';
import { api } from '../../api/client';
import type { BarFilters, CachedSeries, SeriesBar } from '../../api/models';
import { useApiData } from '../../shared/hooks/useApiData';

/** Bars per request: the API's default page, well under its maximum. */
export const SERIES_PAGE_LIMIT = 10_000;

/** Bars of several pages in time order, each timestamp once (pages may come in either direction). */
export function mergeBars(first: SeriesBar[], more: SeriesBar[]): SeriesBar[] {
  if (more.length === 0) return first;
  const byTime = new Map<number, SeriesBar>();
  for (const bar of [...first, ...more]) byTime.set(Date.parse(bar.timestamp), bar);
  return Array.from(byTime.entries())
    .sort(([a], [b]) => a - b)
    .map(([, bar]) => bar);
}

interface Appended {
  /** The first page these pages follow; a reload or a new range makes them stale. */
  base: CachedSeries;
  bars: SeriesBar[];
  nextCursor: string | null;
  fetchedFrom: string | null;
  fetchedTo: string | null;
}

function earliest(a: string | null, b: string | null): string | null {
  if (!a || !b) return a ?? b;
  return Date.parse(a) <= Date.parse(b) ? a : b;
}

function latest(a: string | null, b: string | null): string | null {
  if (!a || !b) return a ?? b;
  return Date.parse(a) >= Date.parse(b) ? a : b;
}

/**
 * One series, page by page: the first page loads with the range, `loadMore()` appends the page
 * after the last one loaded while the API gives a `next_cursor`.
 */
export function useSeriesPages(symbol: string, filters: Omit<BarFilters, 'symbol'>) {
  // Every filter, identity fields included, names a different first page.
  const key = JSON.stringify([symbol, filters]);
  const first = useApiData(() => api.getCachedSeries(symbol, filters, { limit: SERIES_PAGE_LIMIT }), key);
  const [appended, setAppended] = useState<Appended | null>(null);
  const [more, setMore] = useState<{ base: CachedSeries; loading: boolean; error: unknown } | null>(null);

  const page = first.data;
  const current = page && appended?.base === page ? appended : null;
  const moreState = page && more?.base === page ? more : null;
  const bars = useMemo(() => (page ? mergeBars(page.bars, current?.bars ?? []) : []), [page, current]);
  const nextCursor = current ? current.nextCursor : (page?.next_cursor ?? null);

  const loadMore = useCallback(async () => {
    if (!page || !nextCursor) return;
    setMore({ base: page, loading: true, error: null });
    try {
      const next = await api.getCachedSeries(symbol, filters, { limit: SERIES_PAGE_LIMIT, cursor: nextCursor });
      setAppended((previous) => {
        const before = previous?.base === page ? previous : null;
        return {
          base: page,
          bars: [...(before?.bars ?? []), ...next.bars],
          nextCursor: next.next_cursor,
          fetchedFrom: earliest(before?.fetchedFrom ?? null, next.fetched_from),
          fetchedTo: latest(before?.fetchedTo ?? null, next.fetched_to),
        };
      });
      setMore(null);
    } catch (error) {
      setMore({ base: page, loading: false, error });
    }
    // `filters` is a new object on each render; `key` says when it has changed.
  }, [page, nextCursor, symbol, key]);

  return {
    /** The first page: range facts (`expired`, `fetched_from`, ...) and `total`. */
    page,
    bars,
    /** Bars in the whole filtered range, over every page. */
    total: page?.total ?? 0,
    /** When the loaded bars were fetched, over every page loaded. */
    fetchedFrom: earliest(page?.fetched_from ?? null, current?.fetchedFrom ?? null),
    fetchedTo: latest(page?.fetched_to ?? null, current?.fetchedTo ?? null),
    hasMore: Boolean(nextCursor),
    loadMore,
    loadingMore: Boolean(moreState?.loading),
    moreError: moreState?.error ?? null,
    error: first.error,
    loading: first.loading,
    reload: first.reload,
  };
}
