import type { ReactNode } from 'react';
import type { ExecutionDetail, ExecutionStatus, SymbolOutcome } from '../../api/models';
import { formatBarTime, formatDate, formatInteger, formatPrice, formatUtc, shortChecksum } from '../../shared/format';
import { Empty } from '../../shared/States';
import { DebugMarker, StatusBadge } from '../../shared/StatusBadge';
import { numeric, TableHead } from '../../shared/TableHead';

const SOURCE_LABELS: Record<string, string> = {
  cache: 'cache',
  ibkr: 'IBKR',
  mixed: 'cache + IBKR',
  stale_cache: 'stale cache',
};

// Runs that did not finish say why, whether or not the backend recorded an error text.
const UNFINISHED: Partial<Record<ExecutionStatus, { title: string; explanation: string }>> = {
  interrupted: {
    title: 'The run was interrupted',
    explanation: 'The server stopped while this run was in progress, so it has no result. Run it again.',
  },
  cancelled: {
    title: 'The run was cancelled',
    explanation: 'The caller went away before the run finished, so it stopped and has no result.',
  },
};

function levelClass(level: string): string {
  return `log-${level.toLowerCase()}`;
}

const MISSING_RANGES_SHOWN = 3;

/** A [start, end) range of missing bars: the days of daily bars, else the span of time. */
function describeRange([start, end]: [string, string], dataType: string): string {
  if (dataType !== '1d') return `${formatUtc(start)} – ${formatUtc(end)}`;
  const first = formatDate(start);
  const last = formatDate(new Date(Date.parse(end) - 1).toISOString());
  return first === last ? first : `${first} – ${last}`;
}

/** `2 expected bars missing: 2025-11-26, 2025-12-01 – 2025-12-02` */
function missingText(outcome: SymbolOutcome, dataType: string): string {
  const count = outcome.missing_bars ?? 0;
  const ranges = outcome.missing_ranges ?? [];
  const rangeCount = Math.max(outcome.missing_ranges_total ?? 0, ranges.length);
  const shown = ranges.slice(0, MISSING_RANGES_SHOWN).map((range) => describeRange(range, dataType));
  if (rangeCount > MISSING_RANGES_SHOWN) shown.push(`and ${formatInteger(rangeCount - MISSING_RANGES_SHOWN)} more ranges`);
  const what = count > 0 ? `${formatInteger(count)} expected ${count === 1 ? 'bar' : 'bars'} missing` : 'expected bars missing';
  return shown.length ? `${what}: ${shown.join(', ')}` : what;
}

interface DetailSectionProps {
  id: string;
  testId: string;
  title: string;
  empty: string | false;
  children: ReactNode;
}

/** A titled part of the detail; `empty` is what it says instead when it has nothing to show. */
function DetailSection({ id, testId, title, empty, children }: DetailSectionProps) {
  return (
    <section data-testid={testId} aria-labelledby={id}>
      <h3 id={id} className="section-title">
        {title}
      </h3>
      {empty ? <Empty>{empty}</Empty> : children}
    </section>
  );
}

