import { describeDetail } from '../api/errors';
import { HEALTH_POLL_WHILE_DOWN_MS, isDatabaseDown, useHealth } from './hooks/useHealth';
import './banners.css';

/** On every page while /api/health says the database does not answer. */
export function DatabaseBanner() {
  const { health } = useHealth();
  if (!isDatabaseDown(health)) return null;
  const detail = describeDetail(health.detail);
  return (
    <div className="outage-banner" role="alert" data-testid="database-banner">
      <strong>Database unavailable</strong> — the backend cannot reach its database, so cached bars, refresh jobs and workflow
      runs can be neither read nor saved until it answers again{detail && ` (${detail})`}. Checking again every{' '}
      {HEALTH_POLL_WHILE_DOWN_MS / 1000} s.
    </div>
  );
}
