import type { AppConfig } from '../api/models';
import { formatUtc } from './format';
import './banners.css';
import './GatewayStatus.css';

export type GatewayState = 'up' | 'idle' | 'down' | 'unknown';

export interface GatewayView {
  state: GatewayState;
  label: string;
  /** `host:port` of the configured gateway. */
  where: string;
  /**
   * The latest failed connect or dropped link. The backend keeps it after a reconnect, so a brief
   * outage stays visible; never shown for a gateway that is idle on purpose.
   */
  lastError: { message: string; at: string | null } | null;
}

/** How the app shows the gateway, from /api/config. */
export function describeGateway(config: AppConfig): GatewayView {
  const gateway = config.gateway;
  const where = `${config.ib_host}:${config.ib_port}`;
  if (!gateway) return { state: 'unknown', label: 'Gateway unknown', where, lastError: null };
  const lastError = gateway.last_error ? { message: gateway.last_error, at: gateway.last_error_at ?? null } : null;
  if (gateway.connected) return { state: 'up', label: 'Gateway connected', where, lastError };
  // In DEBUG_MODE the backend deliberately stays off the gateway; that is not a fault.
  if (config.debug_mode) return { state: 'idle', label: 'Gateway not used in DEBUG MODE', where, lastError: null };
  return { state: 'down', label: 'Gateway disconnected', where, lastError };
}

/** `last error at 2025-11-28 14:30:05 UTC: connection refused` */
export function describeLastError(lastError: { message: string; at: string | null }): string {
  return lastError.at
    ? `last error at ${formatUtc(lastError.at, true)}: ${lastError.message}`
    : `last error: ${lastError.message}`;
}

export function GatewayIndicator({ config }: { config: AppConfig }) {
  const view = describeGateway(config);
  const title = `IBKR gateway at ${view.where}${view.lastError ? ` — ${describeLastError(view.lastError)}` : ''}`;
  return (
    <span
      className={`gateway gateway-${view.state}`}
      data-testid={view.state === 'unknown' ? undefined : 'gateway-status'}
      title={title}
    >
      <span className="dot" aria-hidden="true" /> {view.label}
    </span>
  );
}

/** Under the header on every page while a gateway that should be connected is not, with why. */
export function GatewayErrorBanner({ config }: { config: AppConfig | undefined }) {
  if (!config) return null;
  const view = describeGateway(config);
  if (view.state !== 'down' || !view.lastError) return null;
  return (
    <div className="outage-banner outage-banner-warn" role="status" data-testid="gateway-error">
      <strong>IBKR gateway not connected</strong> at {view.where} — {describeLastError(view.lastError)}. Cached bars can still be
      read; fetching from IBKR fails until the gateway is back.
    </div>
  );
}