/** One execution: outcome per symbol, signals, logs and where every input bar came from. */
export function ExecutionDetailView({ execution }: { execution: ExecutionDetail }) {
  const perSymbol = Object.entries(execution.result?.per_symbol ?? {});
  const signals = Object.entries(execution.result?.signals ?? {}).flatMap(([symbol, list]) =>
    list.map((signal) => ({ symbol, ...signal })),
  );
  const parameters = Object.entries(execution.parameters ?? {});
  const unfinished = UNFINISHED[execution.status];

  return (
    <div className="execution-detail">
      <div className="execution-head">
        <StatusBadge status={execution.status} testId="execution-status" />
        {execution.debug_mode && <DebugMarker />}
        <span>
          <strong>{execution.strategy}</strong> on {execution.symbols.join(', ')} · {execution.data_type}
        </span>
      </div>
      <dl className="facts">
        <div>
          <dt>Started</dt>
          <dd>{formatUtc(execution.started_at, true)}</dd>
        </div>
        <div>
          <dt>Finished</dt>
          <dd>{formatUtc(execution.finished_at, true)}</dd>
        </div>
        {parameters.map(([name, value]) => (
          <div key={name}>
            <dt>{name}</dt>
            <dd>{typeof value === 'object' ? JSON.stringify(value) : String(value)}</dd>
          </div>
        ))}
      </dl>
      {(execution.error || unfinished) && (
        <div className="notice notice-error" role="alert" data-testid="execution-error">
          <strong className="notice-title">{unfinished?.title ?? 'The run failed'}</strong>
          {unfinished && <p className="notice-text">{unfinished.explanation}</p>}
          {execution.error && <p className="notice-text">{execution.error}</p>}
        </div>
      )}

      {perSymbol.length > 0 && (
        <>
          <h3 className="section-title">Per symbol</h3>
          <ul className="per-symbol">
            {perSymbol.map(([symbol, outcome]) => (
              <li key={symbol} data-testid={`per-symbol-${symbol}`}>
                <StatusBadge status={outcome.status} /> <strong>{symbol}</strong> {formatInteger(outcome.bars)} bars
                {outcome.status === 'partial' && (
                  <span className="warn-text">
                    {' — '}
                    <span aria-hidden="true">⚠ </span>
                    {missingText(outcome, execution.data_type)}
                  </span>
                )}
                {outcome.error && <span className="error-text"> — {outcome.error}</span>}
              </li>
            ))}
          </ul>
        </>
      )}

      <h3 className="section-title">Signals ({signals.length})</h3>
      {signals.length === 0 ? (
        <Empty>No signals.</Empty>
      ) : (
        <div className="table-scroll table-short">
          <table className="data-table">
            <TableHead columns={['Symbol', 'Time', 'Signal', numeric('Price')]} />
            <tbody>
              {signals.map((signal, index) => (
                <tr key={`${signal.symbol}-${signal.timestamp}-${index}`}>
                  <td className="symbol">{signal.symbol}</td>
                  <td className="nowrap">{formatBarTime(signal.timestamp, execution.data_type)}</td>
                  <td className={signal.signal === 'buy' ? 'signal-buy' : 'signal-sell'}>{signal.signal}</td>
                  <td className="num">{formatPrice(signal.price)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}

      <DetailSection
        id="lineage-title"
        testId="execution-lineage"
        title="Data lineage"
        empty={execution.lineage.length === 0 && 'No lineage was recorded.'}
      >
        <div className="table-scroll">
          <table className="data-table">
            <caption className="visually-hidden">Where the input bars of each symbol came from</caption>
            <TableHead
              columns={['Step', 'Symbol', 'Type', 'Range', 'Data source', 'Hit', numeric('Bars'), 'Checksum', 'Fetched']}
            />
            <tbody>
              {execution.lineage.map((record, index) => {
                const meta = record.metadata ?? ({} as ExecutionDetail['lineage'][number]['metadata']);
                return (
                  <tr key={`${record.step}-${record.symbol}-${index}`} data-testid={`lineage-row-${record.symbol}`}>
                    <td>{record.step}</td>
                    <td className="symbol">{record.symbol}</td>
                    <td>{record.data_type}</td>
                    <td className="nowrap">
                      {formatBarTime(record.range_start, record.data_type)} → {formatBarTime(record.range_end, record.data_type)}
                    </td>
                    <td>
                      <StatusBadge
                        status={meta.data_source ?? 'unknown'}
                        label={SOURCE_LABELS[meta.data_source] ?? meta.data_source ?? '—'}
                      />
                      {meta.debug_mode && <span className="muted small"> (debug)</span>}
                    </td>
                    <td>
                      <StatusBadge status={meta.cache_hit ?? 'unknown'} label={meta.cache_hit ?? '—'} />
                    </td>
                    <td className="num">{formatInteger(meta.bar_count)}</td>
                    <td>
                      <code className="checksum" title={meta.checksum}>
                        {shortChecksum(meta.checksum)}
                      </code>
                    </td>
                    <td className="nowrap small">
                      {formatUtc(meta.fetched_at_min)}
                      {meta.fetched_at_max && meta.fetched_at_max !== meta.fetched_at_min
                        ? ` – ${formatUtc(meta.fetched_at_max)}`
                        : ''}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      </DetailSection>

      <DetailSection id="logs-title" testId="execution-logs" title="Logs" empty={execution.logs.length === 0 && 'No log lines.'}>
        <ol className="logs">
          {execution.logs.map((log, index) => (
            <li key={index} className={`log ${levelClass(log.level)}`}>
              <time className="log-time" dateTime={log.created_at}>
                {formatUtc(log.created_at, true)}
              </time>
              <span className="log-level">{log.level.toUpperCase()}</span>
              <span className="log-step">{log.step}</span>
              <span className="log-message">{log.message}</span>
            </li>
          ))}
        </ol>
      </DetailSection>
    </div>
  );
}
