import { DATA_TYPES } from '../api/types';

interface DataTypeFieldProps {
  id: string;
  value: string;
  onChange: (value: string) => void;
  /** Label of an extra first option with the value "" (e.g. "All" in a filter). */
  anyLabel?: string;
}

/** The labelled bar-size select shared by the cache filters and the two forms. */
export function DataTypeField({ id, value, onChange, anyLabel }: DataTypeFieldProps) {
  return (
    <label className="field" htmlFor={id}>
      <span>Data type</span>
      <select id={id} value={value} onChange={(event) => onChange(event.target.value)}>
        {anyLabel !== undefined && <option value="">{anyLabel}</option>}
        {DATA_TYPES.map((type) => (
          <option key={type} value={type}>
            {type}
          </option>
        ))}
      </select>
    </label>
  );
}
