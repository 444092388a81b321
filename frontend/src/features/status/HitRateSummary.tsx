import type { CacheStats } from '../../api/models';
import { formatInteger, formatPercent } from '../../shared/format';
import type { Tone } from '../../shared/StatusBadge';

function Kpi({ label, value, tone }: { label: string; value: number; tone: Tone }) {
  return (
    <div className="kpi">
      <span className="kpi-label">{label}</span>
      <span className={`kpi-value tone-${tone}`}>{formatInteger(value)}</span>
    </div>
  );
}

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
      <Kpi label="Hits" value={stats.hits} tone="good" />
      <Kpi label="Partial hits" value={stats.partial_hits} tone="warn" />
      <Kpi label="Misses" value={stats.misses} tone="bad" />
      <Kpi label="Stale serves" value={stats.stale_serves} tone="warn" />
    </div>
  );
}
