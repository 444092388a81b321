import { describe, expect, it } from 'vitest';
import { fakeApi, reply } from '../test/fakeApi';
import { api } from './client';
import { ApiError, budgetEstimate, describeDetail } from './errors';
import { storeToken } from './token';

async function failure(promise: Promise<unknown>): Promise<ApiError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(ApiError);
    return error as ApiError;
  }
  throw new Error('expected the request to fail');
}

describe('error messages', () => {
  it('lists each invalid field with its message for a 422', async () => {
    fakeApi({
      'POST /api/market-data/cache/refresh': reply(422, {
        code: 'validation_error',
        detail: [
          { loc: ['body', 'symbols'], msg: 'Field required', type: 'missing' },
          { loc: ['body', 'days_back'], msg: 'Input should be greater than 0', type: 'greater_than' },
        ],
      }),
    });
    const error = await failure(api.startRefresh({ symbols: [] }));
    expect(error.status).toBe(422);
    expect(error.code).toBe('validation_error');
    expect(error.message).toBe('symbols: Field required; days_back: Input should be greater than 0');
  });

  it('passes a string detail through, keeping the populate command of a debug-mode miss', async () => {
    const detail = 'NVDA 1d is not cached for 2025-11-01..2025-11-28; run: make populate-cache SYMBOLS=NVDA';
    fakeApi({ 'POST /api/workflows/execute': reply(409, { code: 'cache_miss_debug_mode', detail }) });
    const error = await failure(
      api.executeWorkflow({ strategy: 'sma', symbols: ['NVDA'], data_type: '1d', lookback_days: 30, params: {} }),
    );
    expect(error.code).toBe('cache_miss_debug_mode');
    expect(error.message).toBe(detail);
  });

  it('explains the status when the body is not JSON', async () => {
    fakeApi({ 'GET /api/market-data/cache/stats': () => ({ status: 503, body: undefined }) });
    const error = await failure(api.getCacheStats());
    expect(error.message).toBe('The IBKR gateway is unavailable.');
  });

  it('says the server cannot be reached when fetch itself fails', async () => {
    const { fetch } = fakeApi({});
    fetch.mockRejectedValueOnce(new TypeError('Failed to fetch'));
    const error = await failure(api.getConfig());
    expect(error.status).toBe(0);
    expect(error.message).toMatch(/could not reach the server/i);
  });

  it('flags 401 and 403 as token problems', async () => {
    fakeApi({ 'DELETE /api/market-data/cache': reply(401, { code: 'unauthorized', detail: 'Missing bearer token' }) });
    const error = await failure(api.clearCache({ symbol: 'NVDA' }));
    expect(error.isAuthError).toBe(true);
    expect(error.message).toBe('Missing bearer token');
  });

  it('describes object details by their message', () => {
    expect(describeDetail({ message: 'Pacing violation', retry_after: 10 })).toBe('Pacing violation');
    expect(describeDetail([{ loc: ['query', 'limit'], msg: 'too big' }])).toBe('limit: too big');
    expect(describeDetail([{ loc: ['body', 'symbols', 0], msg: 'bad symbol' }])).toBe('symbols[0]: bad symbol');
  });

  it('names the field of the backend’s own field errors', () => {
    expect(
      describeDetail([
        { field: 'what_to_show', message: 'IBKR has no TRADES series for CASH; use one of MIDPOINT, BID, ASK, BID_ASK' },
      ]),
    ).toBe('what_to_show: IBKR has no TRADES series for CASH; use one of MIDPOINT, BID, ASK, BID_ASK');
    expect(describeDetail([{ field: 'query.expiry', message: 'a future needs its expiry' }])).toBe(
      'expiry: a future needs its expiry',
    );
    expect(describeDetail([{ field: 'symbols.1', message: 'bad symbol' }])).toBe('symbols[1]: bad symbol');
  });
});

