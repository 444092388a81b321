import { useState } from 'react';
import type { AppConfig } from '../api/models';
import { GatewayIndicator } from '../shared/GatewayStatus';
import { StatusBadge } from '../shared/StatusBadge';
import { useApiToken } from '../shared/hooks/useApiToken';
import { hrefFor, type PageName } from '../shared/hooks/useHashRoute';
import './AppHeader.css';

const NAV: { page: PageName; label: string }[] = [
  { page: 'cache', label: 'Cache' },
  { page: 'workflows', label: 'Workflows' },
  { page: 'status', label: 'Status' },
];

function TokenControl() {
  const { hasToken, forgetToken, askToken } = useApiToken();
  return hasToken ? (
    <button
      type="button"
      className="button button-small button-ghost"
      onClick={forgetToken}
      title="Remove the stored API token from this tab"
    >
      Forget token
    </button>
  ) : (
    <button type="button" className="button button-small button-ghost" onClick={askToken}>
      Set token
    </button>
  );
}

interface AppHeaderProps {
  page: PageName;
  config: AppConfig | undefined;
}

export function AppHeader({ page, config }: AppHeaderProps) {
  const [menuOpen, setMenuOpen] = useState(false);
  return (
    <header className="app-header">
      <a className="brand" href={hrefFor('cache')}>
        Market data cache
      </a>
      <button
        type="button"
        className="menu-toggle button button-ghost"
        aria-expanded={menuOpen}
        aria-controls="main-nav"
        onClick={() => setMenuOpen((open) => !open)}
      >
        Menu
      </button>
      <nav id="main-nav" className={`main-nav ${menuOpen ? 'open' : ''}`} aria-label="Main">
        {NAV.map((item) => (
          <a
            key={item.page}
            href={hrefFor(item.page)}
            className="nav-link"
            aria-current={page === item.page ? 'page' : undefined}
            onClick={() => setMenuOpen(false)}
          >
            {item.label}
          </a>
        ))}
      </nav>
      <div className="header-status">
        {config?.gateway?.simulated && (
          <StatusBadge
            status="simulated"
            tone="info"
            label="simulated gateway"
            testId="simulated-badge"
            title="The gateway is the bundled IBKR simulator, not a real TWS / IB Gateway"
          />
        )}
        {config && <GatewayIndicator config={config} />}
        {config?.api_token_required && <TokenControl />}
      </div>
    </header>
  );
}
