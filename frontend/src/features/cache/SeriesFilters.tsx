import { useId } from 'react';
import type { BarSize } from '../../api/models';
import { DataTypeField } from '../../shared/DataTypeField';
import { InputField } from '../../shared/InputField';
import { SelectField } from '../../shared/SelectField';
import {
  ALLOWED_WHAT_TO_SHOW,
  ASSET_CLASS_LABELS,
  SEC_TYPES,
  WHAT_TO_SHOW,
  type SecType,
  type WhatToShow,
} from '../../shared/series';

/** Regular hours, all hours, or '' for either. */
export type HoursFilter = '' | 'rth' | 'all';

export interface CacheFilters {
  symbol: string;
  /** '' for every bar size. */
  dataType: BarSize | '';
  /** '' for every asset class. */
  secType: SecType | '';
  /** '' for every whatToShow. */
  whatToShow: WhatToShow | '';
  hours: HoursFilter;
  /** `YYYY-MM-DD` from the date inputs, read as UTC days. */
  dateFrom: string;
  dateTo: string;
}

export const NO_FILTERS: CacheFilters = {
  symbol: '',
  dataType: '',
  secType: '',
  whatToShow: '',
  hours: '',
  dateFrom: '',
  dateTo: '',
};

export function hasAnyFilter(filters: CacheFilters): boolean {
  return Boolean(
    filters.symbol.trim() ||
      filters.dataType ||
      filters.secType ||
      filters.whatToShow ||
      filters.hours ||
      filters.dateFrom ||
      filters.dateTo,
  );
}

const ASSET_CLASS_OPTIONS = [
  { value: '' as const, label: 'All' },
  ...SEC_TYPES.map((secType) => ({ value: secType, label: ASSET_CLASS_LABELS[secType] })),
];

const HOURS_OPTIONS: { value: HoursFilter; label: string }[] = [
  { value: '', label: 'Any' },
  { value: 'rth', label: 'Regular hours' },
  { value: 'all', label: 'All hours' },
];

interface SeriesFiltersProps {
  filters: CacheFilters;
  knownSymbols: string[];
  onChange: (filters: CacheFilters) => void;
}

export function SeriesFilters({ filters, knownSymbols, onChange }: SeriesFiltersProps) {
  const id = useId();
  const set = (patch: Partial<CacheFilters>) => onChange({ ...filters, ...patch });
  const rangeInvalid = Boolean(filters.dateFrom && filters.dateTo && filters.dateFrom > filters.dateTo);
  // With an asset class chosen, only the series it has are offered.
  const shown = filters.secType ? ALLOWED_WHAT_TO_SHOW[filters.secType] : WHAT_TO_SHOW;
  const chooseAssetClass = (secType: SecType | '') =>
    set({
      secType,
      whatToShow:
        secType && filters.whatToShow && !ALLOWED_WHAT_TO_SHOW[secType].includes(filters.whatToShow) ? '' : filters.whatToShow,
    });
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
      <SelectField
        id={`${id}-asset`}
        label="Asset class"
        value={filters.secType}
        options={ASSET_CLASS_OPTIONS}
        onChange={chooseAssetClass}
      />
      <DataTypeField id={`${id}-type`} value={filters.dataType} onChange={(dataType) => set({ dataType })} anyLabel="All" />
      <SelectField
        id={`${id}-what`}
        label="What to show"
        value={filters.whatToShow}
        options={[{ value: '' as const, label: 'All' }, ...shown.map((value) => ({ value, label: value }))]}
        onChange={(whatToShow) => set({ whatToShow })}
      />
      <SelectField
        id={`${id}-hours`}
        label="Hours"
        value={filters.hours}
        options={HOURS_OPTIONS}
        onChange={(hours) => set({ hours })}
      />
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
