import { DATA_TYPES, type BarSize } from '../api/models';

interface DataTypeFieldProps<Value extends BarSize | ''> {
  id: string;
  value: Value;
  onChange: (value: Value) => void;
  /** Label of an extra first option with the value "" (e.g. "All" in a filter). */
  anyLabel?: Value extends BarSize ? never : string;
}

/** The labelled bar-size select shared by the cache filters and the two forms. */
export function DataTypeField<Value extends BarSize | ''>({ id, value, onChange, anyLabel }: DataTypeFieldProps<Value>) {
  return (
    <label className="field" htmlFor={id}>
      <span>Data type</span>
      {/* The options are DATA_TYPES, and "" only where the value may be "". */}
      <select id={id} value={value} onChange={(event) => onChange(event.target.value as Value)}>
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
