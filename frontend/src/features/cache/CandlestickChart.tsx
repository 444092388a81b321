import {
  CandlestickSeries,
  createChart,
  HistogramSeries,
  type IChartApi,
  type ISeriesApi,
  type UTCTimestamp,
} from 'lightweight-charts';
import { useEffect, useRef, useState } from 'react';
import type { SeriesBar } from '../../api/models';
import { isDailyOrLonger } from '../../shared/series';

const UP = '#16a34a';
const DOWN = '#dc2626';

interface ChartHandles {
  chart: IChartApi;
  candles: ISeriesApi<'Candlestick'>;
  volume: ISeriesApi<'Histogram'>;
}

/** Bars in the chart's form: ascending, one per second-precision time (the library demands both). */
export function toChartData(bars: SeriesBar[]) {
  const byTime = new Map<number, SeriesBar>();
  for (const bar of bars) {
    const time = Math.floor(Date.parse(bar.timestamp) / 1000);
    if (!Number.isNaN(time)) byTime.set(time, bar);
  }
  const times = Array.from(byTime.keys()).sort((a, b) => a - b);
  return {
    candles: times.map((time) => {
      const bar = byTime.get(time)!;
      return { time: time as UTCTimestamp, open: bar.open, high: bar.high, low: bar.low, close: bar.close };
    }),
    // A quote series (MIDPOINT, BID, ASK) has no volume: its bars leave the histogram empty.
    volume: times.map((time) => {
      const bar = byTime.get(time)!;
      if (bar.volume === null || !Number.isFinite(bar.volume)) return { time: time as UTCTimestamp };
      return { time: time as UTCTimestamp, value: bar.volume, color: bar.close >= bar.open ? `${UP}80` : `${DOWN}80` };
    }),
  };
}

interface CandlestickChartProps {
  bars: SeriesBar[];
  dataType: string;
  label: string;
}

/**
 * Candles with volume below them. The chart is created in an effect, after the element exists,
 * so rendering never touches canvas APIs (tests replace the library module).
 */
export function CandlestickChart({ bars, dataType, label }: CandlestickChartProps) {
  const containerRef = useRef<HTMLDivElement>(null);
  const handlesRef = useRef<ChartHandles | null>(null);
  const [failed, setFailed] = useState(false);

  useEffect(() => {
    if (!containerRef.current) return;
    try {
      const chart = createChart(containerRef.current, {
        autoSize: true,
        layout: { background: { color: '#ffffff' }, textColor: '#334155', fontSize: 11 },
        grid: { vertLines: { color: '#f1f5f9' }, horzLines: { color: '#f1f5f9' } },
        rightPriceScale: { borderColor: '#e2e8f0' },
        timeScale: { borderColor: '#e2e8f0' },
      });
      const candles = chart.addSeries(CandlestickSeries, {
        upColor: UP,
        downColor: DOWN,
        borderUpColor: UP,
        borderDownColor: DOWN,
        wickUpColor: UP,
        wickDownColor: DOWN,
      });
      candles.priceScale().applyOptions({ scaleMargins: { top: 0.05, bottom: 0.25 } });
      const volume = chart.addSeries(HistogramSeries, { priceFormat: { type: 'volume' }, priceScaleId: 'volume' });
      volume.priceScale().applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
      handlesRef.current = { chart, candles, volume };
    } catch {
      setFailed(true); // e.g. no canvas support; the bars table still shows every bar
    }
    return () => {
      handlesRef.current?.chart.remove();
      handlesRef.current = null;
    };
  }, []);

  useEffect(() => {
    const handles = handlesRef.current;
    if (!handles) return;
    const data = toChartData(bars);
    handles.chart.applyOptions({
      timeScale: { timeVisible: !isDailyOrLonger(dataType), secondsVisible: dataType.endsWith('s') },
    });
    handles.candles.setData(data.candles);
    handles.volume.setData(data.volume);
    handles.chart.timeScale().fitContent();
  }, [bars, dataType]);

  return (
    <figure className="chart-figure">
      <div
        ref={containerRef}
        className="chart"
        data-testid="candlestick-chart"
        role="img"
        aria-label={`Candlestick chart with volume: ${label}, ${bars.length} bars, times in UTC`}
      />
      {failed && <p className="state state-empty">The chart could not be drawn in this browser; the bars are listed below.</p>}
    </figure>
  );
}
