import { api } from '../../api/client';
import { formatInteger, formatPercent, formatUtc } from '../../shared/format';
import { describeGateway, describeLastError } from '../../shared/GatewayStatus';
import { useApiData } from '../../shared/hooks/useApiData';
import { useConfig } from '../../shared/hooks/useConfig';
import { useHealth, useReloadOnRecovery } from '../../shared/hooks/useHealth';
import { SeriesIdentityCell } from '../../shared/SeriesIdentityCell';
import { seriesKey, seriesSlug } from '../../shared/series';
import { Empty, ErrorNotice, Loading } from '../../shared/States';
import { StatusBadge } from '../../shared/StatusBadge';
import { numeric, TableHead } from '../../shared/TableHead';
import { CorporateActionsCard } from './CorporateActions';
import { HitRateSummary } from './HitRateSummary';
import './status.css';

const GATEWAY_BADGES = {
  up: { status: 'connected', label: 'connected' },
  idle: { status: 'idle', label: 'not used (DEBUG MODE)' },
  down: { status: 'disconnected', label: 'disconnected' },
  unknown: { status: 'unknown', label: 'unknown' },
} as const;

export function StatusPage() {
  const { config } = useConfig();
  const stats = useApiData(api.getCacheStats, 'cache-stats');
  const actions = useApiData(() => api.getCorporateActions(), 'corporate-actions');
  const health = useHealth();
  const gateway = config ? describeGateway(config) : null;
  useReloadOnRecovery(stats.reload);
  const reload = () => {
    stats.reload();
    actions.reload();
    health.reload();
  };

  return (
    <div className="page page-status">
      <div className="page-head">
        <div>
          <h1>Cache status</h1>
          <p className="muted">
            {config
              ? `Cache ${config.cache_enabled ? 'enabled' : 'disabled'} · TTL ${config.cache_ttl_hours} h · exchange ${config.cache_exchange} · gateway ${config.ib_host}:${config.ib_port}`
              : 'Hit rates of the cache, overall and per series'}
          </p>
        </div>
        <div className="page-head-actions">
          {health.health && (
            <span className="health" data-testid="health">
              Service <StatusBadge status={health.health.status} /> · database <StatusBadge status={health.health.database} />
            </span>
          )}
          {health.error != null && <StatusBadge status="error" label="health unknown" />}
          {gateway && (
            <span className="health" data-testid="gateway-health">
              Gateway <StatusBadge {...GATEWAY_BADGES[gateway.state]} />
              {gateway.lastError && <span className="small"> {describeLastError(gateway.lastError)}</span>}
            </span>
          )}
          <button type="button" className="button" onClick={reload} disabled={stats.loading}>
            {stats.loading ? 'Loading…' : 'Reload'}
          </button>
        </div>
      </div>

      {stats.loading && !stats.data && <Loading>Loading cache statistics…</Loading>}
      {stats.error != null && (
        <ErrorNotice error={stats.error} title="Could not load the cache statistics" onRetry={stats.reload} />
      )}
      {stats.data && (
        <>
          <section className="card" aria-label="Overall">
            <HitRateSummary stats={stats.data} />
          </section>
          <section className="card" aria-labelledby="per-series-title">
            <h2 id="per-series-title" className="card-title">
              Per series
            </h2>
            {stats.data.series.length === 0 ? (
              <Empty>Nothing is cached yet.</Empty>
            ) : (
              <div className="table-scroll">
                <table className="data-table" data-testid="series-stats-table">
                  <TableHead
                    columns={[
                      'Symbol',
                      'Type',
                      ...['Hits', 'Misses', 'Partial', 'Stale', 'Hit rate'].map(numeric),
                      'Last hit',
                      'Last refresh',
                      'Last updated',
                      numeric('Expired bars'),
                    ]}
                  />
                  <tbody>
                    {stats.data.series.map((series) => (
                      <tr key={seriesKey(series)} data-testid={`stats-row-${seriesSlug(series)}`}>
                        <SeriesIdentityCell series={series} />
                        <td>{series.data_type}</td>
                        <td className="num">{formatInteger(series.hits)}</td>
                        <td className="num">{formatInteger(series.misses)}</td>
                        <td className="num">{formatInteger(series.partial_hits)}</td>
                        <td className="num">{formatInteger(series.stale_serves)}</td>
                        <td className="num strong" data-testid={`series-hit-rate-${seriesSlug(series)}`}>
                          {formatPercent(series.hit_rate)}
                        </td>
                        <td className="nowrap">{formatUtc(series.last_hit_at)}</td>
                        <td className="nowrap">{formatUtc(series.last_refresh_at)}</td>
                        <td className="nowrap">{formatUtc(series.last_updated)}</td>
                        <td className={`num ${series.expired_count ? 'tone-warn' : ''}`}>
                          {formatInteger(series.expired_count)}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </section>
        </>
      )}
      <CorporateActionsCard actions={actions} />
    </div>
  );
}
