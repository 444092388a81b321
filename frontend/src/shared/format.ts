// Display formats. Every time is shown in UTC and says so, because traders compare bars across
// sessions and machines in different zones; daily bars are stamped at midnight UTC, so they show as dates.
import { isDailyOrLonger } from './series';

const EMPTY = '—';

function parse(iso: string | null | undefined): Date | null {
  if (!iso) return null;
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** `2025-11-28 14:30 UTC`, or with seconds `2025-11-28 14:30:05 UTC`. */
export function formatUtc(iso: string | null | undefined, withSeconds = false): string {
  const date = parse(iso);
  if (!date) return iso ? iso : EMPTY;
  const text = date.toISOString(); // always UTC: 2025-11-28T14:30:05.000Z
  return `${text.slice(0, 10)} ${text.slice(11, withSeconds ? 19 : 16)} UTC`;
}

/** `2025-11-28` */
export function formatDate(iso: string | null | undefined): string {
  const date = parse(iso);
  if (!date) return iso ? iso : EMPTY;
  return date.toISOString().slice(0, 10);
}

/** A bar's time: a date for daily, weekly and monthly bars, a UTC time (with seconds for second bars) otherwise. */
export function formatBarTime(iso: string | null | undefined, dataType: string): string {
  if (isDailyOrLonger(dataType)) return formatDate(iso);
  return formatUtc(iso, dataType.endsWith('s'));
}

/** A hit rate (a fraction from 0 to 1) as a percentage; "—" when there were no lookups. */
export function formatPercent(fraction: number | null | undefined): string {
  if (fraction === null || fraction === undefined || Number.isNaN(fraction)) return EMPTY;
  return `${(fraction * 100).toFixed(1)}%`;
}

const integerFormat = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

export function formatInteger(value: number | null | undefined): string {
  if (value === null || value === undefined || Number.isNaN(value)) return EMPTY;
  return integerFormat.format(value);
}

/** Prices with 2 decimals, more for sub-dollar prices where cents are too coarse. */
export function formatPrice(value: number | null | undefined): string {
  if (value === null || value === undefined || Number.isNaN(value)) return EMPTY;
  const digits = Math.abs(value) < 1 && value !== 0 ? 4 : 2;
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** First characters of a checksum; the full value stays available as a tooltip. */
export function shortChecksum(checksum: string | null | undefined, length = 12): string {
  if (!checksum) return EMPTY;
  return checksum.length > length ? `${checksum.slice(0, length)}…` : checksum;
}

/** Parses `nvda, tsla ,NVDA` into `['NVDA', 'TSLA']`. */
export function parseSymbols(text: string): string[] {
  const symbols = text
    .split(/[\s,]+/)
    .map((symbol) => symbol.trim().toUpperCase())
    .filter(Boolean);
  return Array.from(new Set(symbols));
}

/** A planned duration: `under 1 min`, `~25 min`, `~3.5 h`, `~349 h`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 60) return 'under 1 min';
  const minutes = seconds / 60;
  if (minutes < 90) return `~${Math.round(minutes)} min`;
  const hours = minutes / 60;
  return `~${hours < 10 ? hours.toFixed(1) : formatInteger(Math.round(hours))} h`;
}

/** `~83 IBKR requests, ~14 min at the pacing budget` */
export function formatEstimate(estimate: { requests: number; duration_s: number }): string {
  if (estimate.requests === 0) return 'No IBKR requests needed';
  const requests = `~${formatInteger(estimate.requests)} IBKR ${estimate.requests === 1 ? 'request' : 'requests'}`;
  return `${requests}, ${formatDuration(estimate.duration_s)} at the pacing budget`;
}
