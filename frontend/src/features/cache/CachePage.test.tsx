import { render, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { beforeEach, describe, expect, it } from 'vitest';
import type { CachedSeries, SeriesBar } from '../../api/models';
import { App } from '../../app/App';
import { fakeApi, makeConfig, makeSeries, makeStats, reply, STOCK_IDENTITY, type RecordedCall } from '../../test/fakeApi';
import { chartCalls, resetChartCalls } from '../../test/fakeChart';

function dailyBar(date: string, close: number): SeriesBar {
  return {
    timestamp: `${date}T00:00:00Z`,
    open: close - 1,
    high: close + 1,
    low: close - 2,
    close,
    volume: 1_000_000,
    wap: close,
    bar_count: 5000,
    is_final: true,
  };
}

const NVDA_BARS = [dailyBar('2025-11-24', 180), dailyBar('2025-11-25', 182.5), dailyBar('2025-11-26', 179.25)];

function nvdaSeries(bars = NVDA_BARS): CachedSeries {
  return {
    symbol: 'NVDA',
    exchange: 'NASDAQ',
    data_type: '1d',
    ...STOCK_IDENTITY,
    count: bars.length,
    first: bars[0]?.timestamp ?? null,
    last: bars[bars.length - 1]?.timestamp ?? null,
    fetched_from: '2025-11-27T21:05:00Z',
    fetched_to: '2025-11-27T21:05:00Z',
    expired: false,
    bars,
    next_cursor: null,
    total: bars.length,
  };
}

const SERIES = [
  makeSeries({ symbol: 'NVDA', data_type: '1d', bar_count: 3 }),
  makeSeries({ symbol: 'NVDA', data_type: '5m', bar_count: 780, first: '2025-11-26T14:30:00Z' }),
  makeSeries({ symbol: 'TSLA', data_type: '1d', bar_count: 250, expired: true, expired_count: 1 }),
];

function renderCachePage(routes: Record<string, unknown> = {}) {
  const backend = fakeApi({
    'GET /api/config': makeConfig(),
    'GET /api/market-data/cache/stats': makeStats(SERIES),
    'GET /api/market-data/cache/NVDA': nvdaSeries(),
    ...routes,
  });
  render(<App />);
  return backend;
}

const filters = () => within(screen.getByRole('group', { name: 'Filters' }));

beforeEach(resetChartCalls);

describe('series table', () => {
  it('lists every cached series with its bars, dates and expiry', async () => {
    renderCachePage();
    const table = await screen.findByTestId('series-table');
    expect(within(table).getAllByRole('row')).toHaveLength(1 + SERIES.length);
    const nvdaDaily = screen.getByTestId('series-row-NVDA-1d');
    expect(nvdaDaily).toHaveTextContent('2025-11-24'); // daily bars shown as dates
    expect(nvdaDaily).toHaveTextContent('2025-11-27 21:05 UTC'); // last updated, in UTC
    expect(screen.getByTestId('series-row-NVDA-5m')).toHaveTextContent('780');
    expect(screen.getByTestId('series-row-NVDA-5m')).toHaveTextContent('2025-11-26 14:30 UTC');
    expect(screen.getByTestId('series-row-TSLA-1d')).toHaveTextContent('expired (1)');
  });

  it('leaves out series whose bars were all deleted (only their lookup counts remain)', async () => {
    renderCachePage({
      'GET /api/market-data/cache/stats': makeStats([
        makeSeries({ symbol: 'NVDA', data_type: '1d', bar_count: 0, first: null, last: null, last_updated: null }),
      ]),
    });
    expect(await screen.findByText(/Nothing is cached yet/)).toBeInTheDocument();
    expect(screen.queryByTestId('series-table')).not.toBeInTheDocument();
  });

  it('filters by symbol and by data type', async () => {
    renderCachePage();
    await screen.findByTestId('series-table');
    const user = userEvent.setup();

    await user.type(filters().getByLabelText('Symbol'), 'tsla');
    expect(screen.getByTestId('series-row-TSLA-1d')).toBeInTheDocument();
    expect(screen.queryByTestId('series-row-NVDA-1d')).not.toBeInTheDocument();

    await user.clear(filters().getByLabelText('Symbol'));
    await user.selectOptions(filters().getByLabelText('Data type'), '5m');
    expect(screen.getByTestId('series-row-NVDA-5m')).toBeInTheDocument();
    expect(screen.queryByTestId('series-row-NVDA-1d')).not.toBeInTheDocument();
    expect(screen.queryByTestId('series-row-TSLA-1d')).not.toBeInTheDocument();

    await user.type(filters().getByLabelText('Symbol'), 'TSLA');
    expect(screen.queryByTestId('series-table')).not.toBeInTheDocument();
    expect(screen.getByText('No cached series matches the filters.')).toBeInTheDocument();

    await user.click(screen.getByRole('button', { name: 'Reset filters' }));
    expect(screen.getAllByTestId(/^series-row-/)).toHaveLength(3);
  });

  it('says nothing is cached yet, and how to fill it, when there are no series', async () => {
    renderCachePage({ 'GET /api/market-data/cache/stats': makeStats([]) });
    expect(await screen.findByText(/Nothing is cached yet/)).toHaveTextContent('make populate-cache');
  });

  it('shows the error in plain words when the series cannot be loaded', async () => {
    renderCachePage({ 'GET /api/market-data/cache/stats': reply(503, { code: 'db', detail: 'Database unreachable' }) });
    expect(await screen.findByRole('alert')).toHaveTextContent('Database unreachable');
  });
});

describe('selected series', () => {
  it('opens with Enter: chart and bars, most recent first', async () => {
    const backend = renderCachePage();
    const row = await screen.findByTestId('series-row-NVDA-1d');
    row.focus();
    await userEvent.keyboard('{Enter}');

    const bars = await screen.findByTestId('bars-table');
    const rows = within(bars).getAllByRole('row').slice(1);
    expect(rows.map((tr) => within(tr).getAllByRole('cell')[0].textContent)).toEqual(['2025-11-26', '2025-11-25', '2025-11-24']);
    expect(rows[0]).toHaveTextContent('179.25');

    expect(screen.getByTestId('candlestick-chart')).toBeInTheDocument();
    expect(chartCalls.created).toBe(1);
    const [candles, volume] = chartCalls.series;
    expect(candles.setData).toHaveBeenLastCalledWith(
      NVDA_BARS.map((bar) => expect.objectContaining({ time: Date.parse(bar.timestamp) / 1000, close: bar.close })),
    );
    expect(volume.setData.mock.lastCall?.[0]).toHaveLength(3);

    const [call] = backend.callsTo('GET', '/api/market-data/cache/NVDA');
    expect(call.query.get('data_type')).toBe('1d');
    expect(call.query.get('exchange')).toBe('NASDAQ');
    expect(call.query.get('date_from')).toBeNull();
  });

  it('opens on click and loads the date range of the filters', async () => {
    const backend = renderCachePage();
    const user = userEvent.setup();
    await user.click(await screen.findByTestId('series-row-NVDA-1d'));
    await screen.findByTestId('bars-table');

    await user.type(filters().getByLabelText('From (UTC)'), '2025-11-25');
    await user.type(filters().getByLabelText('To (UTC)'), '2025-11-26');
    await waitFor(() => {
      const last = backend.callsTo('GET', '/api/market-data/cache/NVDA').at(-1)!;
      expect(last.query.get('date_from')).toBe('2025-11-25');
      expect(last.query.get('date_to')).toBe('2025-11-26');
    });
  });

  it('pages through many bars, newest first', async () => {
    const many = Array.from({ length: 120 }, (_, i) =>
      dailyBar(new Date(Date.UTC(2025, 0, 1 + i)).toISOString().slice(0, 10), 100 + i),
    );
    renderCachePage({ 'GET /api/market-data/cache/NVDA': nvdaSeries(many) });
    const user = userEvent.setup();
    await user.click(await screen.findByTestId('series-row-NVDA-1d'));
    const table = await screen.findByTestId('bars-table');
    expect(within(table).getAllByRole('row')).toHaveLength(51);
    expect(screen.getByText(/1–50 of 120/)).toBeInTheDocument();
    await user.click(screen.getByRole('button', { name: 'Older →' }));
    expect(screen.getByText(/51–100 of 120/)).toBeInTheDocument();
    expect(within(table).getAllByRole('row')[1]).toHaveTextContent(many[69].timestamp.slice(0, 10));
  });

  it('says when nothing is cached in the range', async () => {
    renderCachePage({ 'GET /api/market-data/cache/NVDA': reply(404, { code: 'not_cached', detail: 'nothing cached' }) });
    await userEvent.click(await screen.findByTestId('series-row-NVDA-1d'));
    expect(await screen.findByText('No bars of NVDA 1d are cached.')).toBeInTheDocument();
    expect(screen.queryByTestId('candlestick-chart')).not.toBeInTheDocument();
  });
});

describe('series paging', () => {
  const days = Array.from({ length: 5 }, (_, i) => dailyBar(`2025-11-${String(20 + i).padStart(2, '0')}`, 100 + i));
  const firstPage = { ...nvdaSeries(days.slice(0, 3)), total: 5, next_cursor: 'after-2025-11-22' };
  const lastPage = { ...nvdaSeries(days.slice(3)), total: 5, next_cursor: null };

  it('loads the first page, says how many bars of the total it shows, and appends the next page', async () => {
    const backend = renderCachePage({
      'GET /api/market-data/cache/NVDA': (call: RecordedCall) => ({
        body: call.query.get('cursor') === 'after-2025-11-22' ? lastPage : firstPage,
      }),
    });
    const user = userEvent.setup();
    await user.click(await screen.findByTestId('series-row-NVDA-1d'));
    expect(await screen.findByTestId('bars-loaded')).toHaveTextContent('3 of 5 bars');
    const [first] = backend.callsTo('GET', '/api/market-data/cache/NVDA');
    expect(first.query.get('limit')).toBe('10000');
    expect(first.query.get('cursor')).toBeNull();

    await user.click(screen.getByRole('button', { name: 'Load more' }));
    expect(await screen.findByText('5 of 5 bars')).toBeInTheDocument();
    const next = backend.callsTo('GET', '/api/market-data/cache/NVDA')[1];
    expect(next.query.get('cursor')).toBe('after-2025-11-22');
    expect(next.query.get('limit')).toBe('10000');
    expect(next.query.get('data_type')).toBe('1d');
    expect(next.query.get('exchange')).toBe('NASDAQ');

    // Chart and table show every loaded bar, in order; there is nothing more to load.
    const rows = within(screen.getByTestId('bars-table')).getAllByRole('row').slice(1);
    expect(rows.map((tr) => within(tr).getAllByRole('cell')[0].textContent)).toEqual([
      '2025-11-24',
      '2025-11-23',
      '2025-11-22',
      '2025-11-21',
      '2025-11-20',
    ]);
    expect(chartCalls.series[0].setData.mock.lastCall?.[0]).toHaveLength(5);
    expect(screen.queryByRole('button', { name: 'Load more' })).not.toBeInTheDocument();
  });

  it('keeps the loaded bars when the next page fails, and says why', async () => {
    renderCachePage({
      'GET /api/market-data/cache/NVDA': (call: RecordedCall) =>
        call.query.get('cursor')
          ? { status: 503, body: { code: 'database_unavailable', detail: 'The database is not answering.' } }
          : { body: firstPage },
    });
    const user = userEvent.setup();
    await user.click(await screen.findByTestId('series-row-NVDA-1d'));
    await user.click(await screen.findByRole('button', { name: 'Load more' }));
    expect(await screen.findByText('The database is not answering.')).toBeInTheDocument();
    expect(screen.getByTestId('bars-loaded')).toHaveTextContent('3 of 5 bars');
    expect(within(screen.getByTestId('bars-table')).getAllByRole('row')).toHaveLength(4);
    expect(screen.getByRole('button', { name: 'Load more' })).toBeEnabled();
  });

  it('starts again from the first page when the date range changes', async () => {
    const backend = renderCachePage({
      'GET /api/market-data/cache/NVDA': (call: RecordedCall) => ({ body: call.query.get('cursor') ? lastPage : firstPage }),
    });
    const user = userEvent.setup();
    await user.click(await screen.findByTestId('series-row-NVDA-1d'));
    await user.click(await screen.findByRole('button', { name: 'Load more' }));
    await screen.findByText('5 of 5 bars');

    await user.type(filters().getByLabelText('From (UTC)'), '2025-11-20');
    expect(await screen.findByText('3 of 5 bars')).toBeInTheDocument();
    const last = backend.callsTo('GET', '/api/market-data/cache/NVDA').at(-1)!;
    expect(last.query.get('date_from')).toBe('2025-11-20');
    expect(last.query.get('cursor')).toBeNull();
  });
});
