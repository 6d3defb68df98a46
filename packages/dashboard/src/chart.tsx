/**
 * Events over time: blocked and alerted per bucket, as stacked bars (uPlot on a canvas). The server chooses
 * the buckets (at most 120); the chart only draws them.
 */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { Summary } from './api.js';

const HEIGHT = 180;
const RED = '#d62828';
const AMBER = '#e89b0c';

export function Chart({ timeline }: { timeline: Summary['timeline'] | null }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const alertedOnly = useRef<number[]>([]);

  useEffect(() => {
    const element = box.current;
    if (!element) return;
    const bars = uPlot.paths.bars!({ size: [0.8, 24] });
    const chart = new uPlot(
      {
        width: Math.max(element.clientWidth, 200),
        height: HEIGHT,
        legend: { live: true },
        // Room on the left for the date under the first time label.
        padding: [8, 24, 0, 28],
        cursor: { drag: { x: false, y: false } },
        scales: {
          // Set by hand after each update (below): uPlot's own ranging pads a lone bucket out to years.
          x: { time: true, auto: false },
          y: { auto: false, range: [0, 1] },
        },
        axes: [{ stroke: 'currentColor' }, { stroke: 'currentColor', size: 48 }],
        series: [
          {},
          // Drawn first and as the total, so the blocked bars in front make the pair read as a stack.
          {
            label: 'alerted',
            fill: AMBER,
            stroke: AMBER,
            paths: bars,
            points: { show: false },
            value: (_u, _v, _series, index) => (index === null ? '–' : String(alertedOnly.current[index] ?? 0)),
          },
          { label: 'blocked', fill: RED, stroke: RED, paths: bars, points: { show: false } },
        ],
      },
      [[], [], []],
      element,
    );
    plot.current = chart;
    const observer = new ResizeObserver(() => {
      const width = Math.max(element.clientWidth, 200);
      if (width !== chart.width) chart.setSize({ width, height: HEIGHT });
    });
    observer.observe(element);
    return () => {
      observer.disconnect();
      chart.destroy();
      plot.current = null;
    };
  }, []);

  useEffect(() => {
    const buckets = timeline?.buckets ?? [];
    alertedOnly.current = buckets.map((b) => b.alerted);
    const chart = plot.current;
    if (!chart) return;
    chart.setData(
      [buckets.map((b) => b.start / 1000), buckets.map((b) => b.alerted + b.blocked), buckets.map((b) => b.blocked)],
      false,
    );
    // Half a bucket of room on each side, so the first and last bars show whole; at least ten buckets wide, so a
    // burst of a few seconds does not fill the chart with one fat bar.
    const step = (timeline?.bucketMs ?? 1000) / 1000;
    if (buckets.length > 0) {
      const first = buckets[0]!.start / 1000;
      const last = Math.max(buckets.at(-1)!.start / 1000, first + 9 * step);
      chart.setScale('x', { min: first - step / 2, max: last + step / 2 });
    }
    chart.setScale('y', { min: 0, max: Math.max(1, ...buckets.map((b) => b.alerted + b.blocked)) });
  }, [timeline]);

  const blocked = timeline?.buckets.reduce((sum, b) => sum + b.blocked, 0) ?? 0;
  const alerted = timeline?.buckets.reduce((sum, b) => sum + b.alerted, 0) ?? 0;
  return (
    <div
      class="chart"
      ref={box}
      data-testid="chart"
      role="img"
      aria-label={`Events over time: ${blocked} blocked and ${alerted} alerted`}
    />
  );
}
