import { instrumentLabel, seriesVariant, type SeriesIdentity, type SeriesIdentityFields } from './series';

/**
 * A table's first cell for a series: the contract (`ES 202503 FUT`), then what sets the series
 * apart (`MIDPOINT · all hours`) in muted text. A stock's TRADES in regular hours shows its symbol alone.
 */
export function SeriesIdentityCell({ series }: { series: Pick<SeriesIdentity, 'symbol'> & SeriesIdentityFields }) {
  const variant = seriesVariant(series);
  return (
    <td className="symbol">
      {instrumentLabel(series)}
      {variant.length > 0 && <span className="muted series-variant">· {variant.join(' · ')}</span>}
    </td>
  );
}
