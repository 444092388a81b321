import { act, render, screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it, vi } from 'vitest';
import { fakeApi, makeConfig, makeStats, reply } from '../test/fakeApi';
import { App } from './App';

function backendWith(config: ReturnType<typeof makeConfig>) {
  return fakeApi({
    'GET /api/config': config,
    'GET /api/market-data/cache/stats': makeStats([]),
    'GET /api/health': { status: 'ok', database: 'ok' },
  });
}

describe('DEBUG MODE banner', () => {
  it('is shown, with its full warning, when the backend runs in debug mode', async () => {
    backendWith(makeConfig({ debug_mode: true }));
    render(<App />);
    const banner = await screen.findByTestId('debug-banner');
    expect(banner).toHaveAttribute('role', 'status');
    expect(banner).toHaveTextContent('DEBUG MODE — workflows read only from the cache; IBKR is never contacted');
  });

  it('is absent when debug mode is off', async () => {
    backendWith(makeConfig({ debug_mode: false }));
    render(<App />);
    expect(await screen.findByTestId('gateway-status')).toBeInTheDocument(); // config has arrived
    expect(screen.queryByTestId('debug-banner')).not.toBeInTheDocument();
  });

  it('stays on every page', async () => {
    backendWith(makeConfig({ debug_mode: true }));
    render(<App />);
    await screen.findByTestId('debug-banner');
    await userEvent.click(screen.getByRole('link', { name: 'Status' }));
    expect(await screen.findByRole('heading', { name: 'Cache status' })).toBeInTheDocument();
    expect(screen.getByTestId('debug-banner')).toBeInTheDocument();
  });
});

describe('gateway indicators', () => {
  it('marks a simulated, disconnected gateway', async () => {
    backendWith(makeConfig({ gateway: { connected: false, simulated: true } }));
    render(<App />);
    expect(await screen.findByTestId('simulated-badge')).toHaveTextContent('simulated gateway');
    expect(screen.getByTestId('gateway-status')).toHaveTextContent('Gateway disconnected');
  });

  it('does not call an unused gateway a fault in DEBUG_MODE', async () => {
    backendWith(makeConfig({ debug_mode: true, gateway: { connected: false, simulated: true } }));
    render(<App />);
    expect(await screen.findByTestId('gateway-status')).toHaveTextContent('Gateway not used in DEBUG MODE');
  });

  it('shows no simulated badge for a real, connected gateway', async () => {
    backendWith(makeConfig({ gateway: { connected: true, simulated: false } }));
    render(<App />);
    expect(await screen.findByTestId('gateway-status')).toHaveTextContent('Gateway connected');
    expect(screen.queryByTestId('simulated-badge')).not.toBeInTheDocument();
  });

  it('says so when the configuration cannot be loaded', async () => {
    fakeApi({
      'GET /api/config': reply(500, { code: 'internal', detail: 'database locked' }),
      'GET /api/market-data/cache/stats': makeStats([]),
    });
    render(<App />);
    const alert = await screen.findByText('Could not load the backend configuration');
    expect(within(alert.parentElement!).getByText('database locked')).toBeInTheDocument();
  });
});

describe('navigation', () => {
  it('opens the cache page by default and marks the current page', async () => {
    backendWith(makeConfig());
    render(<App />);
    expect(await screen.findByRole('heading', { name: 'Market data cache' })).toBeInTheDocument();
    expect(screen.getByRole('link', { name: 'Cache' })).toHaveAttribute('aria-current', 'page');
    expect(screen.getByRole('link', { name: 'Workflows' })).toHaveAttribute('href', '#/workflows');
  });
});

