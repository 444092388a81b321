import { render, screen, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { App } from '../../app/App';
import type { CorporateAction } from '../../api/models';
import { fakeApi, makeConfig, makeStats, reply, STOCK_IDENTITY } from '../../test/fakeApi';
import { describeFactor, splitRatio } from './CorporateActions';

const ACTIONS = '/api/market-data/cache/actions';

function makeAction(overrides: Partial<CorporateAction> = {}): CorporateAction {
  return {
    ...STOCK_IDENTITY,
    id: 1,
    symbol: 'NVDA',
    exchange: 'NASDAQ',
    data_type: '1d',
    detected_at: '2024-07-31T21:00:00Z',
    anchor_at: '2024-05-31T00:00:00Z',
    factor: 10,
    kind: 'split',
    healed: 'rescaled',
    bars_changed: 103,
    basis_from: '2024-05-31T21:00:00Z',
    basis_to: '2024-07-31T21:00:00Z',
    ...overrides,
  } as CorporateAction;
}

function setup(actions: unknown) {
  window.location.hash = '#/status';
  const api = fakeApi({
    'GET /api/config': makeConfig(),
    'GET /api/market-data/cache/stats': makeStats([]),
    'GET /api/health': { status: 'ok', database: 'ok' },
    [`GET ${ACTIONS}`]: actions,
  });
  render(<App />);
  return api;
}

describe('corporate actions on the status page', () => {
  it('lists each action with its series, when it was found, the split and how it was healed', async () => {
    setup({
      data: [
        makeAction(),
        makeAction({
          id: 2,
          symbol: 'KO',
          exchange: 'NYSE',
          what_to_show: 'ADJUSTED_LAST',
          detected_at: '2024-07-01T21:00:00Z',
          factor: 1.0052,
          kind: 'adjustment',
          healed: 'refetched',
          bars_changed: 62,
        }),
      ],
      count: 2,
    });
    const table = await screen.findByTestId('corporate-actions-table');
    const split = within(table).getByTestId('action-row-NVDA-1d-1');
    expect(split).toHaveTextContent('NVDA');
    expect(split).toHaveTextContent('2024-07-31 21:00 UTC');
    expect(split).toHaveTextContent('10:1 split');
    expect(split).toHaveTextContent('rescaled');
    expect(split).toHaveTextContent('103');
    const dividend = within(table).getByTestId('action-row-KO-1d-ADJUSTED_LAST-2');
    expect(dividend).toHaveTextContent('KO· ADJUSTED_LAST');
    expect(dividend).toHaveTextContent('0.5 % adjustment');
    expect(dividend).toHaveTextContent('fetched again');
    expect(dividend).toHaveTextContent('62');
  });

  it('says so when nothing was detected', async () => {
    setup({ data: [], count: 0 });
    expect(await screen.findByText(/No split or dividend adjustment detected/)).toBeInTheDocument();
    expect(screen.queryByTestId('corporate-actions-table')).not.toBeInTheDocument();
  });

  it('shows why the actions could not be loaded, and the rest of the page still works', async () => {
    setup(reply(503, { code: 'database_unavailable', detail: 'The database is not answering.' }));
    const card = await screen.findByRole('region', { name: 'Corporate actions' });
    expect(await within(card).findByText('The database is not answering.')).toBeInTheDocument();
    expect(within(card).getByRole('button', { name: 'Try again' })).toBeInTheDocument();
    expect(screen.getByText('Nothing is cached yet.')).toBeInTheDocument();
  });

  it('reloads the actions with the page', async () => {
    const api = setup({ data: [], count: 0 });
    await screen.findByText(/No split or dividend adjustment detected/);
    screen.getByRole('button', { name: 'Reload' }).click();
    await screen.findByText(/No split or dividend adjustment detected/);
    await expect.poll(() => api.callsTo('GET', ACTIONS).length).toBe(2);
  });
});

describe('describing a factor', () => {
  it.each([
    [10, 'split', '10:1 split'],
    [4, 'split', '4:1 split'],
    [1.5, 'split', '3:2 split'],
    [0.1, 'split', '1:10 split'],
    [1.005, 'adjustment', '0.5 % adjustment'],
    [0.992, 'adjustment', '0.8 % adjustment'],
  ] as const)('%s as a %s reads %s', (factor, kind, text) => {
    expect(describeFactor({ factor, kind })).toBe(text);
  });

  it('falls back to the factor itself for a ratio without a small denominator', () => {
    expect(splitRatio(1.2345678)).toBe('1.235:1');
  });
});
