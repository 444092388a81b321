import { useEffect, useMemo, useState } from 'react';
import type { SeriesBar } from '../api/types';
import { formatBarTime, formatInteger, formatPrice } from '../format';

export const BARS_PAGE_SIZE = 50;

interface BarsTableProps {
  /** In time order, as the API sends them; shown most recent first. */
  bars: SeriesBar[];
  dataType: string;
}

export function BarsTable({ bars, dataType }: BarsTableProps) {
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
          <caption className="visually-hidden">Bars, most recent first. Times in UTC.</caption>
          <thead>
            <tr>
              <th scope="col">{dataType === '1d' ? 'Date' : 'Time (UTC)'}</th>
              <th scope="col" className="num">
                Open
              </th>
              <th scope="col" className="num">
                High
              </th>
              <th scope="col" className="num">
                Low
              </th>
              <th scope="col" className="num">
                Close
              </th>
              <th scope="col" className="num">
                Volume
              </th>
              <th scope="col" className="num">
                WAP
              </th>
              <th scope="col" className="num">
                Trades
              </th>
              <th scope="col">Final</th>
            </tr>
          </thead>
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
