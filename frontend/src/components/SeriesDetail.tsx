import { useEffect } from 'react';
import { api } from '../api/client';
import { ApiError } from '../api/errors';
import type { SeriesStats } from '../api/types';
import { formatBarTime, formatInteger, formatUtc } from '../format';
import { useApiData } from '../hooks/useApiData';
import { BarsTable } from './BarsTable';
import { CandlestickChart } from './CandlestickChart';
import { Empty, ErrorNotice, Loading } from './States';
import { StatusBadge } from './StatusBadge';

interface SeriesDetailProps {
  series: SeriesStats;
  dateFrom: string;
  dateTo: string;
  /** Bumped by the page when the cache changed (refresh finished, bars deleted). */
  version: number;
  onClose: () => void;
}

/** One series: chart and bars, limited to the date range of the filters. */
export function SeriesDetail({ series, dateFrom, dateTo, version, onClose }: SeriesDetailProps) {
  const { symbol, data_type: dataType, exchange } = series;
  const { data, error, loading, reload } = useApiData(
    () =>
      api.getCachedSeries(symbol, {
        data_type: dataType,
        exchange,
        date_from: dateFrom || undefined,
        date_to: dateTo || undefined,
      }),
    `${symbol}|${exchange}|${dataType}|${dateFrom}|${dateTo}`,
  );

  useEffect(() => {
    if (version > 0) reload();
  }, [version, reload]);

  const label = `${symbol} ${dataType}`;
  const notCached = error instanceof ApiError && (error.status === 404 || error.code === 'not_cached');
  const range = dateFrom || dateTo ? ` from ${dateFrom || 'the start'} to ${dateTo || 'now'} (UTC)` : '';

  return (
    <section className="card series-detail" aria-labelledby="series-detail-title">
      <div className="card-header">
        <h2 id="series-detail-title" className="card-title">
          {symbol}{' '}
          <span className="muted">
            · {dataType} · {series.exchange}
          </span>
        </h2>
        <div className="card-header-actions">
          {data?.expired && <StatusBadge status="expired" label="has expired bars" />}
          <button type="button" className="button button-small button-ghost" onClick={onClose} aria-label={`Close ${label}`}>
            Close
          </button>
        </div>
      </div>
      {data && (
        <p className="muted small series-summary">
          {formatInteger(data.count)} bars{range}: {formatBarTime(data.first, dataType)} → {formatBarTime(data.last, dataType)} ·
          fetched {formatUtc(data.fetched_from)} – {formatUtc(data.fetched_to)}
        </p>
      )}
      {loading && !data && <Loading>Loading bars of {label}…</Loading>}
      {notCached && (
        <Empty>
          No bars of {label} are cached{range}.
        </Empty>
      )}
      {error != null && !notCached && <ErrorNotice error={error} title={`Could not load ${label}`} onRetry={reload} />}
      {data && data.bars.length === 0 && (
        <Empty>
          No bars of {label} are cached{range}.
        </Empty>
      )}
      {data && data.bars.length > 0 && (
        <>
          <CandlestickChart bars={data.bars} dataType={dataType} label={label} />
          <BarsTable bars={data.bars} dataType={dataType} />
        </>
      )}
    </section>
  );
}
