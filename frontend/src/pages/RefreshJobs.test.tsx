import { act, render, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { App } from '../App';
import type { RefreshJob } from '../api/types';
import { getStoredToken } from '../api/token';
import { fakeApi, makeConfig, makeSeries, makeStats, reply, type FakeReply, type RecordedCall } from '../test/fakeApi';

function job(overrides: Partial<RefreshJob>): RefreshJob {
  return {
    job_id: 'job-1',
    status: 'queued',
    created_at: '2025-11-28T14:30:00Z',
    finished_at: null,
    request: { symbols: ['NVDA'], data_type: '1d' },
    progress: { done: 0, total: 1 },
    results: [],
    ...overrides,
  };
}

const SERIES = [
  makeSeries({ symbol: 'NVDA', data_type: '1d' }),
  makeSeries({ symbol: 'TSLA', data_type: '1d' }),
  makeSeries({ symbol: 'TSLA', data_type: '5m' }),
];

async function advance(ms: number) {
  await act(async () => {
    await vi.advanceTimersByTimeAsync(ms);
  });
}

// The clock is fake but also moves with real time (so Testing Library's waits work). Job polls
// are answered only when a test says so: what the panel shows can then not run ahead of the
// assertions, however slow the machine is.
beforeEach(() => {
  vi.useFakeTimers({ shouldAdvanceTime: true });
});

/** A job route whose polls stay pending until `answer` is called, in order. */
function heldJobPolls() {
  const pending: ((reply: FakeReply) => void)[] = [];
  let answered = 0;
  return {
    route: () => new Promise<FakeReply>((resolve) => pending.push(resolve)),
    async answer(body: RefreshJob) {
      const index = answered++;
      await waitFor(() => expect(pending.length).toBeGreaterThan(index));
      await act(async () => pending[index]({ status: 200, body }));
    },
  };
}

function setup(routes: Record<string, unknown>, config = makeConfig()) {
  const backend = fakeApi({
    'GET /api/config': config,
    'GET /api/market-data/cache/stats': makeStats(SERIES),
    ...routes,
  });
  render(<App />);
  const user = userEvent.setup({ advanceTimers: vi.advanceTimersByTime });
  return { backend, user };
}

describe('refresh job', () => {
  it('posts the series, shows progress from each poll, then the per-symbol results, and stops polling', async () => {
    const polls = heldJobPolls();
    const { backend, user } = setup({
      'POST /api/market-data/cache/refresh': reply(202, job({ status: 'queued' })),
      'GET /api/market-data/cache/refresh/job-1': polls.route,
    });
    const pollCalls = () => backend.callsTo('GET', '/api/market-data/cache/refresh/job-1').length;

    await user.click(await screen.findByTestId('refresh-button-NVDA-1d'));
    const panel = await screen.findByTestId('job-status');
    expect(within(panel).getByTestId('job-state')).toHaveTextContent('queued');
    expect(within(panel).getByTestId('job-progress')).toHaveTextContent('0 / 1 done');
    expect(backend.callsTo('POST', '/api/market-data/cache/refresh')[0].body).toEqual({
      symbols: ['NVDA'],
      exchange: 'NASDAQ',
      data_type: '1d',
    });
    // While the job runs, other refreshes wait.
    expect(screen.getByTestId('refresh-button-TSLA-1d')).toBeDisabled();

    await advance(1000);
    expect(pollCalls()).toBe(1);
    await polls.answer(job({ status: 'running', progress: { done: 0, total: 1 } }));
    expect(within(panel).getByTestId('job-state')).toHaveTextContent('running');

    await advance(1000);
    expect(pollCalls()).toBe(2);
    await polls.answer(
      job({
        status: 'completed',
        progress: { done: 1, total: 1 },
        finished_at: '2025-11-28T14:30:03Z',
        results: [{ symbol: 'NVDA', data_type: '1d', status: 'ok', bars_fetched: 21, bars_cached: 21, error: null }],
      }),
    );
    expect(within(panel).getByTestId('job-state')).toHaveTextContent('completed');
    expect(within(panel).getByTestId('job-progress')).toHaveTextContent('1 / 1 done');
    expect(panel).toHaveTextContent('21 bars fetched, 21 cached');
    expect(panel).toHaveTextContent('Finished 2025-11-28 14:30:03 UTC');

    // A finished job is not asked about again.
    await advance(5000);
    expect(pollCalls()).toBe(2);
    // The table is reloaded with what the job cached, and refreshing is possible again.
    await waitFor(() => expect(backend.callsTo('GET', '/api/market-data/cache/stats').length).toBeGreaterThanOrEqual(2));
    expect(screen.getByTestId('refresh-button-TSLA-1d')).toBeEnabled();
  });

  it('shows the error of each failed symbol in plain words', async () => {
    const polls = heldJobPolls();
    const request = { symbols: ['NVDA', 'TSLA'], data_type: '1d' };
    const { user } = setup({
      'POST /api/market-data/cache/refresh': reply(202, job({ status: 'running', request, progress: { done: 1, total: 2 } })),
      'GET /api/market-data/cache/refresh/job-1': polls.route,
    });

    await user.click(await screen.findByRole('checkbox', { name: 'Select NVDA 1d' }));
    await user.click(screen.getByRole('checkbox', { name: 'Select TSLA 1d' }));
    await user.click(screen.getByTestId('refresh-selected'));
    const panel = await screen.findByTestId('job-status');
    expect(within(panel).getByTestId('job-progress')).toHaveTextContent('1 / 2 done');

    await advance(1000);
    await polls.answer(
      job({
        status: 'partial',
        request,
        progress: { done: 2, total: 2 },
        results: [
          { symbol: 'NVDA', data_type: '1d', status: 'ok', bars_fetched: 5, bars_cached: 5, error: null },
          {
            symbol: 'TSLA',
            data_type: '1d',
            status: 'error',
            bars_fetched: 0,
            bars_cached: 0,
            error: { code: 'gateway_unavailable', detail: 'IB Gateway at 127.0.0.1:4002 is not reachable', status_code: 503 },
          },
        ],
      }),
    );
    expect(within(panel).getByTestId('job-state')).toHaveTextContent('partial');
    expect(within(panel).getByTestId('job-progress')).toHaveTextContent('2 / 2 done');
    expect(panel).toHaveTextContent('TSLA 1d');
    expect(panel).toHaveTextContent('IB Gateway at 127.0.0.1:4002 is not reachable');
  });

  it('refreshes selected series of different data types as one job per data type', async () => {
    const { backend, user } = setup({
      'POST /api/market-data/cache/refresh': (call: RecordedCall) => ({
        status: 202,
        body: job({
          job_id: `job-${(call.body as { data_type: string }).data_type}`,
          status: 'completed',
          progress: { done: 1, total: 1 },
        }),
      }),
    });
    await user.click(await screen.findByRole('checkbox', { name: 'Select all series shown' }));
    await user.click(screen.getByTestId('refresh-selected'));
    await screen.findByTestId('job-status');
    const bodies = backend.callsTo('POST', '/api/market-data/cache/refresh').map((call) => call.body);
    expect(bodies).toEqual([
      { symbols: ['NVDA', 'TSLA'], exchange: 'NASDAQ', data_type: '1d' },
      { symbols: ['TSLA'], exchange: 'NASDAQ', data_type: '5m' },
    ]);
  });

  it('adds symbols from the form', async () => {
    const { backend, user } = setup({
      'POST /api/market-data/cache/refresh': reply(202, job({ status: 'completed', progress: { done: 2, total: 2 } })),
    });
    await screen.findByTestId('series-table');
    await user.type(screen.getByLabelText('Symbols (comma-separated)'), 'aapl, msft');
    await user.selectOptions(
      within(screen.getByRole('form', { name: 'Add symbols to the cache' })).getByLabelText('Data type'),
      '1h',
    );
    await user.clear(screen.getByLabelText('Days back'));
    await user.type(screen.getByLabelText('Days back'), '10');
    await user.click(screen.getByRole('button', { name: 'Add to cache' }));
    await screen.findByTestId('job-status');
    expect(backend.callsTo('POST', '/api/market-data/cache/refresh')[0].body).toEqual({
      symbols: ['AAPL', 'MSFT'],
      data_type: '1h',
      days_back: 10,
      force: false,
    });
  });

  it('refuses an empty symbol list without calling the backend', async () => {
    const { backend, user } = setup({});
    await screen.findByTestId('series-table');
    await user.click(screen.getByRole('button', { name: 'Add to cache' }));
    expect(screen.getByRole('alert')).toHaveTextContent('Enter at least one symbol');
    expect(backend.callsTo('POST', '/api/market-data/cache/refresh')).toHaveLength(0);
  });

  it('shows why a refresh could not start', async () => {
    const { user } = setup({
      'POST /api/market-data/cache/refresh': reply(503, { code: 'gateway_unavailable', detail: 'IB Gateway is not connected' }),
    });
    await user.click(await screen.findByTestId('refresh-button-NVDA-1d'));
    const panel = await screen.findByTestId('job-status');
    expect(within(panel).getByRole('alert')).toHaveTextContent('IB Gateway is not connected');
  });
});

describe('API token', () => {
  it('asks for the token before the first refresh, stores it and sends it', async () => {
    const { backend, user } = setup(
      { 'POST /api/market-data/cache/refresh': reply(202, job({ status: 'completed', progress: { done: 1, total: 1 } })) },
      makeConfig({ api_token_required: true }),
    );
    await user.click(await screen.findByTestId('refresh-button-NVDA-1d'));
    const dialog = await screen.findByRole('dialog', { name: 'API token required' });
    expect(backend.callsTo('POST', '/api/market-data/cache/refresh')).toHaveLength(0);

    await user.type(within(dialog).getByLabelText('API token'), 'tok-1');
    await user.click(within(dialog).getByRole('button', { name: 'Use token' }));
    await screen.findByTestId('job-status');
    expect(backend.callsTo('POST', '/api/market-data/cache/refresh')[0].headers.Authorization).toBe('Bearer tok-1');
    expect(getStoredToken()).toBe('tok-1');
  });

  it('asks again, saying why, when the token is rejected, then retries with the new one', async () => {
    sessionStorage.setItem('market-data-cache.api-token', 'old');
    let attempts = 0;
    const { backend, user } = setup(
      {
        'POST /api/market-data/cache/refresh': () =>
          ++attempts === 1
            ? { status: 403, body: { code: 'forbidden', detail: 'Invalid token' } }
            : { status: 202, body: job({ status: 'completed', progress: { done: 1, total: 1 } }) },
      },
      makeConfig({ api_token_required: true }),
    );
    await user.click(await screen.findByTestId('refresh-button-NVDA-1d'));
    const dialog = await screen.findByRole('dialog', { name: 'API token required' });
    expect(dialog).toHaveTextContent('The API token was rejected (Invalid token)');

    await user.type(within(dialog).getByLabelText('API token'), 'new');
    await user.keyboard('{Enter}');
    await screen.findByTestId('job-status');
    const posts = backend.callsTo('POST', '/api/market-data/cache/refresh');
    expect(posts.map((call) => call.headers.Authorization)).toEqual(['Bearer old', 'Bearer new']);
  });

  it('drops the action when the token dialog is cancelled', async () => {
    const { backend, user } = setup({}, makeConfig({ api_token_required: true }));
    await user.click(await screen.findByTestId('refresh-button-NVDA-1d'));
    await screen.findByRole('dialog', { name: 'API token required' });
    await user.keyboard('{Escape}');
    expect(screen.queryByRole('dialog')).not.toBeInTheDocument();
    expect(backend.callsTo('POST', '/api/market-data/cache/refresh')).toHaveLength(0);
    expect(screen.queryByTestId('job-status')).not.toBeInTheDocument();
  });
});
