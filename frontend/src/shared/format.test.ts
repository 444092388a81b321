import { describe, expect, it } from 'vitest';
import { formatBarTime, formatDuration, formatEstimate, formatPercent, formatUtc, parseSymbols, shortChecksum } from './format';

describe('formatPercent (hit rates)', () => {
  it('shows a fraction as a percentage with one decimal', () => {
    expect(formatPercent(0.8532)).toBe('85.3%');
    expect(formatPercent(1)).toBe('100.0%');
    expect(formatPercent(0)).toBe('0.0%');
  });

  it('shows a dash when there were no lookups', () => {
    expect(formatPercent(null)).toBe('—');
    expect(formatPercent(undefined)).toBe('—');
  });
});

describe('times', () => {
  it('shows UTC explicitly, whatever the zone of the input', () => {
    expect(formatUtc('2025-11-28T14:30:00Z')).toBe('2025-11-28 14:30 UTC');
    expect(formatUtc('2025-11-28T09:30:00-05:00')).toBe('2025-11-28 14:30 UTC');
    expect(formatUtc('2025-11-28T14:30:05Z', true)).toBe('2025-11-28 14:30:05 UTC');
    expect(formatUtc(null)).toBe('—');
  });

  it('shows daily bars as dates and intraday bars as times', () => {
    expect(formatBarTime('2025-11-28T00:00:00Z', '1d')).toBe('2025-11-28');
    expect(formatBarTime('2025-11-28T14:30:00Z', '5m')).toBe('2025-11-28 14:30 UTC');
  });

  it('shows weekly and monthly bars as the date of their last session, second bars with seconds', () => {
    expect(formatBarTime('2025-11-28T00:00:00Z', '1w')).toBe('2025-11-28');
    expect(formatBarTime('2025-11-28T00:00:00Z', '1mo')).toBe('2025-11-28');
    expect(formatBarTime('2025-11-28T14:30:05Z', '5s')).toBe('2025-11-28 14:30:05 UTC');
    expect(formatBarTime('2025-11-28T14:30:30Z', '30s')).toBe('2025-11-28 14:30:30 UTC');
  });
});

describe('small helpers', () => {
  it('shortens checksums', () => {
    expect(shortChecksum('0123456789abcdef0123')).toBe('0123456789ab…');
    expect(shortChecksum('abc')).toBe('abc');
  });

  it('parses a symbol list into unique upper-case symbols', () => {
    expect(parseSymbols(' nvda, tsla ,NVDA,, aapl')).toEqual(['NVDA', 'TSLA', 'AAPL']);
  });
});

describe('request estimates', () => {
  it('says how many IBKR requests a job plans and how long they take at the pacing budget', () => {
    expect(formatEstimate({ requests: 83, duration_s: 830 })).toBe('~83 IBKR requests, ~14 min at the pacing budget');
    expect(formatEstimate({ requests: 1, duration_s: 10 })).toBe('~1 IBKR request, under 1 min at the pacing budget');
    expect(formatEstimate({ requests: 0, duration_s: 0 })).toBe('No IBKR requests needed');
  });

  it('shows long durations in hours', () => {
    expect(formatDuration(89 * 60)).toBe('~89 min');
    expect(formatDuration(3.5 * 3600)).toBe('~3.5 h');
    expect(formatDuration(1_255_500)).toBe('~349 h');
  });
});
