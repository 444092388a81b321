import { useMemo, useState } from 'react';
import { api } from '../../api/client';
import type { BarFilters, RefreshRequest, SeriesStats } from '../../api/models';
import { ConfirmDialog } from '../../shared/ConfirmDialog';
import { formatInteger } from '../../shared/format';
import { useApiData } from '../../shared/hooks/useApiData';
import { isCancelled, useApiToken } from '../../shared/hooks/useApiToken';
import { useConfig } from '../../shared/hooks/useConfig';
import { useReloadOnRecovery } from '../../shared/hooks/useHealth';
import { ASSET_CLASS_LABELS, identityOf, refreshFields, seriesKey } from '../../shared/series';
import { Empty, ErrorNotice, Loading, SuccessNotice } from '../../shared/States';
import { AddSymbolsForm } from './AddSymbolsForm';
import { RefreshJobsPanel } from './RefreshJobsPanel';
import { SeriesDetail } from './SeriesDetail';
import { hasAnyFilter, NO_FILTERS, SeriesFilters, type CacheFilters } from './SeriesFilters';
import { SeriesTable } from './SeriesTable';
import { useRefreshJobs } from './useRefreshJobs';
import './cache.css';

function matchesFilters(series: SeriesStats, filters: CacheFilters): boolean {
  const symbol = filters.symbol.trim().toUpperCase();
  const { secType, whatToShow, useRth } = identityOf(series);
  return (
    (!symbol || series.symbol === symbol) &&
    (!filters.dataType || series.data_type === filters.dataType) &&
    (!filters.secType || secType === filters.secType) &&
    (!filters.whatToShow || whatToShow === filters.whatToShow) &&
    (!filters.hours || useRth === (filters.hours === 'rth'))
  );
}

/** The API filters for deleting what the page's filters describe. */
function toBarFilters(filters: CacheFilters): BarFilters {
  return {
    symbol: filters.symbol.trim().toUpperCase() || undefined,
    data_type: filters.dataType || undefined,
    sec_type: filters.secType || undefined,
    what_to_show: filters.whatToShow || undefined,
    use_rth: filters.hours ? filters.hours === 'rth' : undefined,
    // Plain dates: the API reads them as UTC days, and a date_to covers its whole day.
    date_from: filters.dateFrom || undefined,
    date_to: filters.dateTo || undefined,
  };
}

function describeScope(filters: CacheFilters): string {
  if (!hasAnyFilter(filters)) return 'every cached bar of every symbol and data type';
  const parts = [
    filters.symbol.trim() && `symbol ${filters.symbol.trim().toUpperCase()}`,
    filters.secType && `asset class ${ASSET_CLASS_LABELS[filters.secType]}`,
    filters.dataType && `data type ${filters.dataType}`,
    filters.whatToShow && `what to show ${filters.whatToShow}`,
    filters.hours && (filters.hours === 'rth' ? 'regular hours' : 'all hours'),
    filters.dateFrom && `from ${filters.dateFrom}`,
    filters.dateTo && `to ${filters.dateTo} (end of day, UTC)`,
  ].filter(Boolean);
  return `the cached bars with ${parts.join(', ')}`;
}

/**
 * One refresh job per series kind (exchange, data type, asset class, currency, expiry,
 * whatToShow, hours): a job request names one of each for all its symbols.
 */
export function groupRefreshRequests(series: SeriesStats[]): RefreshRequest[] {
  const groups = new Map<string, RefreshRequest>();
  for (const item of series) {
    const key = seriesKey({ ...item, symbol: '' });
    const group = groups.get(key) ?? {
      symbols: [],
      exchange: item.exchange,
      data_type: item.data_type,
      ...refreshFields(item),
    };
    if (!group.symbols.includes(item.symbol)) group.symbols.push(item.symbol);
    groups.set(key, group);
  }
  return Array.from(groups.values());
}

