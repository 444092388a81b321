import { useId } from 'react';
import type { BarSize } from '../../api/models';
import { DataTypeField } from '../../shared/DataTypeField';

export interface CacheFilters {
  symbol: string;
  /** '' for every bar size. */
  dataType: BarSize | '';
  /** `YYYY-MM-DD` from the date inputs, read as UTC days. */
  dateFrom: string;
  dateTo: string;
}

export const NO_FILTERS: CacheFilters = { symbol: '', dataType: '', dateFrom: '', dateTo: '' };

export function hasAnyFilter(filters: CacheFilters): boolean {
  return Boolean(filters.symbol.trim() || filters.dataType || filters.dateFrom || filters.dateTo);
}

interface SeriesFiltersProps {
  filters: CacheFilters;
  knownSymbols: string[];
  onChange: (filters: CacheFilters) => void;
}

export function SeriesFilters({ filters, knownSymbols, onChange }: SeriesFiltersProps) {
  const id = useId();
  const set = (patch: Partial<CacheFilters>) => onChange({ ...filters, ...patch });
  const rangeInvalid = Boolean(filters.dateFrom && filters.dateTo && filters.dateFrom > filters.dateTo);
  return (
    <fieldset className="filters">
      <legend className="visually-hidden">Filters</legend>
      <label className="field" htmlFor={`${id}-symbol`}>
        <span>Symbol</span>
        <input
          id={`${id}-symbol`}
          type="search"
          list={`${id}-symbols`}
          value={filters.symbol}
          placeholder="All"
          autoComplete="off"
          spellCheck={false}
          onChange={(event) => set({ symbol: event.target.value.toUpperCase() })}
        />
        <datalist id={`${id}-symbols`}>
          {knownSymbols.map((symbol) => (
            <option key={symbol} value={symbol} />
          ))}
        </datalist>
      </label>
      <DataTypeField id={`${id}-type`} value={filters.dataType} onChange={(dataType) => set({ dataType })} anyLabel="All" />
      <label className="field" htmlFor={`${id}-from`}>
        <span>From (UTC)</span>
        <input
          id={`${id}-from`}
          type="date"
          value={filters.dateFrom}
          onChange={(event) => set({ dateFrom: event.target.value })}
        />
      </label>
      <label className="field" htmlFor={`${id}-to`}>
        <span>To (UTC)</span>
        <input
          id={`${id}-to`}
          type="date"
          value={filters.dateTo}
          onChange={(event) => set({ dateTo: event.target.value })}
          aria-invalid={rangeInvalid}
        />
      </label>
      <button
        type="button"
        className="button button-ghost"
        onClick={() => onChange(NO_FILTERS)}
        disabled={!hasAnyFilter(filters)}
      >
        Reset filters
      </button>
      {rangeInvalid && (
        <p className="field-error" role="alert">
          “From” is after “To”: no bar can match.
        </p>
      )}
    </fieldset>
  );
}
