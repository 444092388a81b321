import type { AppConfig } from '../api/models';
import './banners.css';

/** Full-width and on every page, so nobody mistakes cached data for live data. */
export function DebugBanner({ config }: { config: AppConfig | undefined }) {
  if (!config?.debug_mode) return null;
  return (
    <div className="debug-banner" role="status" data-testid="debug-banner">
      <strong>DEBUG MODE</strong> — workflows read only from the cache; IBKR is never contacted
    </div>
  );
}
