import './StatusBadge.css';

// One colour language for every status in the app: green = good, amber = degraded or incomplete,
// blue = in progress, red = failed, grey = neutral (e.g. stopped on request).

export type Tone = 'good' | 'warn' | 'bad' | 'info' | 'neutral';

const TONES: Record<string, Tone> = {
  ok: 'good',
  completed: 'good',
  hit: 'good',
  cache: 'good',
  connected: 'good',
  partial: 'warn',
  stale: 'warn',
  stale_cache: 'warn',
  mixed: 'warn',
  expired: 'warn',
  degraded: 'warn',
  interrupted: 'warn',
  queued: 'info',
  pending: 'info',
  running: 'info',
  ibkr: 'info',
  failed: 'bad',
  error: 'bad',
  miss: 'bad',
  unreachable: 'bad',
  disconnected: 'bad',
  unavailable: 'bad',
  cancelled: 'neutral',
  idle: 'neutral',
};

export function toneOf(status: string): Tone {
  return TONES[status] ?? 'neutral';
}

interface StatusBadgeProps {
  status: string;
  /** Text to show instead of the status itself. */
  label?: string;
  tone?: Tone;
  testId?: string;
  /** Shown on hover: what the badge means. */
  title?: string;
}

export function StatusBadge({ status, label, tone, testId, title }: StatusBadgeProps) {
  return (
    <span className={`badge badge-${tone ?? toneOf(status)}`} data-testid={testId} title={title}>
      {label ?? status.replace(/_/g, ' ')}
    </span>
  );
}

/** Marks data produced or shown in DEBUG_MODE. */
export function DebugMarker() {
  return (
    <span className="badge badge-debug" title="Ran in DEBUG_MODE: data read only from the cache">
      DEBUG MODE
    </span>
  );
}
