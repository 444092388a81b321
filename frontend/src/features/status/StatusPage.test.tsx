import { render, screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { App } from '../../app/App';
import { fakeApi, makeConfig, makeSeries, makeStats, reply } from '../../test/fakeApi';

function setup(stats: ReturnType<typeof makeStats>) {
  window.location.hash = '#/status';
  fakeApi({
    'GET /api/config': makeConfig(),
    'GET /api/market-data/cache/stats': stats,
    'GET /api/health': { status: 'degraded', database: 'unreachable' },
  });
  render(<App />);
}

describe('cache status', () => {
  it('shows the overall and per-series hit rate as percentages', async () => {
    setup(
      makeStats(
        [
          makeSeries({ symbol: 'NVDA', data_type: '1d', hits: 17, misses: 2, partial_hits: 1, stale_serves: 0, hit_rate: 0.85 }),
          makeSeries({
            symbol: 'TSLA',
            data_type: '5m',
            hits: 0,
            misses: 0,
            partial_hits: 0,
            stale_serves: 0,
            hit_rate: null,
            last_hit_at: null,
          }),
        ],
        { hits: 17, misses: 2, partial_hits: 1, stale_serves: 0, hit_rate: 0.85 },
      ),
    );
    expect(await screen.findByTestId('hit-rate')).toHaveTextContent('85.0%');
    expect(screen.getByText('of 20 lookups')).toBeInTheDocument();
    expect(screen.getByTestId('series-hit-rate-NVDA-1d')).toHaveTextContent('85.0%');
    expect(screen.getByTestId('series-hit-rate-TSLA-5m')).toHaveTextContent('—');
    expect(screen.getByTestId('stats-row-NVDA-1d')).toHaveTextContent('2025-11-28 14:30 UTC'); // last hit
  });

  it('shows a dash, not 0%, before the first lookup', async () => {
    setup(makeStats([], { hits: 0, misses: 0, partial_hits: 0, stale_serves: 0, hit_rate: null }));
    expect(await screen.findByTestId('hit-rate')).toHaveTextContent('—');
    expect(screen.getByText('no lookups yet')).toBeInTheDocument();
    expect(screen.getByText('Nothing is cached yet.')).toBeInTheDocument();
  });

  it('shows service and database health', async () => {
    setup(makeStats([]));
    const health = await screen.findByTestId('health');
    expect(health).toHaveTextContent('degraded');
    expect(health).toHaveTextContent('unreachable');
  });
});

describe('outages on the status page', () => {
  it('shows the database as unavailable when /api/health answers 503, not as unknown', async () => {
    window.location.hash = '#/status';
    fakeApi({
      'GET /api/config': makeConfig(),
      'GET /api/health': reply(503, { status: 'unavailable', database: 'unreachable', code: 'database_unavailable' }),
      'GET /api/market-data/cache/stats': reply(503, { code: 'database_unavailable', detail: 'The database is not answering.' }),
    });
    render(<App />);
    const health = await screen.findByTestId('health');
    expect(health).toHaveTextContent('Service unavailable · database unreachable');
    expect(screen.queryByText('health unknown')).not.toBeInTheDocument();
    const notice = await screen.findByText('The database is not answering.');
    expect(notice.parentElement).toHaveTextContent(/^Database unavailable/);
    expect(screen.queryByTestId('series-stats-table')).not.toBeInTheDocument();
  });

  it('shows the gateway state with its last error', async () => {
    window.location.hash = '#/status';
    fakeApi({
      'GET /api/config': makeConfig({
        gateway: {
          connected: false,
          simulated: false,
          last_error: 'connection to the gateway was lost',
          last_error_at: '2025-11-28T15:00:00Z',
        },
      }),
      'GET /api/health': { status: 'ok', database: 'ok' },
      'GET /api/market-data/cache/stats': makeStats([]),
    });
    render(<App />);
    expect(await screen.findByTestId('gateway-health')).toHaveTextContent(
      'Gateway disconnected last error at 2025-11-28 15:00:00 UTC: connection to the gateway was lost',
    );
  });
});