export function CachePage() {
  const { config } = useConfig();
  const { runProtected } = useApiToken();
  const stats = useApiData(api.getCacheStats, 'cache-stats');
  const [filters, setFilters] = useState<CacheFilters>(NO_FILTERS);
  const [selectedKey, setSelectedKey] = useState<string | null>(null);
  const [checkedKeys, setCheckedKeys] = useState<Set<string>>(new Set());
  const [detailVersion, setDetailVersion] = useState(0);
  const [confirmingClear, setConfirmingClear] = useState(false);
  const [clearing, setClearing] = useState(false);
  const [clearError, setClearError] = useState<unknown>(null);
  const [deletedCount, setDeletedCount] = useState<number | null>(null);

  const cacheChanged = () => {
    stats.reload();
    setDetailVersion((version) => version + 1);
  };
  const refresh = useRefreshJobs(cacheChanged);
  useReloadOnRecovery(cacheChanged);

  // The stats also list series whose bars were deleted (their lookup counts live on): not cached.
  const allSeries = useMemo(() => (stats.data?.series ?? []).filter((series) => series.bar_count > 0), [stats.data]);
  const visibleSeries = useMemo(() => allSeries.filter((series) => matchesFilters(series, filters)), [allSeries, filters]);
  const knownSymbols = useMemo(() => Array.from(new Set(allSeries.map((series) => series.symbol))).sort(), [allSeries]);
  const selectedSeries = allSeries.find((series) => seriesKey(series) === selectedKey) ?? null;
  const checkedVisible = visibleSeries.filter((series) => checkedKeys.has(seriesKey(series)));
  const totalBars = allSeries.reduce((sum, series) => sum + series.bar_count, 0);

  function toggleChecked(key: string) {
    setCheckedKeys((current) => {
      const next = new Set(current);
      if (next.has(key)) next.delete(key);
      else next.add(key);
      return next;
    });
  }

  function toggleAll(checked: boolean) {
    setCheckedKeys(checked ? new Set(visibleSeries.map(seriesKey)) : new Set());
  }

  async function clearCache() {
    setClearing(true);
    setClearError(null);
    try {
      const { deleted } = await runProtected(() => api.clearCache(toBarFilters(filters)));
      setDeletedCount(deleted);
      setConfirmingClear(false);
      cacheChanged();
    } catch (error) {
      setConfirmingClear(false);
      if (!isCancelled(error)) setClearError(error);
    } finally {
      setClearing(false);
    }
  }

  return (
    <div className="page page-cache">
      <div className="page-head">
        <div>
          <h1>Market data cache</h1>
          <p className="muted">
            {stats.data
              ? `${formatInteger(allSeries.length)} series · ${formatInteger(totalBars)} bars cached`
              : 'Cached IBKR historical bars'}
          </p>
        </div>
        <button type="button" className="button" onClick={stats.reload} disabled={stats.loading}>
          {stats.loading ? 'Loading…' : 'Reload'}
        </button>
      </div>

      <div className="cache-layout">
        <section className="card cache-series" aria-labelledby="series-title">
          <h2 id="series-title" className="card-title">
            Cached series
          </h2>
          <SeriesFilters filters={filters} knownSymbols={knownSymbols} onChange={setFilters} />
          <div className="toolbar">
            <button
              type="button"
              className="button"
              data-testid="refresh-selected"
              disabled={checkedVisible.length === 0 || refresh.active}
              onClick={() => void refresh.start(groupRefreshRequests(checkedVisible))}
            >
              Refresh selected{checkedVisible.length ? ` (${checkedVisible.length})` : ''}
            </button>
            <button
              type="button"
              className="button button-danger-outline"
              data-testid="clear-cache"
              onClick={() => {
                setDeletedCount(null);
                setClearError(null);
                setConfirmingClear(true);
              }}
            >
              {hasAnyFilter(filters) ? 'Clear filtered…' : 'Clear cache…'}
            </button>
          </div>
          {deletedCount !== null && (
            <SuccessNotice onDismiss={() => setDeletedCount(null)}>
              <span data-testid="deleted-count">
                Deleted {formatInteger(deletedCount)} {deletedCount === 1 ? 'bar' : 'bars'}.
              </span>
            </SuccessNotice>
          )}
          {clearError != null && <ErrorNotice error={clearError} title="The cache was not cleared" />}

          {stats.loading && !stats.data && <Loading>Loading cached series…</Loading>}
          {stats.error != null && (
            <ErrorNotice error={stats.error} title="Could not load the cached series" onRetry={stats.reload} />
          )}
          {stats.data && allSeries.length === 0 && (
            <Empty>Nothing is cached yet. Add symbols with the form, or run `make populate-cache SYMBOLS=NVDA,TSLA`.</Empty>
          )}
          {allSeries.length > 0 && visibleSeries.length === 0 && <Empty>No cached series matches the filters.</Empty>}
          {visibleSeries.length > 0 && (
            <SeriesTable
              series={visibleSeries}
              selectedKey={selectedKey}
              checkedKeys={checkedKeys}
              onSelect={(series) => setSelectedKey(seriesKey(series))}
              onToggleChecked={toggleChecked}
              onToggleAll={toggleAll}
              onRefresh={(series) => void refresh.start(groupRefreshRequests([series]))}
              refreshDisabled={refresh.active}
            />
          )}
        </section>

        <aside className="cache-side" aria-label="Refresh">
          <RefreshJobsPanel
            jobs={refresh.jobs}
            startError={refresh.startErrorOrigin === 'form' ? null : refresh.startError}
            onCancel={(jobId) => void refresh.cancel(jobId)}
            onResume={(jobId) => void refresh.resume(jobId)}
            onDismiss={refresh.dismiss}
          />
          <AddSymbolsForm
            defaultExchange={config?.cache_exchange ?? ''}
            busy={refresh.active}
            error={refresh.startErrorOrigin === 'form' ? refresh.startError : null}
            onSubmit={(request) => void refresh.start([request], 'form')}
          />
        </aside>

        <div className="cache-detail">
          {selectedSeries ? (
            <SeriesDetail
              series={selectedSeries}
              dateFrom={filters.dateFrom}
              dateTo={filters.dateTo}
              version={detailVersion}
              onClose={() => setSelectedKey(null)}
            />
          ) : (
            allSeries.length > 0 && (
              <p className="muted hint-select">
                Select a series (click it, or focus it and press Enter) to see its chart and bars.
              </p>
            )
          )}
        </div>
      </div>

      {confirmingClear && (
        <ConfirmDialog
          title={hasAnyFilter(filters) ? 'Clear filtered bars?' : 'Clear the whole cache?'}
          confirmLabel={hasAnyFilter(filters) ? 'Delete these bars' : 'Delete everything'}
          busy={clearing}
          onConfirm={() => void clearCache()}
          onCancel={() => setConfirmingClear(false)}
        >
          <p>This deletes {describeScope(filters)}. It cannot be undone: deleted bars have to be fetched from IBKR again.</p>
        </ConfirmDialog>
      )}
    </div>
  );
}