describe('token header', () => {
  it('sends the stored token with refresh, and the request as JSON', async () => {
    storeToken('s3cret');
    const backend = fakeApi({ 'POST /api/market-data/cache/refresh': reply(202, { job_id: 'j1', status: 'queued' }) });
    await api.startRefresh({ symbols: ['NVDA'], data_type: '1d' });
    const [call] = backend.callsTo('POST', '/api/market-data/cache/refresh');
    expect(call.headers.Authorization).toBe('Bearer s3cret');
    expect(call.query.get('wait')).toBe('false');
    expect(call.body).toEqual({ symbols: ['NVDA'], data_type: '1d' });
  });

  it('sends the stored token with delete but not with reads', async () => {
    storeToken('s3cret');
    const backend = fakeApi({
      'DELETE /api/market-data/cache': { deleted: 3 },
      'GET /api/market-data/cache/stats': { series: [] },
    });
    await api.clearCache({ symbol: 'NVDA' });
    await api.getCacheStats();
    expect(backend.callsTo('DELETE', '/api/market-data/cache')[0].headers.Authorization).toBe('Bearer s3cret');
    expect(backend.callsTo('GET', '/api/market-data/cache/stats')[0].headers.Authorization).toBeUndefined();
  });

  it('sends no Authorization header when no token is stored', async () => {
    const backend = fakeApi({ 'POST /api/market-data/cache/refresh': reply(202, { job_id: 'j1' }) });
    await api.startRefresh({ symbols: ['NVDA'] });
    expect(backend.calls[0].headers.Authorization).toBeUndefined();
  });
});

describe('clearing the cache', () => {
  it('asks for all=true only when there is no filter', async () => {
    const backend = fakeApi({ 'DELETE /api/market-data/cache': { deleted: 0 } });
    await api.clearCache({});
    await api.clearCache({ symbol: 'NVDA', data_type: '1d' });
    const [everything, filtered] = backend.callsTo('DELETE', '/api/market-data/cache');
    expect(everything.query.get('all')).toBe('true');
    expect(filtered.query.get('all')).toBeNull();
    expect(filtered.query.get('symbol')).toBe('NVDA');
    expect(filtered.query.get('data_type')).toBe('1d');
  });
});

describe('hardened backend answers', () => {
  it('reads a 503 from /api/health as the answer that the database is unavailable', async () => {
    fakeApi({
      'GET /api/health': reply(503, { status: 'unavailable', database: 'unreachable', code: 'database_unavailable' }),
    });
    expect(await api.getHealth()).toEqual({ status: 'unavailable', database: 'unreachable', code: 'database_unavailable' });
  });

  it('still fails /api/health on a 503 that is not a health answer', async () => {
    fakeApi({ 'GET /api/health': () => ({ status: 503, body: undefined }) });
    expect((await failure(api.getHealth())).status).toBe(503);
  });

  it('names an unavailable database even when the 503 has no detail', async () => {
    fakeApi({ 'GET /api/market-data/cache/stats': reply(503, { code: 'database_unavailable' }) });
    expect((await failure(api.getCacheStats())).message).toBe('The backend cannot reach its database.');
  });

  it('cancels a job with DELETE and the stored token', async () => {
    storeToken('s3cret');
    const backend = fakeApi({ 'DELETE /api/market-data/cache/refresh/job%201': { job_id: 'job 1', status: 'cancelled' } });
    expect(await api.cancelRefresh('job 1')).toMatchObject({ status: 'cancelled' });
    expect(backend.callsTo('DELETE', '/api/market-data/cache/refresh/job%201')[0].headers.Authorization).toBe('Bearer s3cret');
  });

  it('keeps the estimate of a request refused for its cost', async () => {
    const estimate = { requests: 125_550, duration_s: 1_255_500, ceiling: 1440 };
    fakeApi({
      'POST /api/market-data/cache/refresh': reply(422, { code: 'request_budget_exceeded', detail: 'too much', estimate }),
    });
    const error = await failure(api.startRefresh({ symbols: ['NVDA'] }));
    expect(error.message).toBe('too much');
    expect(budgetEstimate(error)).toEqual(estimate);
    expect(budgetEstimate(new ApiError(422, 'validation_error', 'bad'))).toBeNull();
  });

  it('sends the paging of a series', async () => {
    const backend = fakeApi({ 'GET /api/market-data/cache/NVDA': { bars: [] } });
    await api.getCachedSeries('NVDA', { data_type: '1m' }, { limit: 10_000, cursor: 'abc' });
    const [call] = backend.callsTo('GET', '/api/market-data/cache/NVDA');
    expect(call.query.get('limit')).toBe('10000');
    expect(call.query.get('cursor')).toBe('abc');
    expect(call.query.get('data_type')).toBe('1m');
  });
});
