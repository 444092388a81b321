import type { InputHTMLAttributes } from 'react';

interface SymbolsFieldProps extends Omit<InputHTMLAttributes<HTMLInputElement>, 'id' | 'value' | 'onChange'> {
  id: string;
  value: string;
  onChange: (text: string) => void;
}

/** The comma-separated symbols input of the refresh and workflow forms; `parseSymbols` reads it. */
export function SymbolsField({ id, value, onChange, ...input }: SymbolsFieldProps) {
  return (
    <label className="field field-wide" htmlFor={id}>
      <span>Symbols (comma-separated)</span>
      <input
        id={id}
        value={value}
        onChange={(event) => onChange(event.target.value)}
        placeholder="NVDA, TSLA"
        autoComplete="off"
        spellCheck={false}
        {...input}
      />
    </label>
  );
}
