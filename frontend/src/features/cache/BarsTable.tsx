import { useEffect, useMemo, useState } from 'react';
import type { SeriesBar } from '../../api/models';
import { formatBarTime, formatInteger, formatPrice } from '../../shared/format';
import { isDailyOrLonger } from '../../shared/series';
import { numeric, TableHead } from '../../shared/TableHead';

export const BARS_PAGE_SIZE = 50;

interface BarsTableProps {
  /** In time order, as the API sends them; shown most recent first. */
  bars: SeriesBar[];
  dataType: string;
  /** The series, as `seriesName` gives it: `ES 202503 FUT 1m · MIDPOINT · all hours`. */
  label: string;
}

export function BarsTable({ bars, dataType, label }: BarsTableProps) {
  const newestFirst = useMemo(() => [...bars].reverse(), [bars]);
  const [page, setPage] = useState(0);
  const pageCount = Math.max(1, Math.ceil(newestFirst.length / BARS_PAGE_SIZE));
  useEffect(() => setPage(0), [bars]);

  const start = page * BARS_PAGE_SIZE;
  const shown = newestFirst.slice(start, start + BARS_PAGE_SIZE);
  return (
    <div className="bars">
      <div className="table-scroll">
        <table className="data-table" data-testid="bars-table">
          <caption className="visually-hidden">Bars of {label}, most recent first. Times in UTC.</caption>
          <TableHead
            columns={[
              isDailyOrLonger(dataType) ? 'Date' : 'Time (UTC)',
              ...['Open', 'High', 'Low', 'Close', 'Volume', 'WAP', 'Trades'].map(numeric),
              'Final',
            ]}
          />
          <tbody>
            {shown.map((bar) => (
              <tr key={bar.timestamp} className={bar.close >= bar.open ? 'bar-up' : 'bar-down'}>
                <td className="nowrap">{formatBarTime(bar.timestamp, dataType)}</td>
                <td className="num">{formatPrice(bar.open)}</td>
                <td className="num">{formatPrice(bar.high)}</td>
                <td className="num">{formatPrice(bar.low)}</td>
                <td className="num close">{formatPrice(bar.close)}</td>
                <td className="num">{formatInteger(bar.volume)}</td>
                <td className="num">{formatPrice(bar.wap)}</td>
                <td className="num">{formatInteger(bar.bar_count)}</td>
                <td>
                  {bar.is_final ? (
                    'yes'
                  ) : (
                    <span className="muted" title="Still forming when fetched; refetched after the TTL">
                      forming
                    </span>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <nav className="pager" aria-label="Bar pages">
        <button type="button" className="button button-small" onClick={() => setPage(page - 1)} disabled={page === 0}>
          ← Newer
        </button>
        <span aria-live="polite">
          {formatInteger(start + 1)}–{formatInteger(start + shown.length)} of {formatInteger(newestFirst.length)} · page{' '}
          {page + 1} of {pageCount}
        </span>
        <button type="button" className="button button-small" onClick={() => setPage(page + 1)} disabled={page >= pageCount - 1}>
          Older →
        </button>
      </nav>
    </div>
  );
}
