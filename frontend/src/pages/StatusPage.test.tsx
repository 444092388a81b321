import { render, screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { App } from '../App';
import { fakeApi, makeConfig, makeSeries, makeStats } from '../test/fakeApi';

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
