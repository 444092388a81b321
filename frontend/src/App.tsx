import { AppHeader } from './components/AppHeader';
import { DatabaseBanner } from './components/DatabaseBanner';
import { DebugBanner } from './components/DebugBanner';
import { GatewayErrorBanner } from './components/GatewayStatus';
import { ErrorNotice } from './components/States';
import { TokenProvider } from './hooks/useApiToken';
import { ConfigProvider, useConfig } from './hooks/useConfig';
import { HealthProvider } from './hooks/useHealth';
import { useHashRoute } from './hooks/useHashRoute';
import { CachePage } from './pages/CachePage';
import { StatusPage } from './pages/StatusPage';
import { WorkflowsPage } from './pages/WorkflowsPage';

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
