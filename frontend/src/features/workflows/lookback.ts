// The workflow form's default lookback: long enough that the strategy's slowest window fills and
// leaves room for signals, so a first run with the defaults shows some.
import type { BarSize, Strategy } from '../../api/models';

/** Bars one regular session (6.5 h) gives at each bar size; a week holds five, a month about 21. */
const BARS_PER_SESSION: Record<BarSize, number> = {
  '5s': 4680,
  '30s': 780,
  '1m': 390,
  '2m': 195,
  '3m': 130,
  '5m': 78,
  '10m': 39,
  '15m': 26,
  '20m': 20,
  '30m': 13,
  '1h': 7,
  '2h': 4,
  '4h': 2,
  '1d': 1,
  '1w': 1 / 5,
  '1mo': 1 / 21,
};

/** One window of bars to warm the slowest indicator up, three more in which it can signal. */
const WINDOWS_WANTED = 4;
/** Room for the holidays of a long range, beyond the weekends. */
const HOLIDAY_SLACK_DAYS = 5;
/** The API's default, kept for a strategy without a window. */
const PLAIN_LOOKBACK_DAYS = 30;
/** The most days the API accepts. */
const MAX_LOOKBACK_DAYS = 3650;

/**
 * The strategy's slowest window in bars: its largest whole-number parameter (the strategies'
 * windows: bars in an average, bars in the RSI), from the form's values where they are valid.
 */
export function slowestWindow(strategy: Strategy, values: Record<string, string> = {}): number {
  const windows = strategy.parameters
    .filter((parameter) => parameter.type === 'int')
    .map((parameter) => {
      const value = Number(values[parameter.name]);
      return Number.isInteger(value) && value > 0 ? value : parameter.default;
    });
  return Math.max(0, ...windows);
}

/** Calendar days back that hold `WINDOWS_WANTED` windows of bars, in whole tens of days. */
export function defaultLookbackDays(window: number, dataType: BarSize): number {
  if (window <= 0) return PLAIN_LOOKBACK_DAYS;
  const sessions = Math.ceil((WINDOWS_WANTED * window) / BARS_PER_SESSION[dataType]);
  const days = Math.ceil((sessions * 7) / 5) + HOLIDAY_SLACK_DAYS;
  return Math.min(MAX_LOOKBACK_DAYS, Math.ceil(days / 10) * 10);
}
