import { render, screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import { App } from '../../app/App';
import { fakeApi, makeConfig, makeSeries, makeStats, reply } from '../../test/fakeApi';

function setup(deleteRoute: unknown = { deleted: 42 }) {
  const backend = fakeApi({
    'GET /api/config': makeConfig(),
    'GET /api/market-data/cache/stats': makeStats([makeSeries({ symbol: 'NVDA' }), makeSeries({ symbol: 'TSLA' })]),
    'DELETE /api/market-data/cache': deleteRoute,
  });
  render(<App />);
  return { backend, user: userEvent.setup(), deletes: () => backend.callsTo('DELETE', '/api/market-data/cache') };
}

describe('clear cache', () => {
  it('deletes nothing when the confirmation is cancelled', async () => {
    const { user, deletes } = setup();
    await user.click(await screen.findByTestId('clear-cache'));
    const dialog = screen.getByRole('dialog', { name: 'Clear the whole cache?' });
    expect(dialog).toHaveTextContent('every cached bar of every symbol and data type');
    // The safe choice has the focus, so pressing Enter by reflex deletes nothing.
    expect(within(dialog).getByRole('button', { name: 'Cancel' })).toHaveFocus();
    await user.keyboard('{Enter}');
    expect(screen.queryByRole('dialog')).not.toBeInTheDocument();

    await user.click(screen.getByTestId('clear-cache'));
    await user.keyboard('{Escape}');
    expect(screen.queryByRole('dialog')).not.toBeInTheDocument();
    expect(deletes()).toHaveLength(0);
    // Focus returns to the button that opened the dialog.
    expect(screen.getByTestId('clear-cache')).toHaveFocus();
  });

  it('clears everything with all=true after confirming, and reports how many bars went', async () => {
    const { backend, user, deletes } = setup();
    await user.click(await screen.findByTestId('clear-cache'));
    await user.click(screen.getByRole('button', { name: 'Delete everything' }));
    expect(await screen.findByTestId('deleted-count')).toHaveTextContent('Deleted 42 bars.');
    expect(deletes()).toHaveLength(1);
    expect(deletes()[0].query.get('all')).toBe('true');
    expect(screen.queryByRole('dialog')).not.toBeInTheDocument();
    expect(backend.callsTo('GET', '/api/market-data/cache/stats').length).toBeGreaterThanOrEqual(2);
  });

  it('clears only what the filters describe', async () => {
    const { user, deletes } = setup({ deleted: 3 });
    await screen.findByTestId('series-table');
    const filters = within(screen.getByRole('group', { name: 'Filters' }));
    await user.type(filters.getByLabelText('Symbol'), 'nvda');
    await user.type(filters.getByLabelText('From (UTC)'), '2025-11-01');
    await user.click(screen.getByTestId('clear-cache'));
    const dialog = screen.getByRole('dialog', { name: 'Clear filtered bars?' });
    expect(dialog).toHaveTextContent('symbol NVDA, from 2025-11-01');
    await user.click(within(dialog).getByRole('button', { name: 'Delete these bars' }));
    expect(await screen.findByTestId('deleted-count')).toHaveTextContent('Deleted 3 bars.');
    const [call] = deletes();
    expect(call.query.get('symbol')).toBe('NVDA');
    expect(call.query.get('date_from')).toBe('2025-11-01');
    expect(call.query.get('all')).toBeNull();
  });

  it('keeps Tab inside the dialog', async () => {
    const { user } = setup();
    await user.click(await screen.findByTestId('clear-cache'));
    const dialog = screen.getByRole('dialog');
    await user.tab();
    expect(within(dialog).getByRole('button', { name: 'Delete everything' })).toHaveFocus();
    await user.tab();
    expect(within(dialog).getByRole('button', { name: 'Cancel' })).toHaveFocus();
  });

  it('shows why the cache was not cleared', async () => {
    const { user } = setup(
      reply(422, { code: 'validation_error', detail: [{ loc: ['query', 'date_from'], msg: 'Invalid datetime' }] }),
    );
    await user.click(await screen.findByTestId('clear-cache'));
    await user.click(screen.getByRole('button', { name: 'Delete everything' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('date_from: Invalid datetime');
    expect(screen.queryByTestId('deleted-count')).not.toBeInTheDocument();
  });
});
