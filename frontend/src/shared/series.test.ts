import { describe, expect, it } from 'vitest';
import type { SeriesIdentity } from './series';
import { expiryProblem, jobLabel, refreshFields, seriesKey, seriesLabel, seriesName, seriesQuery, seriesSlug } from './series';

const ES_MIDPOINT_ALL_HOURS: SeriesIdentity = {
  symbol: 'ES',
  exchange: 'CME',
  data_type: '1m',
  sec_type: 'FUT',
  currency: 'USD',
  expiry: '202503',
  what_to_show: 'MIDPOINT',
  use_rth: false,
};

describe('series labels', () => {
  it('name a stock TRADES series in regular hours by its symbol alone, as before', () => {
    const nvda = { symbol: 'NVDA', exchange: 'NASDAQ', data_type: '1d' };
    expect(seriesLabel(nvda)).toBe('NVDA');
    expect(seriesName(nvda)).toBe('NVDA 1d');
    expect(seriesName({ ...nvda, sec_type: 'STK', currency: 'USD', expiry: null, what_to_show: 'TRADES', use_rth: true })).toBe(
      'NVDA 1d',
    );
    expect(seriesSlug(nvda)).toBe('NVDA-1d');
  });

  it('name the contract, then what sets the series apart', () => {
    expect(seriesLabel(ES_MIDPOINT_ALL_HOURS)).toBe('ES 202503 FUT · MIDPOINT · all hours');
    expect(seriesName(ES_MIDPOINT_ALL_HOURS)).toBe('ES 202503 FUT 1m · MIDPOINT · all hours');
    expect(seriesSlug(ES_MIDPOINT_ALL_HOURS)).toBe('ES-202503-FUT-1m-MIDPOINT-all-hours');
    expect(seriesLabel({ symbol: 'EUR', sec_type: 'CASH', currency: 'USD', what_to_show: 'MIDPOINT' })).toBe(
      'EUR.USD CASH · MIDPOINT',
    );
    expect(seriesLabel({ symbol: 'USD', sec_type: 'CASH', currency: 'JPY', what_to_show: 'BID_ASK' })).toBe(
      'USD.JPY CASH · BID_ASK',
    );
    expect(seriesLabel({ symbol: 'BTC', sec_type: 'CRYPTO', what_to_show: 'AGGTRADES' })).toBe('BTC CRYPTO · AGGTRADES');
    expect(seriesLabel({ symbol: 'SPX', sec_type: 'IND' })).toBe('SPX IND');
    expect(seriesLabel({ symbol: 'SAP', currency: 'EUR' })).toBe('SAP EUR');
    expect(seriesLabel({ symbol: 'NVDA', use_rth: false })).toBe('NVDA · all hours');
  });

  it('name a refresh job by its symbols and their series', () => {
    expect(jobLabel(['NVDA', 'TSLA'], { data_type: '1d' })).toBe('NVDA, TSLA · 1d');
    expect(jobLabel(['ES', 'NQ'], { ...ES_MIDPOINT_ALL_HOURS })).toBe('ES, NQ 202503 FUT · 1m · MIDPOINT · all hours');
    expect(jobLabel(['EUR', 'USDJPY'], { sec_type: 'CASH', data_type: '1h', what_to_show: 'MIDPOINT' })).toBe(
      'EUR.USD, USDJPY CASH · 1h · MIDPOINT',
    );
  });
});

describe('series identity in requests', () => {
  it('keeps apart two series that differ only in whatToShow or hours', () => {
    const trades: SeriesIdentity = { ...ES_MIDPOINT_ALL_HOURS, what_to_show: 'TRADES' };
    const rth = { ...ES_MIDPOINT_ALL_HOURS, use_rth: true };
    expect(new Set([seriesKey(ES_MIDPOINT_ALL_HOURS), seriesKey(trades), seriesKey(rth)]).size).toBe(3);
    expect(seriesQuery(trades).what_to_show).toBe('TRADES');
    expect(seriesQuery(rth).use_rth).toBe(true);
  });

  it('query the series route with every field, a stock with its defaults', () => {
    expect(seriesQuery(ES_MIDPOINT_ALL_HOURS)).toEqual({
      sec_type: 'FUT',
      currency: 'USD',
      expiry: '202503',
      what_to_show: 'MIDPOINT',
      use_rth: false,
    });
    expect(seriesQuery({})).toEqual({ sec_type: 'STK', currency: 'USD', what_to_show: 'TRADES', use_rth: true });
  });

  it('send in a refresh only what differs from a US stock, so a stock request stays as it was', () => {
    expect(refreshFields({ sec_type: 'STK', currency: 'USD', expiry: '', what_to_show: 'TRADES', use_rth: true })).toEqual({});
    expect(refreshFields(ES_MIDPOINT_ALL_HOURS)).toEqual({
      sec_type: 'FUT',
      expiry: '202503',
      what_to_show: 'MIDPOINT',
      use_rth: false,
    });
    expect(refreshFields({ sec_type: 'CASH', currency: 'JPY', what_to_show: 'MIDPOINT' })).toEqual({
      sec_type: 'CASH',
      currency: 'JPY',
      what_to_show: 'MIDPOINT',
    });
  });
});

describe('a future’s expiry', () => {
  it('is a contract month or a last trading day', () => {
    expect(expiryProblem('202503')).toBeNull();
    expect(expiryProblem(' 20250321 ')).toBeNull();
    expect(expiryProblem('')).toMatch(/needs its expiry.*YYYYMM.*Continuous future/);
    expect(expiryProblem('2025-03')).toMatch(/“2025-03” is not a contract month: use YYYYMM/);
    expect(expiryProblem('202513')).toMatch(/not a contract month/);
    expect(expiryProblem('20250332')).toMatch(/not a contract month/);
  });
});
