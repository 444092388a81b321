import { render, screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import type { Execution, ExecutionDetail, Strategy } from '../../api/models';
import { App } from '../../app/App';
import { fakeApi, makeConfig, reply } from '../../test/fakeApi';

const STRATEGIES: Strategy[] = [
  {
    name: 'sma_crossover',
    description: 'Buys when the fast average crosses above the slow one.',
    parameters: [
      { name: 'fast', type: 'int', default: 10, min: 2, max: 50, description: 'Fast window' },
      { name: 'slow', type: 'int', default: 30, min: 5, max: 200, description: 'Slow window' },
    ],
  },
  {
    name: 'rsi',
    description: 'RSI thresholds.',
    parameters: [{ name: 'threshold', type: 'float', default: 30.5, min: 0, max: 100, description: '' }],
  },
];

const EXECUTION: Execution = {
  id: 7,
  strategy: 'sma_crossover',
  status: 'completed',
  debug_mode: true,
  symbols: ['NVDA', 'TSLA'],
  data_type: '1d',
  parameters: { fast: 10, slow: 30 },
  result: {
    signals: { NVDA: [{ timestamp: '2025-11-20T00:00:00Z', signal: 'buy', price: 181.5 }] },
    per_symbol: { NVDA: { status: 'ok', bars: 252 }, TSLA: { status: 'ok', bars: 252 } },
  },
  error: null,
  started_at: '2025-11-28T14:30:00Z',
  finished_at: '2025-11-28T14:30:01.500Z',
};

const DETAIL: ExecutionDetail = {
  ...EXECUTION,
  logs: [
    {
      step: 'load_data',
      level: 'INFO',
      message: 'DEBUG MODE: reading NVDA 1d from the cache only',
      created_at: '2025-11-28T14:30:00Z',
    },
    { step: 'load_data', level: 'WARNING', message: 'TSLA served from stale cache', created_at: '2025-11-28T14:30:00.200Z' },
    { step: 'signals', level: 'ERROR', message: 'no signal for TSLA', created_at: '2025-11-28T14:30:01Z' },
  ],
  lineage: [
    {
      step: 'load_data',
      symbol: 'NVDA',
      data_type: '1d',
      range_start: '2024-11-28T00:00:00Z',
      range_end: '2025-11-28T00:00:00Z',
      metadata: {
        data_source: 'cache',
        debug_mode: true,
        cache_hit: 'hit',
        bar_count: 252,
        fetched_at_min: '2025-11-27T21:05:00Z',
        fetched_at_max: '2025-11-27T21:05:00Z',
        checksum: 'sha256:9f86d081884c7d659a2feaa0c55ad015',
      },
    },
    {
      step: 'load_data',
      symbol: 'TSLA',
      data_type: '1d',
      range_start: '2024-11-28T00:00:00Z',
      range_end: '2025-11-28T00:00:00Z',
      metadata: {
        data_source: 'stale_cache',
        debug_mode: true,
        cache_hit: 'stale',
        bar_count: 250,
        fetched_at_min: '2025-11-20T21:05:00Z',
        fetched_at_max: '2025-11-27T21:05:00Z',
        checksum: 'e3b0c44298fc1c149afbf4c8996fb924',
      },
    },
  ],
};

function setup(routes: Record<string, unknown> = {}, hash = '#/workflows') {
  window.location.hash = hash;
  const backend = fakeApi({
    'GET /api/config': makeConfig({ debug_mode: true }),
    'GET /api/strategies': STRATEGIES,
    'GET /api/workflows/executions': { data: [EXECUTION], count: 1 },
    'GET /api/workflows/executions/7': DETAIL,
    ...routes,
  });
  render(<App />);
  return { backend, user: userEvent.setup() };
}

describe('execution detail', () => {
  it('shows the logs with their levels and the lineage with the data source of each symbol', async () => {
    setup({}, '#/workflows/7');
    const lineage = await screen.findByTestId('execution-lineage');

    const nvda = within(lineage).getByTestId('lineage-row-NVDA');
    expect(nvda).toHaveTextContent('cache');
    expect(nvda).toHaveTextContent('hit');
    expect(nvda).toHaveTextContent('252');
    const checksum = within(nvda).getByText('sha256:9f86d…');
    expect(checksum).toHaveAttribute('title', 'sha256:9f86d081884c7d659a2feaa0c55ad015');

    const tsla = within(lineage).getByTestId('lineage-row-TSLA');
    expect(tsla).toHaveTextContent('stale cache');
    expect(tsla).toHaveTextContent('stale');
    expect(tsla).toHaveTextContent('2025-11-20 21:05 UTC – 2025-11-27 21:05 UTC');

    const logs = within(screen.getByTestId('execution-logs')).getAllByRole('listitem');
    expect(logs).toHaveLength(3);
    expect(logs[0]).toHaveTextContent('INFO');
    expect(logs[0]).toHaveTextContent('DEBUG MODE: reading NVDA 1d from the cache only');
    expect(logs[0]).toHaveTextContent('2025-11-28 14:30:00 UTC');
    expect(logs[1]).toHaveClass('log-warning');
    expect(logs[2]).toHaveClass('log-error');
    expect(logs[2]).toHaveTextContent('no signal for TSLA');
  });

  it('says when a run recorded no lineage or logs', async () => {
    setup({ 'GET /api/workflows/executions/7': { ...DETAIL, logs: [], lineage: [] } }, '#/workflows/7');
    expect(await screen.findByTestId('execution-lineage')).toHaveTextContent('No lineage was recorded.');
    expect(screen.getByTestId('execution-logs')).toHaveTextContent('No log lines.');
  });
});

describe('executions list', () => {
  it('lists runs with status, strategy, symbols, start time and a DEBUG MODE marker', async () => {
    const { user } = setup();
    const table = await screen.findByTestId('executions-table');
    const row = within(table).getByTestId('execution-row-7');
    expect(row).toHaveTextContent('completed');
    expect(row).toHaveTextContent('sma_crossover');
    expect(row).toHaveTextContent('NVDA, TSLA');
    expect(row).toHaveTextContent('2025-11-28 14:30 UTC');
    expect(row).toHaveTextContent('1.5 s');
    expect(within(row).getByText('DEBUG MODE')).toBeInTheDocument();

    await user.click(within(row).getByRole('link', { name: 'Open run 7' }));
    expect(await screen.findByTestId('execution-lineage')).toBeInTheDocument();
  });

  it('says when nothing has run yet', async () => {
    setup({ 'GET /api/workflows/executions': { data: [], count: 0 } });
    expect(await screen.findByText('No workflow has run yet.')).toBeInTheDocument();
  });
});

describe('run form', () => {
  it('renders the parameters of the chosen strategy with their defaults and posts them', async () => {
    const { backend, user } = setup({
      'POST /api/workflows/execute': { ...EXECUTION, id: 8 },
      'GET /api/workflows/executions/8': { ...DETAIL, id: 8 },
    });
    expect(await screen.findByLabelText('fast')).toHaveValue(10);
    expect(screen.getByLabelText('slow')).toHaveValue(30);
    expect(screen.getByLabelText('Symbols (comma-separated)')).toHaveValue('NVDA, TSLA');

    await user.clear(screen.getByLabelText('fast'));
    await user.type(screen.getByLabelText('fast'), '12');
    await user.click(screen.getByTestId('run-workflow'));

    expect(await screen.findByText(/Run #8 finished/)).toBeInTheDocument();
    expect(backend.callsTo('POST', '/api/workflows/execute')[0].body).toEqual({
      strategy: 'sma_crossover',
      symbols: ['NVDA', 'TSLA'],
      data_type: '1d',
      lookback_days: 180,
      params: { fast: 12, slow: 30 },
    });
    expect(window.location.hash).toBe('#/workflows/8');
  });

  it("starts the lookback at enough bars for the strategy's slowest window, and follows it until one is typed", async () => {
    const { user } = setup();
    const lookback = await screen.findByLabelText('Lookback days');
    // 30 days held 20 daily bars, fewer than the 31 the slow average of 30 needs for a signal.
    expect(lookback).toHaveValue(180);

    await user.clear(screen.getByLabelText('slow'));
    await user.type(screen.getByLabelText('slow'), '60');
    expect(lookback).toHaveValue(350);
    await user.selectOptions(screen.getByLabelText('Data type'), '1h');
    expect(lookback).toHaveValue(60);

    await user.clear(lookback);
    await user.type(lookback, '45');
    await user.clear(screen.getByLabelText('slow'));
    await user.type(screen.getByLabelText('slow'), '90');
    expect(lookback).toHaveValue(45);

    // A strategy without a window keeps the API's default.
    await user.selectOptions(screen.getByLabelText('Strategy'), 'rsi');
    expect(lookback).toHaveValue(30);
  });

  it('switches the parameters with the strategy', async () => {
    const { user } = setup();
    await user.selectOptions(await screen.findByLabelText('Strategy'), 'rsi');
    expect(screen.getByLabelText('threshold')).toHaveValue(30.5);
    expect(screen.queryByLabelText('fast')).not.toBeInTheDocument();
  });

  it('refuses a parameter outside its range without running', async () => {
    const { backend, user } = setup();
    await user.clear(await screen.findByLabelText('fast'));
    await user.type(screen.getByLabelText('fast'), '1');
    await user.click(screen.getByTestId('run-workflow'));
    expect(screen.getByRole('alert')).toHaveTextContent('fast must be at least 2.');
    expect(backend.callsTo('POST', '/api/workflows/execute')).toHaveLength(0);
  });

  it('shows a debug-mode cache miss with the command that fills the cache', async () => {
    const { user } = setup({
      'POST /api/workflows/execute': reply(409, {
        code: 'cache_miss_debug_mode',
        detail: 'TSLA 1d is missing 2025-11-01..2025-11-28 in the cache; run: make populate-cache SYMBOLS=TSLA',
      }),
    });
    await user.click(await screen.findByTestId('run-workflow'));
    const alert = await screen.findByRole('alert');
    expect(alert).toHaveTextContent('Not in the cache (DEBUG MODE)');
    expect(within(alert).getByText('make populate-cache SYMBOLS=TSLA')).toHaveClass('command');
  });
});

describe('runs that did not finish or are incomplete', () => {
  it.each([
    ['interrupted', 'The run was interrupted', 'The server stopped while this run was in progress'],
    ['cancelled', 'The run was cancelled', 'The caller went away before the run finished'],
  ] as const)('marks a %s run in the list and says why in its detail', async (status, title, explanation) => {
    const run = { ...EXECUTION, status, result: null, finished_at: null };
    setup(
      {
        'GET /api/workflows/executions': { data: [run], count: 1 },
        'GET /api/workflows/executions/7': { ...DETAIL, ...run },
      },
      '#/workflows/7',
    );
    expect(await screen.findByTestId('execution-status')).toHaveTextContent(status);
    expect(within(screen.getByTestId('execution-row-7')).getByText(status)).toBeInTheDocument();
    const notice = screen.getByTestId('execution-error');
    expect(notice).toHaveTextContent(title);
    expect(notice).toHaveTextContent(explanation);
  });

  it('shows a symbol served with missing bars as partial, with what is missing, as a warning', async () => {
    const result = {
      signals: {},
      per_symbol: {
        NVDA: {
          status: 'partial' as const,
          bars: 40,
          missing_bars: 3,
          missing_ranges: [
            ['2025-11-26T00:00:00Z', '2025-11-27T00:00:00Z'],
            ['2025-12-01T00:00:00Z', '2025-12-03T00:00:00Z'],
          ] as [string, string][],
        },
        TSLA: { status: 'ok' as const, bars: 41 },
      },
    };
    setup({ 'GET /api/workflows/executions/7': { ...DETAIL, status: 'partial', result } }, '#/workflows/7');
    const nvda = await screen.findByTestId('per-symbol-NVDA');
    const badge = within(nvda).getByText('partial');
    expect(badge).toHaveClass('badge-warn');
    expect(nvda).toHaveTextContent('NVDA 40 bars — ⚠ 3 expected bars missing: 2025-11-26, 2025-12-01 – 2025-12-02');
    expect(
      within(nvda)
        .getByText(/expected bars missing/)
        .closest('.warn-text'),
    ).not.toBeNull();
    expect(screen.getByTestId('per-symbol-TSLA')).not.toHaveTextContent('missing');
    expect(screen.getByTestId('execution-status')).toHaveClass('badge-warn');
  });

  it('explains a run refused for needing too many IBKR requests', async () => {
    const { user } = setup({
      'POST /api/workflows/execute': reply(422, {
        code: 'request_budget_exceeded',
        detail: 'This run needs 3000 IBKR historical requests, over the limit of 1440.',
        estimate: { requests: 3000, duration_s: 30_000, ceiling: 1440 },
      }),
    });
    await user.click(await screen.findByTestId('run-workflow'));
    const alert = await screen.findByRole('alert');
    expect(alert).toHaveTextContent('The workflow did not run');
    expect(within(alert).getByTestId('budget-estimate')).toHaveTextContent(
      "It would send about 3,000 IBKR requests, which take about 8.3 h at IBKR's pacing budget; the limit is 1,440 requests.",
    );
  });
});
