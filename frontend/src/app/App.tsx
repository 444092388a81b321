import { CachePage } from '../features/cache/CachePage';
import { StatusPage } from '../features/status/StatusPage';
import { WorkflowsPage } from '../features/workflows/WorkflowsPage';
import { DatabaseBanner } from '../shared/DatabaseBanner';
import { DebugBanner } from '../shared/DebugBanner';
import { GatewayErrorBanner } from '../shared/GatewayStatus';
import { TokenProvider } from '../shared/hooks/useApiToken';
import { ConfigProvider, useConfig } from '../shared/hooks/useConfig';
import { useHashRoute } from '../shared/hooks/useHashRoute';
import { HealthProvider } from '../shared/hooks/useHealth';
import { ErrorNotice } from '../shared/States';
import { AppHeader } from './AppHeader';
import './App.css';

function Shell() {
  const route = useHashRoute();
  const { config, error, reload } = useConfig();
  return (
    <div className="app">
      <a
        className="skip-link"
        href="#main-content"
        onClick={(event) => {
          // The hash is the router's; move focus without changing it.
          event.preventDefault();
          document.getElementById('main-content')?.focus();
        }}
      >
        Skip to content
      </a>
      <AppHeader page={route.page} config={config} />
      <DebugBanner config={config} />
      <DatabaseBanner />
      <GatewayErrorBanner config={config} />
      {error != null && !config && (
        <div className="page-notice">
          <ErrorNotice error={error} title="Could not load the backend configuration" onRetry={reload} />
        </div>
      )}
      <main id="main-content" className="main" tabIndex={-1}>
        {route.page === 'cache' && <CachePage />}
        {route.page === 'workflows' && <WorkflowsPage executionId={route.params[0]} />}
        {route.page === 'status' && <StatusPage />}
      </main>
    </div>
  );
}

export function App() {
  return (
    <ConfigProvider>
      <HealthProvider>
        <TokenProvider>
          <Shell />
        </TokenProvider>
      </HealthProvider>
    </ConfigProvider>
  );
}
