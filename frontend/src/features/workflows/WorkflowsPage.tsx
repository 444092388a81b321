import { useEffect, useState } from 'react';
import { api } from '../../api/client';
import type { ExecuteRequest, Execution } from '../../api/models';
import { formatInteger } from '../../shared/format';
import { useApiData } from '../../shared/hooks/useApiData';
import { isCancelled, useApiToken } from '../../shared/hooks/useApiToken';
import { useConfig } from '../../shared/hooks/useConfig';
import { hrefFor } from '../../shared/hooks/useHashRoute';
import { useReloadOnRecovery } from '../../shared/hooks/useHealth';
import { Empty, ErrorNotice, Loading } from '../../shared/States';
import { StatusBadge } from '../../shared/StatusBadge';
import { ExecutionDetailView } from './ExecutionDetailView';
import { ExecutionsTable } from './ExecutionsTable';
import { RunWorkflowForm } from './RunWorkflowForm';
import './workflows.css';

const EXECUTIONS_PAGE_SIZE = 20;

function ExecutionPanel({ id, version }: { id: string; version: number }) {
  const { data, error, loading, reload } = useApiData(() => api.getExecution(id), `execution-${id}`);
  useEffect(() => {
    if (version > 0) reload();
  }, [version, reload]);
  return (
    <section className="card" aria-labelledby="execution-title">
      <div className="card-header">
        <h2 id="execution-title" className="card-title">
          Run #{id}
        </h2>
        <a className="button button-small button-ghost" href={hrefFor('workflows')}>
          Close
        </a>
      </div>
      {loading && !data && <Loading>Loading run #{id}…</Loading>}
      {error != null && <ErrorNotice error={error} title={`Could not load run #${id}`} onRetry={reload} />}
      {data && <ExecutionDetailView execution={data} />}
    </section>
  );
}

export function WorkflowsPage({ executionId }: { executionId?: string }) {
  const { config } = useConfig();
  const { runProtected } = useApiToken();
  const strategies = useApiData(api.getStrategies, 'strategies');
  const [offset, setOffset] = useState(0);
  const executions = useApiData(() => api.listExecutions(EXECUTIONS_PAGE_SIZE, offset), `executions-${offset}`);
  const [running, setRunning] = useState(false);
  const [runError, setRunError] = useState<unknown>(null);
  const [lastRun, setLastRun] = useState<Execution | null>(null);
  const [detailVersion, setDetailVersion] = useState(0);
  useReloadOnRecovery(() => {
    executions.reload();
    setDetailVersion((version) => version + 1);
  });

  async function run(request: ExecuteRequest) {
    setRunning(true);
    setRunError(null);
    setLastRun(null);
    try {
      const execution = await runProtected(() => api.executeWorkflow(request));
      setLastRun(execution);
      setOffset(0);
      executions.reload();
      setDetailVersion((version) => version + 1);
      window.location.hash = hrefFor('workflows', execution.id);
    } catch (error) {
      if (!isCancelled(error)) setRunError(error);
    } finally {
      setRunning(false);
    }
  }

  const count = executions.data?.count ?? 0;
  return (
    <div className="page page-workflows">
      <div className="page-head">
        <div>
          <h1>Workflows</h1>
          <p className="muted">
            {config?.debug_mode
              ? 'DEBUG MODE: runs read bars only from the cache and fail on a cache miss.'
              : 'Runs read bars through the cache and fetch what is missing from IBKR.'}
          </p>
        </div>
      </div>
      <div className="workflows-layout">
        <div className="workflows-side">
          {strategies.loading && !strategies.data && <Loading>Loading strategies…</Loading>}
          {strategies.error != null && (
            <ErrorNotice error={strategies.error} title="Could not load the strategies" onRetry={strategies.reload} />
          )}
          {strategies.data && strategies.data.length === 0 && <Empty>The backend offers no strategies.</Empty>}
          {strategies.data && strategies.data.length > 0 && (
            <RunWorkflowForm
              strategies={strategies.data}
              defaultSymbols={config?.cache_symbols ?? []}
              busy={running}
              onRun={(request) => void run(request)}
            />
          )}
          {running && <Loading>Running the workflow… this can take a few seconds.</Loading>}
          {runError != null && <ErrorNotice error={runError} title="The workflow did not run" />}
          {lastRun && (
            <p className="notice notice-success" role="status">
              Run #{lastRun.id} finished: <StatusBadge status={lastRun.status} />
            </p>
          )}
        </div>
        <div className="workflows-main">
          <section className="card" aria-labelledby="executions-title">
            <div className="card-header">
              <h2 id="executions-title" className="card-title">
                Executions {executions.data ? <span className="muted">({formatInteger(count)})</span> : null}
              </h2>
              <button type="button" className="button button-small" onClick={executions.reload} disabled={executions.loading}>
                {executions.loading ? 'Loading…' : 'Reload'}
              </button>
            </div>
            {executions.loading && !executions.data && <Loading>Loading executions…</Loading>}
            {executions.error != null && (
              <ErrorNotice error={executions.error} title="Could not load the executions" onRetry={executions.reload} />
            )}
            {executions.data && executions.data.data.length === 0 && <Empty>No workflow has run yet.</Empty>}
            {executions.data && executions.data.data.length > 0 && (
              <>
                <ExecutionsTable executions={executions.data.data} openId={executionId} />
                {count > EXECUTIONS_PAGE_SIZE && (
                  <nav className="pager" aria-label="Execution pages">
                    <button
                      type="button"
                      className="button button-small"
                      disabled={offset === 0}
                      onClick={() => setOffset(Math.max(0, offset - EXECUTIONS_PAGE_SIZE))}
                    >
                      ← Newer
                    </button>
                    <span>
                      {offset + 1}–{Math.min(offset + EXECUTIONS_PAGE_SIZE, count)} of {count}
                    </span>
                    <button
                      type="button"
                      className="button button-small"
                      disabled={offset + EXECUTIONS_PAGE_SIZE >= count}
                      onClick={() => setOffset(offset + EXECUTIONS_PAGE_SIZE)}
                    >
                      Older →
                    </button>
                  </nav>
                )}
              </>
            )}
          </section>
          {executionId && <ExecutionPanel id={executionId} version={detailVersion} />}
        </div>
      </div>
    </div>
  );
}
