import { useEffect, useId } from 'react';
import { ApiError } from '../../api/errors';
import type { SeriesStats } from '../../api/models';
import { formatBarTime, formatInteger, formatUtc } from '../../shared/format';
import { instrumentLabel, seriesName, seriesQuery, seriesVariant } from '../../shared/series';
import { Empty, ErrorNotice, Loading } from '../../shared/States';
import { StatusBadge } from '../../shared/StatusBadge';
import { BarsTable } from './BarsTable';
import { CandlestickChart } from './CandlestickChart';
import { SERIES_PAGE_LIMIT, useSeriesPages } from './useSeriesPages';

interface SeriesDetailProps {
  series: SeriesStats;
  dateFrom: string;
  dateTo: string;
  /** Bumped by the page when the cache changed (refresh finished, bars deleted). */
  version: number;
  onClose: () => void;
}

/** One series: chart and bars, limited to the date range of the filters, loaded a page at a time. */
export function SeriesDetail({ series, dateFrom, dateTo, version, onClose }: SeriesDetailProps) {
  const { symbol, data_type: dataType, exchange } = series;
  const summaryId = useId();
  // The whole identity goes with each request: two series of a symbol that differ only in
  // whatToShow or hours are different series, and the API opens exactly the one asked for.
  const { page, bars, total, fetchedFrom, fetchedTo, hasMore, loadMore, loadingMore, moreError, error, loading, reload } =
    useSeriesPages(symbol, {
      data_type: dataType,
      exchange,
      ...seriesQuery(series),
      date_from: dateFrom || undefined,
      date_to: dateTo || undefined,
    });

  useEffect(() => {
    if (version > 0) reload();
  }, [version, reload]);

  const label = seriesName(series);
  const notCached = error instanceof ApiError && (error.status === 404 || error.code === 'not_cached');
  const range = dateFrom || dateTo ? ` from ${dateFrom || 'the start'} to ${dateTo || 'now'} (UTC)` : '';

  return (
    <section className="card series-detail" aria-labelledby="series-detail-title">
      <div className="card-header">
        <h2 id="series-detail-title" className="card-title" data-testid="series-detail-title">
          {instrumentLabel(series)} <span className="muted">· {[dataType, exchange, ...seriesVariant(series)].join(' · ')}</span>
        </h2>
        <div className="card-header-actions">
          {page?.expired && <StatusBadge status="expired" label="has expired bars" />}
          <button type="button" className="button button-small button-ghost" onClick={onClose} aria-label={`Close ${label}`}>
            Close
          </button>
        </div>
      </div>
      {page && (
        <p id={summaryId} className="muted small series-summary" data-testid="series-summary">
          <span data-testid="bars-loaded">
            {formatInteger(bars.length)} of {formatInteger(total)} bars
          </span>
          {range}
          {bars.length > 0 &&
            `: ${formatBarTime(bars[0].timestamp, dataType)} → ${formatBarTime(bars[bars.length - 1].timestamp, dataType)}`}{' '}
          · fetched {formatUtc(fetchedFrom)} – {formatUtc(fetchedTo)}
        </p>
      )}
      {loading && !page && <Loading>Loading bars of {label}…</Loading>}
      {notCached && (
        <Empty>
          No bars of {label} are cached{range}.
        </Empty>
      )}
      {error != null && !notCached && <ErrorNotice error={error} title={`Could not load ${label}`} onRetry={reload} />}
      {page && bars.length === 0 && (
        <Empty>
          No bars of {label} are cached{range}.
        </Empty>
      )}
      {hasMore && (
        <div className="load-more">
          <button
            type="button"
            className="button button-small"
            data-testid="load-more-bars"
            onClick={() => void loadMore()}
            disabled={loadingMore}
            aria-describedby={summaryId}
          >
            {loadingMore ? 'Loading…' : 'Load more'}
          </button>
          {total > bars.length && (
            <span className="hint">Next {formatInteger(Math.min(SERIES_PAGE_LIMIT, total - bars.length))} bars</span>
          )}
        </div>
      )}
      {moreError != null && <ErrorNotice error={moreError} title={`Could not load more bars of ${label}`} />}
      {bars.length > 0 && (
        <>
          <CandlestickChart bars={bars} dataType={dataType} label={label} />
          <BarsTable bars={bars} dataType={dataType} label={label} />
        </>
      )}
    </section>
  );
}
