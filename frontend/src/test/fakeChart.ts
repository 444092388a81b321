import { vi } from 'vitest';

export interface FakeSeries {
  setData: ReturnType<typeof vi.fn>;
  priceScale: () => { applyOptions: ReturnType<typeof vi.fn> };
}

export const chartCalls = {
  created: 0,
  removed: 0,
  series: [] as FakeSeries[],
};

function fakeSeries(): FakeSeries {
  const series = { setData: vi.fn(), priceScale: () => ({ applyOptions: vi.fn() }) };
  chartCalls.series.push(series);
  return series;
}

export function fakeChartModule() {
  return {
    CandlestickSeries: { type: 'Candlestick' },
    HistogramSeries: { type: 'Histogram' },
    createChart: vi.fn(() => {
      chartCalls.created += 1;
      return {
        addSeries: vi.fn(() => fakeSeries()),
        applyOptions: vi.fn(),
        timeScale: () => ({ fitContent: vi.fn() }),
        remove: vi.fn(() => {
          chartCalls.removed += 1;
        }),
      };
    }),
  };
}

export function resetChartCalls() {
  chartCalls.created = 0;
  chartCalls.removed = 0;
  chartCalls.series = [];
}
