import { describe, expect, it } from 'vitest';
import { fakeApi, reply } from '../test/fakeApi';
import { api } from './client';
import { ApiError, describeDetail } from './errors';
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
