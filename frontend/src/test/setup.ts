import '@testing-library/jest-dom/vitest';
import { cleanup, configure } from '@testing-library/react';
import { afterEach, vi } from 'vitest';

// A loaded CI machine can be slow to render; waiting longer costs nothing when it is not.
configure({ asyncUtilTimeout: 5000 });

// jsdom has no canvas: the chart library is the one module replaced in tests. The fake records
// what the app hands to it, so tests can check the chart receives the bars.
vi.mock('lightweight-charts', async () => (await import('./fakeChart')).fakeChartModule());

afterEach(() => {
  cleanup();
  sessionStorage.clear();
  window.location.hash = '';
  vi.useRealTimers();
});
