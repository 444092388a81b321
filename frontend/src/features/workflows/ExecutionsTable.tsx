import type { Execution } from '../../api/models';
import { formatUtc } from '../../shared/format';
import { hrefFor } from '../../shared/hooks/useHashRoute';
import { DebugMarker, StatusBadge } from '../../shared/StatusBadge';
import { numeric, TableHead } from '../../shared/TableHead';

interface ExecutionsTableProps {
  executions: Execution[];
  openId: string | undefined;
}

function duration(execution: Execution): string {
  if (!execution.started_at || !execution.finished_at) return '—';
  const ms = Date.parse(execution.finished_at) - Date.parse(execution.started_at);
  if (Number.isNaN(ms) || ms < 0) return '—';
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

export function ExecutionsTable({ executions, openId }: ExecutionsTableProps) {
  return (
    <div className="table-scroll">
      <table className="data-table" data-testid="executions-table">
        <caption className="visually-hidden">Workflow executions, newest first</caption>
        <TableHead columns={['Run', 'Status', 'Strategy', 'Symbols', 'Type', 'Started', numeric('Took')]} />
        <tbody>
          {executions.map((execution) => {
            const open = String(execution.id) === openId;
            return (
              <tr key={execution.id} className={open ? 'selected' : undefined} data-testid={`execution-row-${execution.id}`}>
                <td>
                  <a
                    href={hrefFor('workflows', execution.id)}
                    aria-current={open ? 'true' : undefined}
                    aria-label={`Open run ${execution.id}`}
                  >
                    #{execution.id}
                  </a>
                </td>
                <td className="nowrap">
                  <StatusBadge status={execution.status} /> {execution.debug_mode && <DebugMarker />}
                </td>
                <td>{execution.strategy}</td>
                <td className="symbols">{execution.symbols.join(', ')}</td>
                <td>{execution.data_type}</td>
                <td className="nowrap">{formatUtc(execution.started_at)}</td>
                <td className="num nowrap">{duration(execution)}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
