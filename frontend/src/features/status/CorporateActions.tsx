import type { CorporateAction, CorporateActions } from '../../api/models';
import { formatInteger, formatUtc } from '../../shared/format';
import type { ApiData } from '../../shared/hooks/useApiData';
import { SeriesIdentityCell } from '../../shared/SeriesIdentityCell';
import { seriesSlug } from '../../shared/series';
import { Empty, ErrorNotice, Loading } from '../../shared/States';
import { numeric, TableHead } from '../../shared/TableHead';

/** A split's ratio as IBKR announces it: the cached price over the new one, `10:1`, `3:2`, `1:10`. */
export function splitRatio(factor: number): string {
  for (let denominator = 1; denominator <= 20; denominator += 1) {
    const numerator = Math.round(factor * denominator);
    if (numerator > 0 && Math.abs(numerator / denominator - factor) <= 1e-6 * factor) {
      return `${numerator}:${denominator}`;
    }
  }
  return `${factor.toPrecision(4)}:1`;
}

/** `10:1 split`, or an adjustment by its size: `0.5 % adjustment` for a factor of 1.005. */
export function describeFactor(action: Pick<CorporateAction, 'factor' | 'kind'>): string {
  if (action.kind === 'split') return `${splitRatio(action.factor)} split`;
  return `${(Math.abs(action.factor - 1) * 100).toFixed(1)} % adjustment`;
}

const HEALED = {
  rescaled: 'rescaled',
  refetched: 'fetched again',
} as const;

/**
 * The changes of price basis the cache found (IBKR adjusts history for splits, and ADJUSTED_LAST
 * for dividends, as of each request) and how it brought the cached bars to the new basis.
 */
export function CorporateActionsCard({ actions }: { actions: ApiData<CorporateActions> }) {
  return (
    <section className="card" aria-labelledby="corporate-actions-title">
      <h2 id="corporate-actions-title" className="card-title">
        Corporate actions
      </h2>
      {actions.loading && !actions.data && <Loading>Loading corporate actions…</Loading>}
      {actions.error != null && (
        <ErrorNotice error={actions.error} title="Could not load the corporate actions" onRetry={actions.reload} />
      )}
      {actions.data &&
        (actions.data.data.length === 0 ? (
          <Empty>No split or dividend adjustment detected: every cached series is on the price basis it was fetched on.</Empty>
        ) : (
          <div className="table-scroll">
            <table className="data-table" data-testid="corporate-actions-table">
              <TableHead columns={['Series', 'Type', 'Detected at', 'Action', 'Healed', numeric('Bars changed')]} />
              <tbody>
                {actions.data.data.map((action) => (
                  <tr key={action.id} data-testid={`action-row-${seriesSlug(action)}-${action.id}`}>
                    <SeriesIdentityCell series={action} />
                    <td>{action.data_type}</td>
                    <td className="nowrap">{formatUtc(action.detected_at)}</td>
                    <td className="nowrap" title={`cached price / IBKR's price = ${action.factor}`}>
                      {describeFactor(action)}
                    </td>
                    <td>{HEALED[action.healed]}</td>
                    <td className="num">{formatInteger(action.bars_changed)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ))}
    </section>
  );
}
