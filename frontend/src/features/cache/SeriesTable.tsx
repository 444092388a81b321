import type { SeriesStats } from '../../api/models';
import { formatBarTime, formatInteger, formatUtc } from '../../shared/format';
import { SeriesIdentityCell } from '../../shared/SeriesIdentityCell';
import { seriesKey, seriesName, seriesSlug } from '../../shared/series';
import { StatusBadge } from '../../shared/StatusBadge';
import { numeric, TableHead } from '../../shared/TableHead';

interface SeriesTableProps {
  series: SeriesStats[];
  selectedKey: string | null;
  checkedKeys: Set<string>;
  onSelect: (series: SeriesStats) => void;
  onToggleChecked: (key: string) => void;
  onToggleAll: (checked: boolean) => void;
  onRefresh: (series: SeriesStats) => void;
  refreshDisabled: boolean;
}

/** The cached series; a row opens its chart on click or Enter, and its controls don't. */
export function SeriesTable({
  series,
  selectedKey,
  checkedKeys,
  onSelect,
  onToggleChecked,
  onToggleAll,
  onRefresh,
  refreshDisabled,
}: SeriesTableProps) {
  const allChecked = series.length > 0 && series.every((item) => checkedKeys.has(seriesKey(item)));
  const someChecked = series.some((item) => checkedKeys.has(seriesKey(item)));
  return (
    <div className="table-scroll">
      <table className="data-table" data-testid="series-table">
        <caption className="visually-hidden">Cached series. Select a row to see its chart and bars.</caption>
        <TableHead
          columns={[
            {
              className: 'col-check',
              label: (
                <input
                  type="checkbox"
                  aria-label="Select all series shown"
                  checked={allChecked}
                  ref={(input) => {
                    if (input) input.indeterminate = someChecked && !allChecked;
                  }}
                  onChange={(event) => onToggleAll(event.target.checked)}
                />
              ),
            },
            'Symbol',
            'Type',
            'Exchange',
            numeric('Bars'),
            'First',
            'Last',
            'Last updated',
            'Expired',
            { label: <span className="visually-hidden">Actions</span> },
          ]}
        />
        <tbody>
          {series.map((item) => {
            const key = seriesKey(item);
            const selected = key === selectedKey;
            const name = seriesName(item);
            const slug = seriesSlug(item);
            return (
              <tr
                key={key}
                data-testid={`series-row-${slug}`}
                className={`selectable ${selected ? 'selected' : ''}`}
                tabIndex={0}
                aria-current={selected ? true : undefined}
                onClick={() => onSelect(item)}
                onKeyDown={(event) => {
                  if (event.target !== event.currentTarget) return; // Enter on the row's own controls
                  if (event.key === 'Enter' || event.key === ' ') {
                    event.preventDefault();
                    onSelect(item);
                  }
                }}
              >
                <td className="col-check" onClick={(event) => event.stopPropagation()}>
                  <input
                    type="checkbox"
                    aria-label={`Select ${name}`}
                    checked={checkedKeys.has(key)}
                    onChange={() => onToggleChecked(key)}
                  />
                </td>
                <SeriesIdentityCell series={item} />
                <td>{item.data_type}</td>
                <td>{item.exchange}</td>
                <td className="num">{formatInteger(item.bar_count)}</td>
                <td className="nowrap">{formatBarTime(item.first, item.data_type)}</td>
                <td className="nowrap">{formatBarTime(item.last, item.data_type)}</td>
                <td className="nowrap">{formatUtc(item.last_updated)}</td>
                <td>
                  {item.expired ? (
                    <StatusBadge status="expired" label={item.expired_count ? `expired (${item.expired_count})` : 'expired'} />
                  ) : (
                    <span className="muted">fresh</span>
                  )}
                </td>
                <td className="actions">
                  <button
                    type="button"
                    className="button button-small"
                    data-testid={`refresh-button-${slug}`}
                    aria-label={`Refresh ${name}`}
                    disabled={refreshDisabled}
                    onClick={(event) => {
                      event.stopPropagation();
                      onRefresh(item);
                    }}
                  >
                    Refresh
                  </button>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
