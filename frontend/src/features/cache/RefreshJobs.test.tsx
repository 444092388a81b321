import { act, render, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import type { RefreshJob, RefreshResult } from '../../api/models';
import { getStoredToken } from '../../api/token';
import { App } from '../../app/App';
import {
  fakeApi,
  makeConfig,
  makeSeries,
  makeStats,
  reply,
  STOCK_IDENTITY,
  type FakeReply,
  type RecordedCall,
} from '../../test/fakeApi';

type JobOverrides = Partial<Omit<RefreshJob, 'request'>> & { request?: Partial<RefreshJob['request']> };

function job({ request, ...overrides }: JobOverrides): RefreshJob {
  return {
    job_id: 'job-1',
    status: 'queued',
    created_at: '2025-11-28T14:30:00Z',
    finished_at: null,
    progress: { done: 0, total: 1 },
    results: [],
    estimate: { requests: 1, duration_s: 10 },
    ...overrides,
    request: {
      symbols: ['NVDA'],
      data_type: '1d',
      exchange: 'NASDAQ',
      days_back: 365,
      force: false,
      start: '2024-11-28T00:00:00Z',
      end: '2025-11-28T14:30:00Z',
      sec_type: 'STK',
      currency: 'USD',
      expiry: null,
      what_to_show: 'TRADES',
      use_rth: true,
      ...request,
    },
  };
}

/** One symbol's outcome of a job over a stock's daily bars. */
function result(overrides: Partial<RefreshResult> & Pick<RefreshResult, 'symbol' | 'status'>): RefreshResult {
  return {
    data_type: '1d',
    exchange: 'NASDAQ',
    ...STOCK_IDENTITY,
    bars_fetched: 0,
    bars_cached: 0,
    error: null,
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
        results: [result({ symbol: 'NVDA', status: 'ok', bars_fetched: 21, bars_cached: 21 })],
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

  it('shows a job whose backend stopped as interrupted, and resumes it with the Resume button', async () => {
    const polls = heldJobPolls();
    const { backend, user } = setup({
      'POST /api/market-data/cache/refresh': reply(202, job({ status: 'running' })),
      'GET /api/market-data/cache/refresh/job-1': polls.route,
      'POST /api/market-data/cache/refresh/job-1/resume': reply(202, job({ status: 'queued' })),
    });

    await user.click(await screen.findByTestId('refresh-button-NVDA-1d'));
    const panel = await screen.findByTestId('job-status');
    expect(within(panel).queryByTestId('job-resume')).toBeNull();

    await advance(1000);
    await polls.answer(job({ status: 'interrupted' }));
    expect(within(panel).getByTestId('job-state')).toHaveTextContent('interrupted');
    expect(within(panel).getByTestId('job-interrupted')).toHaveTextContent('Resume fetches only what is still missing');
    expect(within(panel).queryByTestId('job-cancel')).toBeNull();

    await user.click(within(panel).getByTestId('job-resume'));
    await waitFor(() => expect(backend.callsTo('POST', '/api/market-data/cache/refresh/job-1/resume')).toHaveLength(1));
    await waitFor(() => expect(within(panel).getByTestId('job-state')).toHaveTextContent('queued'));
    expect(within(panel).queryByTestId('job-resume')).toBeNull();

    // Resumed, it is polled again until it ends.
    await advance(1000);
    await polls.answer(
      job({
        status: 'completed',
        progress: { done: 1, total: 1 },
        finished_at: '2025-11-28T14:31:00Z',
        results: [result({ symbol: 'NVDA', status: 'ok', bars_fetched: 3, bars_cached: 21 })],
      }),
    );
    expect(within(panel).getByTestId('job-state')).toHaveTextContent('completed');
    expect(panel).toHaveTextContent('3 bars fetched, 21 cached');
  });

  it('shows the error of each failed symbol in plain words', async () => {
    const polls = heldJobPolls();
    const request: JobOverrides['request'] = { symbols: ['NVDA', 'TSLA'], data_type: '1d' };
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
          result({ symbol: 'NVDA', status: 'ok', bars_fetched: 5, bars_cached: 5 }),
          result({
            symbol: 'TSLA',
            status: 'error',
            error: { code: 'gateway_unavailable', detail: 'IB Gateway at 127.0.0.1:4002 is not reachable', status_code: 503 },
          }),
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

describe('cancelling a job', () => {
  const request: JobOverrides['request'] = { symbols: ['NVDA', 'TSLA'], data_type: '1d' };
  const estimate = { requests: 83, duration_s: 830 };
  const cancelledJob = job({
    status: 'cancelled',
    request,
    estimate,
    progress: { done: 2, total: 2 },
    finished_at: '2025-11-28T14:31:00Z',
    results: [
      result({ symbol: 'NVDA', status: 'ok', bars_fetched: 21, bars_cached: 21 }),
      result({ symbol: 'TSLA', status: 'cancelled', bars_fetched: 7, bars_cached: 9 }),
    ],
  });

  it('shows the plan, cancels a running job with the token, then shows it and its symbols as cancelled', async () => {
    sessionStorage.setItem('market-data-cache.api-token', 'tok');
    const { backend, user } = setup(
      {
        'POST /api/market-data/cache/refresh': reply(
          202,
          job({ status: 'running', request, estimate, progress: { done: 1, total: 2 } }),
        ),
        'GET /api/market-data/cache/refresh/job-1': () => new Promise<FakeReply>(() => {}),
        'DELETE /api/market-data/cache/refresh/job-1': cancelledJob,
      },
      makeConfig({ api_token_required: true }),
    );
    await user.click(await screen.findByTestId('refresh-button-NVDA-1d'));
    const panel = await screen.findByTestId('job-status');
    expect(within(panel).getByTestId('job-estimate')).toHaveTextContent('~83 IBKR requests, ~14 min at the pacing budget');
    const statsBefore = backend.callsTo('GET', '/api/market-data/cache/stats').length;

    await user.click(within(panel).getByRole('button', { name: 'Cancel refresh of NVDA, TSLA · 1d' }));

    expect(await within(panel).findByText('cancelled', { selector: '[data-testid="job-state"]' })).toBeInTheDocument();
    const [cancel] = backend.callsTo('DELETE', '/api/market-data/cache/refresh/job-1');
    expect(cancel.headers.Authorization).toBe('Bearer tok');
    const results = within(panel).getAllByRole('listitem');
    expect(results[0]).toHaveTextContent('21 bars fetched, 21 cached');
    expect(results[1]).toHaveTextContent('cancelled');
    expect(results[1]).toHaveTextContent('Cancelled: 7 bars fetched before it stopped, 9 cached');
    expect(within(panel).queryByTestId('job-cancel')).not.toBeInTheDocument();
    // The bars the job stored before it stopped show in the table, and refreshing is possible again.
    await waitFor(() => expect(backend.callsTo('GET', '/api/market-data/cache/stats').length).toBeGreaterThan(statsBefore));
    expect(screen.getByTestId('refresh-button-TSLA-1d')).toBeEnabled();
  });

  it('waits for a job that is still stopping, then shows it as cancelled', async () => {
    const polls = heldJobPolls();
    const running = job({ status: 'running', request, progress: { done: 0, total: 2 } });
    const { backend, user } = setup({
      'POST /api/market-data/cache/refresh': reply(202, running),
      'GET /api/market-data/cache/refresh/job-1': polls.route,
      'DELETE /api/market-data/cache/refresh/job-1': running,
    });
    await user.click(await screen.findByTestId('refresh-button-NVDA-1d'));
    const panel = await screen.findByTestId('job-status');
    await user.click(within(panel).getByTestId('job-cancel'));

    await waitFor(() => expect(backend.callsTo('DELETE', '/api/market-data/cache/refresh/job-1')).toHaveLength(1));
    expect(within(panel).getByTestId('job-cancel')).toHaveTextContent('Cancelling…');
    expect(within(panel).getByTestId('job-cancel')).toBeDisabled();
    expect(within(panel).getByTestId('job-state')).toHaveTextContent('running');

    await advance(1000);
    await polls.answer(cancelledJob);
    expect(within(panel).getByTestId('job-state')).toHaveTextContent('cancelled');
    expect(within(panel).queryByTestId('job-cancel')).not.toBeInTheDocument();
  });

  it('asks for the token when the cancel is refused with 401, then cancels with it', async () => {
    let attempts = 0;
    const { backend, user } = setup({
      'POST /api/market-data/cache/refresh': reply(202, job({ status: 'running', request })),
      'GET /api/market-data/cache/refresh/job-1': () => new Promise<FakeReply>(() => {}),
      'DELETE /api/market-data/cache/refresh/job-1': () =>
        ++attempts === 1
          ? { status: 401, body: { code: 'unauthorized', detail: 'Missing bearer token' } }
          : { status: 200, body: cancelledJob },
    });
    await user.click(await screen.findByTestId('refresh-button-NVDA-1d'));
    await user.click(within(await screen.findByTestId('job-status')).getByTestId('job-cancel'));

    const dialog = await screen.findByRole('dialog', { name: 'API token required' });
    expect(dialog).toHaveTextContent('The backend asked for an API token (Missing bearer token)');
    await user.type(within(dialog).getByLabelText('API token'), 'tok-2');
    await user.keyboard('{Enter}');

    expect(await screen.findByText('cancelled', { selector: '[data-testid="job-state"]' })).toBeInTheDocument();
    const deletes = backend.callsTo('DELETE', '/api/market-data/cache/refresh/job-1');
    expect(deletes.map((call) => call.headers.Authorization)).toEqual([undefined, 'Bearer tok-2']);
  });

  it('says why a cancel was not accepted and lets the user try again', async () => {
    const { user } = setup({
      'POST /api/market-data/cache/refresh': reply(202, job({ status: 'running', request })),
      'GET /api/market-data/cache/refresh/job-1': () => new Promise<FakeReply>(() => {}),
      'DELETE /api/market-data/cache/refresh/job-1': reply(503, {
        code: 'database_unavailable',
        detail: 'The database did not answer; try again when it is back.',
      }),
    });
    await user.click(await screen.findByTestId('refresh-button-NVDA-1d'));
    const panel = await screen.findByTestId('job-status');
    await user.click(within(panel).getByTestId('job-cancel'));
    expect(await within(panel).findByRole('alert')).toHaveTextContent(
      'The job was not cancelled: The database did not answer; try again when it is back.',
    );
    expect(within(panel).getByTestId('job-cancel')).toBeEnabled();
    expect(within(panel).getByTestId('job-state')).toHaveTextContent('running');
  });
});

describe('request budget', () => {
  const refused = reply(422, {
    code: 'request_budget_exceeded',
    detail: 'This refresh needs 125550 IBKR historical requests, over the limit of 1440.',
    estimate: { requests: 125_550, duration_s: 1_255_500, ceiling: 1440 },
  });

  it('explains a refused request next to the form, with the estimate, and suggests a smaller one', async () => {
    const { user } = setup({ 'POST /api/market-data/cache/refresh': refused });
    await screen.findByTestId('series-table');
    const form = screen.getByRole('form', { name: 'Add symbols to the cache' });
    await user.type(within(form).getByLabelText('Symbols (comma-separated)'), 'aapl');
    await user.selectOptions(within(form).getByLabelText('Data type'), '1m');
    await user.clear(within(form).getByLabelText('Days back'));
    await user.type(within(form).getByLabelText('Days back'), '3650');
    await user.click(within(form).getByRole('button', { name: 'Add to cache' }));

    const alert = await within(form).findByRole('alert');
    expect(alert).toHaveTextContent('This refresh needs 125550 IBKR historical requests, over the limit of 1440.');
    expect(within(alert).getByTestId('budget-estimate')).toHaveTextContent(
      "It would send about 125,550 IBKR requests, which take about 349 h at IBKR's pacing budget; the limit is 1,440 requests.",
    );
    expect(alert).toHaveTextContent('Ask for a shorter range (fewer days back), fewer symbols or a larger bar size.');
    expect(within(form).getByLabelText('Symbols (comma-separated)')).toHaveAccessibleDescription(/125,550 IBKR requests/);
    // Nothing started, so there is no job panel.
    expect(screen.queryByTestId('job-status')).not.toBeInTheDocument();
  });

  it('explains a refused refresh of a table row in the job panel', async () => {
    const { user } = setup({ 'POST /api/market-data/cache/refresh': refused });
    await user.click(await screen.findByTestId('refresh-button-NVDA-1d'));
    const panel = await screen.findByTestId('job-status');
    expect(within(panel).getByTestId('budget-estimate')).toHaveTextContent('the limit is 1,440 requests');
    expect(within(screen.getByRole('form', { name: 'Add symbols to the cache' })).queryByRole('alert')).toBeNull();
  });
});
