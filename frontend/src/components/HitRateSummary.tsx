import type { CacheStats } from '../api/types';
import { formatInteger, formatPercent } from '../format';

/** Overall cache effectiveness: the share of lookups answered from the cache. */
export function HitRateSummary({ stats }: { stats: CacheStats }) {
  const lookups = stats.hits + stats.misses + stats.partial_hits + stats.stale_serves;
  return (
    <div className="kpis">
      <div className="kpi kpi-main">
        <span className="kpi-label">Hit rate</span>
        <span className="kpi-value" data-testid="hit-rate">
          {formatPercent(stats.hit_rate)}
        </span>
        <span className="kpi-note">{lookups ? `of ${formatInteger(lookups)} lookups` : 'no lookups yet'}</span>
      </div>
      <div className="kpi">
        <span className="kpi-label">Hits</span>
        <span className="kpi-value tone-good">{formatInteger(stats.hits)}</span>
      </div>
      <div className="kpi">
        <span className="kpi-label">Partial hits</span>
        <span className="kpi-value tone-warn">{formatInteger(stats.partial_hits)}</span>
      </div>
      <div className="kpi">
        <span className="kpi-label">Misses</span>
        <span className="kpi-value tone-bad">{formatInteger(stats.misses)}</span>
      </div>
      <div className="kpi">
        <span className="kpi-label">Stale serves</span>
        <span className="kpi-value tone-warn">{formatInteger(stats.stale_serves)}</span>
      </div>
    </div>
  );
}
