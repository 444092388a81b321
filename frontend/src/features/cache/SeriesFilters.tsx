import { useId } from 'react';
import type { BarSize } from '../../api/models';
import { DataTypeField } from '../../shared/DataTypeField';
import { InputField } from '../../shared/InputField';

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
      <InputField
        id={`${id}-from`}
        label="From (UTC)"
        type="date"
        value={filters.dateFrom}
        onChange={(dateFrom) => set({ dateFrom })}
      />
      <InputField
        id={`${id}-to`}
        label="To (UTC)"
        type="date"
        value={filters.dateTo}
        onChange={(dateTo) => set({ dateTo })}
        aria-invalid={rangeInvalid}
      />
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
