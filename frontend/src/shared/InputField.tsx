import type { InputHTMLAttributes } from 'react';

interface InputFieldProps extends Omit<InputHTMLAttributes<HTMLInputElement>, 'id' | 'value' | 'onChange'> {
  id: string;
  label: string;
  value: string;
  onChange: (text: string) => void;
  /** Spans the whole row of a form grid. */
  wide?: boolean;
}

/** A labelled text input of the forms and filters; other props go to the input. */
export function InputField({ id, label, value, onChange, wide, ...input }: InputFieldProps) {
  return (
    <label className={wide ? 'field field-wide' : 'field'} htmlFor={id}>
      <span>{label}</span>
      <input id={id} value={value} onChange={(event) => onChange(event.target.value)} {...input} />
    </label>
  );
}

type FieldProps = Omit<InputFieldProps, 'label'>;

/** The comma-separated symbols of the refresh and workflow forms; `parseSymbols` reads it. */
export function SymbolsField(props: FieldProps) {
  return (
    <InputField
      label="Symbols (comma-separated)"
      wide
      placeholder="NVDA, TSLA"
      autoComplete="off"
      spellCheck={false}
      {...props}
    />
  );
}

/** A whole number of days, at least 1. */
export function DaysField(props: InputFieldProps) {
  return <InputField type="number" min={1} step={1} {...props} />;
}
