import { render, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { beforeEach, describe, expect, it } from 'vitest';
import type { CachedSeries, RefreshJob, SeriesBar, SeriesStats } from '../../api/models';
import { App } from '../../app/App';
import { fakeApi, makeConfig, makeSeries, makeStats, reply, type RecordedCall } from '../../test/fakeApi';
import { chartCalls, resetChartCalls } from '../../test/fakeChart';

// Series other than a US stock's TRADES in regular hours: what the form offers and sends, how
// tables, filters and the chart name them, and what the series requests ask for.

const NVDA = makeSeries({ symbol: 'NVDA', data_type: '1d', bar_count: 3 });
const ES_TRADES = makeSeries({
  symbol: 'ES',
  exchange: 'CME',
  data_type: '1m',
  sec_type: 'FUT',
  currency: 'USD',
  expiry: '202503',
  what_to_show: 'TRADES',
  use_rth: true,
  bar_count: 405,
  first: '2025-03-03T14:30:00Z',
});
const ES_MIDPOINT_ALL_HOURS: SeriesStats = { ...ES_TRADES, what_to_show: 'MIDPOINT', use_rth: false, bar_count: 1380 };
const EURUSD = makeSeries({
  symbol: 'EUR',
  exchange: 'IDEALPRO',
  data_type: '1h',
  sec_type: 'CASH',
  currency: 'USD',
  expiry: null,
  what_to_show: 'MIDPOINT',
  use_rth: true,
  bar_count: 120,
});
const SERIES = [NVDA, ES_TRADES, ES_MIDPOINT_ALL_HOURS, EURUSD];

function minuteBar(time: string, close: number, volume: number | null): SeriesBar {
  return {
    timestamp: time,
    open: close - 1,
    high: close + 1,
    low: close - 2,
    close,
    volume,
    wap: null,
    bar_count: null,
    is_final: true,
  };
}

function esPage(series: SeriesStats, bars: SeriesBar[]): CachedSeries {
  return {
    symbol: 'ES',
    exchange: 'CME',
    data_type: '1m',
    sec_type: 'FUT',
    currency: 'USD',
    expiry: '202503',
    what_to_show: series.what_to_show,
    use_rth: series.use_rth,
    con_id: 495512563,
    count: bars.length,
    first: bars[0].timestamp,
    last: bars[bars.length - 1].timestamp,
    fetched_from: '2025-03-04T00:00:00Z',
    fetched_to: '2025-03-04T00:00:00Z',
    expired: false,
    bars,
    next_cursor: null,
    total: bars.length,
  };
}

const MIDPOINT_BARS = [minuteBar('2025-03-03T23:00:00Z', 5850.25, null), minuteBar('2025-03-03T23:01:00Z', 5851.5, null)];
const TRADES_BARS = [minuteBar('2025-03-03T14:30:00Z', 5840, 1200), minuteBar('2025-03-03T14:31:00Z', 5841.25, 900)];

function queued(): RefreshJob {
  return {
    job_id: 'job-1',
    status: 'completed',
    created_at: '2025-03-04T00:00:00Z',
    finished_at: '2025-03-04T00:00:05Z',
    progress: { done: 1, total: 1 },
    results: [],
    estimate: { requests: 1, duration_s: 10 },
    request: {
      symbols: ['ES'],
      data_type: '1m',
      exchange: 'CME',
      days_back: 30,
      force: false,
      start: '2025-02-02T00:00:00Z',
      end: '2025-03-04T00:00:00Z',
      sec_type: 'FUT',
      currency: 'USD',
      expiry: '202503',
      what_to_show: 'TRADES',
      use_rth: true,
    },
  };
}

function renderCachePage(routes: Record<string, unknown> = {}) {
  const backend = fakeApi({
    'GET /api/config': makeConfig(),
    'GET /api/market-data/cache/stats': makeStats(SERIES),
    'GET /api/market-data/cache/ES': (call: RecordedCall) => ({
      body:
        call.query.get('what_to_show') === 'MIDPOINT'
          ? esPage(ES_MIDPOINT_ALL_HOURS, MIDPOINT_BARS)
          : esPage(ES_TRADES, TRADES_BARS),
    }),
    'POST /api/market-data/cache/refresh': reply(202, queued()),
    'DELETE /api/market-data/cache': { deleted: 7 },
    ...routes,
  });
  render(<App />);
  return { backend, user: userEvent.setup(), posts: () => backend.callsTo('POST', '/api/market-data/cache/refresh') };
}

const form = () => within(screen.getByRole('form', { name: 'Add symbols to the cache' }));
const filters = () => within(screen.getByRole('group', { name: 'Filters' }));
const optionsOf = (select: HTMLElement) =>
  within(select)
    .getAllByRole('option')
    .map((option) => option.textContent);

beforeEach(resetChartCalls);

describe('the add form', () => {
  it('starts on a stock, TRADES, USD and regular hours, and sends a stock request as before', async () => {
    const { user, posts } = renderCachePage();
    await screen.findByTestId('series-table');
    expect(form().getByLabelText('Asset class')).toHaveDisplayValue('Stock/ETF');
    expect(form().getByLabelText('What to show')).toHaveValue('TRADES');
    expect(form().getByLabelText('Currency')).toHaveValue('USD');
    expect(form().getByRole('radio', { name: 'Regular hours' })).toBeChecked();
    expect(form().queryByLabelText(/Expiry/)).not.toBeInTheDocument();

    await user.type(form().getByLabelText('Symbols (comma-separated)'), 'nvda');
    await user.click(form().getByRole('button', { name: 'Add to cache' }));
    await waitFor(() => expect(posts()).toHaveLength(1));
    expect(posts()[0].body).toEqual({ symbols: ['NVDA'], data_type: '1d', days_back: 30, force: false });
  });

  it('offers the whatToShow each asset class has, with its usual one chosen', async () => {
    const { user } = renderCachePage();
    await screen.findByTestId('series-table');
    const what = () => form().getByLabelText('What to show');
    const quotes = ['MIDPOINT', 'BID', 'ASK', 'BID_ASK'];
    const expected: [string, string[], string][] = [
      ['Stock/ETF', ['TRADES', ...quotes, 'ADJUSTED_LAST'], 'TRADES'],
      ['Index', ['TRADES'], 'TRADES'],
      ['Future', ['TRADES', ...quotes], 'TRADES'],
      ['Continuous future', ['TRADES', ...quotes], 'TRADES'],
      ['FX', quotes, 'MIDPOINT'],
      ['Crypto', ['AGGTRADES', ...quotes], 'AGGTRADES'],
    ];
    for (const [assetClass, options, chosen] of expected) {
      await user.selectOptions(form().getByLabelText('Asset class'), assetClass);
      expect(optionsOf(what())).toEqual(options);
      expect(what()).toHaveValue(chosen);
    }
  });

  it('keeps a whatToShow the next asset class also has', async () => {
    const { user } = renderCachePage();
    await screen.findByTestId('series-table');
    await user.selectOptions(form().getByLabelText('What to show'), 'BID_ASK');
    await user.selectOptions(form().getByLabelText('Asset class'), 'FX');
    expect(form().getByLabelText('What to show')).toHaveValue('BID_ASK');
    await user.selectOptions(form().getByLabelText('Asset class'), 'Index');
    expect(form().getByLabelText('What to show')).toHaveValue('TRADES');
  });

  it('offers regular or all hours for stocks and futures only', async () => {
    const { user } = renderCachePage();
    await screen.findByTestId('series-table');
    for (const [assetClass, shown] of [
      ['Stock/ETF', true],
      ['Index', false],
      ['Future', true],
      ['Continuous future', true],
      ['FX', false],
      ['Crypto', false],
    ] as const) {
      await user.selectOptions(form().getByLabelText('Asset class'), assetClass);
      expect(form().queryByRole('group', { name: 'Hours' }) !== null).toBe(shown);
    }
  });

  it('offers every bar size the cache stores', async () => {
    renderCachePage();
    await screen.findByTestId('series-table');
    expect(optionsOf(form().getByLabelText('Data type'))).toEqual([
      '5s',
      '30s',
      '1m',
      '2m',
      '3m',
      '5m',
      '10m',
      '15m',
      '20m',
      '30m',
      '1h',
      '2h',
      '4h',
      '1d',
      '1w',
      '1mo',
    ]);
  });

  it('asks a future for its expiry, says what it must look like, and sends nothing until it does', async () => {
    const { user, posts } = renderCachePage();
    await screen.findByTestId('series-table');
    expect(form().queryByLabelText('Expiry (YYYYMM or YYYYMMDD)')).not.toBeInTheDocument();
    await user.selectOptions(form().getByLabelText('Asset class'), 'Future');
    const expiry = form().getByLabelText('Expiry (YYYYMM or YYYYMMDD)');
    await user.type(form().getByLabelText('Symbols (comma-separated)'), 'es');

    await user.click(form().getByRole('button', { name: 'Add to cache' }));
    expect(form().getByRole('alert')).toHaveTextContent('A future needs its expiry');
    expect(form().getByRole('alert')).toHaveTextContent('For the rolling front contract choose Continuous future.');
    expect(expiry).toHaveAttribute('aria-invalid', 'true');
    expect(expiry).toHaveAccessibleDescription(/A future needs its expiry/);

    await user.type(expiry, '2025-03');
    await user.click(form().getByRole('button', { name: 'Add to cache' }));
    expect(form().getByRole('alert')).toHaveTextContent(
      'Expiry “2025-03” is not a contract month: use YYYYMM (e.g. 202503) or YYYYMMDD (e.g. 20250321).',
    );
    expect(posts()).toHaveLength(0);

    await user.clear(expiry);
    await user.type(expiry, '20250321');
    await user.click(form().getByRole('button', { name: 'Add to cache' }));
    await waitFor(() => expect(posts()).toHaveLength(1));
    expect(form().queryByRole('alert')).not.toBeInTheDocument();
    expect(posts()[0].body).toMatchObject({ sec_type: 'FUT', expiry: '20250321' });
  });

  it('sends a futures refresh with its expiry, whatToShow and all hours', async () => {
    const { user, posts } = renderCachePage();
    await screen.findByTestId('series-table');
    await user.selectOptions(form().getByLabelText('Asset class'), 'Future');
    await user.type(form().getByLabelText('Symbols (comma-separated)'), 'es, nq');
    await user.type(form().getByLabelText('Expiry (YYYYMM or YYYYMMDD)'), '202503');
    await user.selectOptions(form().getByLabelText('Data type'), '5m');
    await user.selectOptions(form().getByLabelText('What to show'), 'MIDPOINT');
    await user.click(form().getByRole('radio', { name: 'All hours' }));
    expect(form().getByLabelText('Exchange')).toHaveAttribute('placeholder', 'CME');
    await user.click(form().getByRole('button', { name: 'Add to cache' }));
    await waitFor(() => expect(posts()).toHaveLength(1));
    expect(posts()[0].body).toEqual({
      symbols: ['ES', 'NQ'],
      sec_type: 'FUT',
      expiry: '202503',
      what_to_show: 'MIDPOINT',
      use_rth: false,
      data_type: '5m',
      days_back: 30,
      force: false,
    });
  });

  it('sends an FX refresh as pairs with the chosen quotes, and no hours: FX trades around the clock', async () => {
    const { user, posts } = renderCachePage();
    await screen.findByTestId('series-table');
    // All hours chosen for a stock does not carry over to FX, whose series are kept once.
    await user.click(form().getByRole('radio', { name: 'All hours' }));
    await user.selectOptions(form().getByLabelText('Asset class'), 'FX');
    await user.type(form().getByLabelText('Symbols (comma-separated)'), 'eur.usd, usdjpy');
    await user.selectOptions(form().getByLabelText('Data type'), '1h');
    await user.selectOptions(form().getByLabelText('What to show'), 'BID_ASK');
    expect(form().getByLabelText('Exchange')).toHaveAttribute('placeholder', 'IDEALPRO');
    await user.click(form().getByRole('button', { name: 'Add to cache' }));
    await waitFor(() => expect(posts()).toHaveLength(1));
    expect(posts()[0].body).toEqual({
      symbols: ['EUR.USD', 'USDJPY'],
      sec_type: 'CASH',
      what_to_show: 'BID_ASK',
      data_type: '1h',
      days_back: 30,
      force: false,
    });
  });

  it('sends a base currency with its quote currency, and refuses what is not a currency pair', async () => {
    const { user, posts } = renderCachePage();
    await screen.findByTestId('series-table');
    await user.selectOptions(form().getByLabelText('Asset class'), 'FX');
    await user.type(form().getByLabelText('Symbols (comma-separated)'), 'nvda');
    await user.click(form().getByRole('button', { name: 'Add to cache' }));
    expect(form().getByRole('alert')).toHaveTextContent('Not an FX pair: NVDA. Enter pairs such as EUR.USD or USDJPY');

    await user.clear(form().getByLabelText('Symbols (comma-separated)'));
    await user.type(form().getByLabelText('Symbols (comma-separated)'), 'usd');
    await user.clear(form().getByLabelText('Currency'));
    await user.type(form().getByLabelText('Currency'), 'jpy');
    await user.click(form().getByRole('button', { name: 'Add to cache' }));
    await waitFor(() => expect(posts()).toHaveLength(1));
    expect(posts()[0].body).toEqual({
      symbols: ['USD'],
      sec_type: 'CASH',
      currency: 'JPY',
      what_to_show: 'MIDPOINT',
      data_type: '1d',
      days_back: 30,
      force: false,
    });
  });

  it('sends a crypto refresh as AGGTRADES', async () => {
    const { user, posts } = renderCachePage();
    await screen.findByTestId('series-table');
    await user.selectOptions(form().getByLabelText('Asset class'), 'Crypto');
    await user.type(form().getByLabelText('Symbols (comma-separated)'), 'btc');
    await user.click(form().getByRole('button', { name: 'Add to cache' }));
    await waitFor(() => expect(posts()).toHaveLength(1));
    expect(posts()[0].body).toEqual({
      symbols: ['BTC'],
      sec_type: 'CRYPTO',
      what_to_show: 'AGGTRADES',
      data_type: '1d',
      days_back: 30,
      force: false,
    });
  });

  it('shows the API’s refusal of a series next to the form', async () => {
    const { user } = renderCachePage({
      'POST /api/market-data/cache/refresh': reply(422, {
        code: 'validation_error',
        detail: [
          { field: 'what_to_show', message: 'IBKR has no TRADES series for CASH; use one of MIDPOINT, BID, ASK, BID_ASK' },
        ],
      }),
    });
    await screen.findByTestId('series-table');
    await user.type(form().getByLabelText('Symbols (comma-separated)'), 'nvda');
    await user.click(form().getByRole('button', { name: 'Add to cache' }));
    expect(await form().findByTestId('add-symbols-error')).toHaveTextContent(
      'what_to_show: IBKR has no TRADES series for CASH; use one of MIDPOINT, BID, ASK, BID_ASK',
    );
  });
});

describe('tables name the series', () => {
  it('lists each series with its contract and what sets it apart; a stock row looks as before', async () => {
    renderCachePage();
    const table = await screen.findByTestId('series-table');
    expect(within(table).getAllByRole('row')).toHaveLength(1 + SERIES.length);
    const firstCell = (testId: string) => within(screen.getByTestId(testId)).getAllByRole('cell')[1];
    expect(firstCell('series-row-NVDA-1d')).toHaveTextContent(/^NVDA$/);
    expect(firstCell('series-row-ES-202503-FUT-1m')).toHaveTextContent(/^ES 202503 FUT$/);
    expect(firstCell('series-row-ES-202503-FUT-1m-MIDPOINT-all-hours')).toHaveTextContent(
      /^ES 202503 FUT· MIDPOINT · all hours$/,
    );
    expect(firstCell('series-row-EUR.USD-CASH-1h-MIDPOINT')).toHaveTextContent(/^EUR.USD CASH· MIDPOINT$/);
    expect(screen.getByTestId('series-row-ES-202503-FUT-1m-MIDPOINT-all-hours')).toHaveTextContent('1,380');
    expect(screen.getByRole('checkbox', { name: 'Select ES 202503 FUT 1m · MIDPOINT · all hours' })).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Refresh ES 202503 FUT 1m' })).toBeInTheDocument();
  });

  it('names the series on the status page the same way', async () => {
    window.location.hash = '#/status';
    fakeApi({
      'GET /api/config': makeConfig(),
      'GET /api/market-data/cache/stats': makeStats(SERIES),
      'GET /api/health': { status: 'ok', database: 'ok' },
    });
    render(<App />);
    const table = await screen.findByTestId('series-stats-table');
    expect(within(table).getAllByRole('row')).toHaveLength(1 + SERIES.length);
    expect(within(screen.getByTestId('stats-row-NVDA-1d')).getAllByRole('cell')[0]).toHaveTextContent(/^NVDA$/);
    expect(within(screen.getByTestId('stats-row-ES-202503-FUT-1m-MIDPOINT-all-hours')).getAllByRole('cell')[0]).toHaveTextContent(
      /^ES 202503 FUT· MIDPOINT · all hours$/,
    );
    expect(screen.getByTestId('series-hit-rate-EUR.USD-CASH-1h-MIDPOINT')).toHaveTextContent('80.0%');
  });
});

describe('a series that differs only in whatToShow and hours', () => {
  it('opens on its own: the title, chart and bars name it and its request asks for exactly it', async () => {
    const { backend, user } = renderCachePage();
    await user.click(await screen.findByTestId('series-row-ES-202503-FUT-1m-MIDPOINT-all-hours'));

    expect(await screen.findByTestId('series-detail-title')).toHaveTextContent('ES 202503 FUT · 1m · CME · MIDPOINT · all hours');
    expect(await screen.findByTestId('candlestick-chart')).toHaveAccessibleName(
      'Candlestick chart with volume: ES 202503 FUT 1m · MIDPOINT · all hours, 2 bars, times in UTC',
    );
    const [call] = backend.callsTo('GET', '/api/market-data/cache/ES');
    expect(Object.fromEntries(call.query)).toEqual({
      data_type: '1m',
      exchange: 'CME',
      sec_type: 'FUT',
      currency: 'USD',
      expiry: '202503',
      what_to_show: 'MIDPOINT',
      use_rth: 'false',
      limit: '10000',
    });
    // MIDPOINT bars have no volume: the table shows none and the histogram gets no bars to draw.
    const bars = screen.getByTestId('bars-table');
    expect(
      within(bars).getByText('Bars of ES 202503 FUT 1m · MIDPOINT · all hours, most recent first. Times in UTC.'),
    ).toBeInTheDocument();
    expect(within(within(bars).getAllByRole('row')[1]).getAllByRole('cell')[5]).toHaveTextContent('—');
    expect(chartCalls.series[1].setData).toHaveBeenLastCalledWith(
      MIDPOINT_BARS.map((bar) => ({ time: Date.parse(bar.timestamp) / 1000 })),
    );

    // The TRADES series in regular hours is another series: another request, its own bars.
    await user.click(screen.getByTestId('series-row-ES-202503-FUT-1m'));
    await waitFor(() => expect(screen.getByTestId('series-detail-title')).toHaveTextContent(/^ES 202503 FUT · 1m · CME$/));
    const second = backend.callsTo('GET', '/api/market-data/cache/ES').at(-1)!;
    expect(second.query.get('what_to_show')).toBe('TRADES');
    expect(second.query.get('use_rth')).toBe('true');
    expect(await within(screen.getByTestId('bars-table')).findByText('1,200')).toBeInTheDocument();
    expect(screen.getByTestId('series-row-ES-202503-FUT-1m')).toHaveAttribute('aria-current', 'true');
    expect(screen.getByTestId('series-row-ES-202503-FUT-1m-MIDPOINT-all-hours')).not.toHaveAttribute('aria-current');
  });

  it('asks a stock series for its stock defaults', async () => {
    const { backend, user } = renderCachePage({
      'GET /api/market-data/cache/NVDA': {
        ...esPage(ES_TRADES, TRADES_BARS),
        symbol: 'NVDA',
        exchange: 'NASDAQ',
        data_type: '1d',
      },
    });
    await user.click(await screen.findByTestId('series-row-NVDA-1d'));
    await screen.findByTestId('bars-table');
    expect(screen.getByTestId('series-detail-title')).toHaveTextContent(/^NVDA · 1d · NASDAQ$/);
    const [call] = backend.callsTo('GET', '/api/market-data/cache/NVDA');
    expect(call.query.get('sec_type')).toBe('STK');
    expect(call.query.get('what_to_show')).toBe('TRADES');
    expect(call.query.get('use_rth')).toBe('true');
    expect(call.query.get('expiry')).toBeNull();
  });

  it('is refreshed as its own series, one job per kind of series', async () => {
    const { user, posts } = renderCachePage();
    await user.click(await screen.findByRole('checkbox', { name: 'Select all series shown' }));
    await user.click(screen.getByTestId('refresh-selected'));
    await waitFor(() => expect(posts()).toHaveLength(4));
    expect(posts().map((call) => call.body)).toEqual([
      { symbols: ['NVDA'], exchange: 'NASDAQ', data_type: '1d' },
      { symbols: ['ES'], exchange: 'CME', data_type: '1m', sec_type: 'FUT', expiry: '202503' },
      {
        symbols: ['ES'],
        exchange: 'CME',
        data_type: '1m',
        sec_type: 'FUT',
        expiry: '202503',
        what_to_show: 'MIDPOINT',
        use_rth: false,
      },
      { symbols: ['EUR'], exchange: 'IDEALPRO', data_type: '1h', sec_type: 'CASH', what_to_show: 'MIDPOINT' },
    ]);
  });
});

describe('filters', () => {
  it('filter by asset class, whatToShow and hours, and clear only what they show', async () => {
    const { backend, user } = renderCachePage();
    await screen.findByTestId('series-table');
    const rows = () => screen.getAllByTestId(/^series-row-/).map((row) => row.dataset.testid);

    await user.selectOptions(filters().getByLabelText('Asset class'), 'Future');
    expect(rows()).toEqual(['series-row-ES-202503-FUT-1m', 'series-row-ES-202503-FUT-1m-MIDPOINT-all-hours']);
    // A future has no ADJUSTED_LAST or AGGTRADES series to filter by.
    expect(optionsOf(filters().getByLabelText('What to show'))).toEqual(['All', 'TRADES', 'MIDPOINT', 'BID', 'ASK', 'BID_ASK']);

    await user.selectOptions(filters().getByLabelText('What to show'), 'MIDPOINT');
    expect(rows()).toEqual(['series-row-ES-202503-FUT-1m-MIDPOINT-all-hours']);

    await user.selectOptions(filters().getByLabelText('Asset class'), 'All');
    expect(rows()).toEqual(['series-row-ES-202503-FUT-1m-MIDPOINT-all-hours', 'series-row-EUR.USD-CASH-1h-MIDPOINT']);

    await user.selectOptions(filters().getByLabelText('Hours'), 'All hours');
    expect(rows()).toEqual(['series-row-ES-202503-FUT-1m-MIDPOINT-all-hours']);

    await user.click(screen.getByTestId('clear-cache'));
    const dialog = screen.getByRole('dialog', { name: 'Clear filtered bars?' });
    expect(dialog).toHaveTextContent('the cached bars with what to show MIDPOINT, all hours');
    await user.click(within(dialog).getByRole('button', { name: 'Delete these bars' }));
    await screen.findByTestId('deleted-count');
    const [clear] = backend.callsTo('DELETE', '/api/market-data/cache');
    expect(Object.fromEntries(clear.query)).toEqual({ what_to_show: 'MIDPOINT', use_rth: 'false' });

    await user.click(screen.getByRole('button', { name: 'Reset filters' }));
    expect(rows()).toHaveLength(SERIES.length);
  });

  it('clear the series of one asset class in regular hours', async () => {
    const { backend, user } = renderCachePage();
    await screen.findByTestId('series-table');
    await user.selectOptions(filters().getByLabelText('Asset class'), 'Future');
    await user.selectOptions(filters().getByLabelText('Hours'), 'Regular hours');
    expect(screen.getAllByTestId(/^series-row-/)).toHaveLength(1);
    await user.click(screen.getByTestId('clear-cache'));
    expect(screen.getByRole('dialog')).toHaveTextContent('asset class Future, regular hours');
    await user.click(screen.getByRole('button', { name: 'Delete these bars' }));
    await screen.findByTestId('deleted-count');
    const [clear] = backend.callsTo('DELETE', '/api/market-data/cache');
    expect(Object.fromEntries(clear.query)).toEqual({ sec_type: 'FUT', use_rth: 'true' });
  });
});
