import react from '@vitejs/plugin-react';
import { defineConfig } from 'vitest/config';

// The backend serves the built app at `/` and the API at `/api` (same origin), so in development
// the dev server forwards `/api` to the backend and the code only ever uses relative URLs.
export default defineConfig({
  plugins: [react()],
  // Absolute asset URLs so index.html also works when the backend serves it for an unknown path.
  base: '/',
  server: {
    proxy: {
      '/api': 'http://127.0.0.1:8000',
    },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
  },
  test: {
    environment: 'jsdom',
    setupFiles: ['./src/test/setup.ts'],
    restoreMocks: true,
    testTimeout: 20_000,
    unstubGlobals: true,
  },
});
