import { render, screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import { App } from './App';
import { fakeApi, makeConfig, makeStats, reply } from './test/fakeApi';

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
