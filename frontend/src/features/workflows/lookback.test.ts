import { describe, expect, it } from 'vitest';
import type { Strategy } from '../../api/models';
import { defaultLookbackDays, slowestWindow } from './lookback';

const SMA: Strategy = {
  name: 'sma_crossover',
  description: '',
  parameters: [
    { name: 'fast', type: 'int', default: 10, min: 2, max: 200, description: 'bars in the fast moving average' },
    { name: 'slow', type: 'int', default: 30, min: 3, max: 400, description: 'bars in the slow moving average' },
  ],
};

const RSI: Strategy = {
  name: 'rsi_mean_reversion',
  description: '',
  parameters: [
    { name: 'period', type: 'int', default: 14, min: 2, max: 100, description: 'bars in the RSI' },
    { name: 'oversold', type: 'float', default: 30, min: 1, max: 50, description: 'RSI level below which to buy' },
    { name: 'overbought', type: 'float', default: 70, min: 50, max: 99, description: 'RSI level above which to sell' },
  ],
};

/** Sessions `days` calendar days hold at the least: whole weeks of five, less a holiday a month. */
function fewestSessions(days: number): number {
  return Math.floor(days / 7) * 5 - Math.ceil(days / 30);
}

describe('the slowest window of a strategy', () => {
  it('is its largest whole-number parameter, not a threshold', () => {
    expect(slowestWindow(SMA)).toBe(30);
    expect(slowestWindow(RSI)).toBe(14);
  });

  it('follows the values in the form, and their defaults where a value is not a window', () => {
    expect(slowestWindow(SMA, { fast: '10', slow: '60' })).toBe(60);
    expect(slowestWindow(SMA, { fast: '10', slow: '' })).toBe(30);
  });
});

describe('the default lookback', () => {
  it('holds the bars a strategy needs before its first signal three times over', () => {
    // The backend's minimum_bars: slow + 1 for the crossover, period + 2 for the RSI.
    for (const [strategy, needed] of [
      [SMA, 31],
      [RSI, 16],
    ] as const) {
      const days = defaultLookbackDays(slowestWindow(strategy), '1d');
      expect(fewestSessions(days)).toBeGreaterThanOrEqual(3 * needed);
    }
  });

  it('is 180 days of daily bars for the default crossover, where 30 gave 20 bars and no signal', () => {
    expect(defaultLookbackDays(30, '1d')).toBe(180);
    expect(defaultLookbackDays(14, '1d')).toBe(90);
  });

  it('is shorter for intraday bars, which hold many bars a day', () => {
    expect(defaultLookbackDays(30, '1h')).toBe(40);
    expect(defaultLookbackDays(30, '1m')).toBe(10);
  });

  it('stays within what the API accepts, and is 30 days for a strategy without a window', () => {
    expect(defaultLookbackDays(400 * 10, '1d')).toBe(3650);
    expect(defaultLookbackDays(0, '1d')).toBe(30);
  });
});