describe('gateway last error', () => {
  const lastError = {
    last_error: 'Connect to 127.0.0.1:4002 failed: connection refused',
    last_error_at: '2025-11-28T14:30:05Z',
  };

  it('shows why and since when a gateway that should be connected is not', async () => {
    backendWith(makeConfig({ gateway: { connected: false, simulated: false, ...lastError } }));
    render(<App />);
    const banner = await screen.findByTestId('gateway-error');
    expect(banner).toHaveTextContent(
      'IBKR gateway not connected at 127.0.0.1:4002 — last error at 2025-11-28 14:30:05 UTC: Connect to 127.0.0.1:4002 failed: connection refused.',
    );
    const indicator = screen.getByTestId('gateway-status');
    expect(indicator).toHaveTextContent('Gateway disconnected');
    expect(indicator).toHaveAttribute('title', expect.stringContaining('last error at 2025-11-28 14:30:05 UTC'));
  });

  it('keeps an unused gateway in DEBUG_MODE idle, not a fault, even with a last error', async () => {
    backendWith(makeConfig({ debug_mode: true, gateway: { connected: false, simulated: true, ...lastError } }));
    render(<App />);
    expect(await screen.findByTestId('gateway-status')).toHaveTextContent('Gateway not used in DEBUG MODE');
    expect(screen.queryByTestId('gateway-error')).not.toBeInTheDocument();
  });

  it('drops the banner once the gateway is connected again; the status page keeps the last error', async () => {
    window.location.hash = '#/status';
    backendWith(makeConfig({ gateway: { connected: true, simulated: false, ...lastError } }));
    render(<App />);
    expect(await screen.findByTestId('gateway-status')).toHaveTextContent('Gateway connected');
    expect(screen.queryByTestId('gateway-error')).not.toBeInTheDocument();
    expect(screen.getByTestId('gateway-health')).toHaveTextContent('Gateway connected last error at 2025-11-28 14:30:05 UTC');
  });
});

describe('database unavailable', () => {
  const down = {
    status: 503,
    body: { status: 'unavailable', database: 'unreachable', code: 'database_unavailable', detail: 'no answer within 2 s' },
  };

  it('says so in one banner on every page, and the data sections say why they are empty', async () => {
    fakeApi({
      'GET /api/config': makeConfig(),
      'GET /api/health': () => down,
      'GET /api/market-data/cache/stats': reply(503, {
        code: 'database_unavailable',
        detail: 'The database is not answering; try again when it is back.',
      }),
    });
    render(<App />);
    const banner = await screen.findByTestId('database-banner');
    expect(banner).toHaveAttribute('role', 'alert');
    expect(banner).toHaveTextContent(/^Database unavailable — the backend cannot reach its database/);
    expect(banner).toHaveTextContent('until it answers again (no answer within 2 s). Checking again every 5 s.');

    const notice = await screen.findByText('The database is not answering; try again when it is back.');
    expect(notice.parentElement).toHaveTextContent(/^Database unavailable/);
    expect(screen.queryByTestId('series-table')).not.toBeInTheDocument();

    await userEvent.click(screen.getByRole('link', { name: 'Workflows' }));
    expect(screen.getByTestId('database-banner')).toBeInTheDocument();
  });

  it('goes away when the database answers again, and the page loads what it could not', async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    let healthy = false;
    fakeApi({
      'GET /api/config': makeConfig(),
      'GET /api/health': () => (healthy ? { status: 200, body: { status: 'ok', database: 'ok' } } : down),
      'GET /api/market-data/cache/stats': () =>
        healthy
          ? { status: 200, body: makeStats([]) }
          : { status: 503, body: { code: 'database_unavailable', detail: 'The database is not answering.' } },
    });
    render(<App />);
    await screen.findByTestId('database-banner');
    expect(await screen.findByText('The database is not answering.')).toBeInTheDocument();
    healthy = true;
    await act(async () => {
      await vi.advanceTimersByTimeAsync(5000);
    });
    expect(screen.queryByTestId('database-banner')).not.toBeInTheDocument();
    expect(await screen.findByText(/Nothing is cached yet/)).toBeInTheDocument();
    expect(screen.queryByText('The database is not answering.')).not.toBeInTheDocument();
  });

  it('shows no banner while the database answers', async () => {
    window.location.hash = '#/status';
    backendWith(makeConfig());
    render(<App />);
    expect(await screen.findByTestId('health')).toHaveTextContent('ok'); // the health answer is in
    expect(screen.queryByTestId('database-banner')).not.toBeInTheDocument();
  });
});
