import { useId, useState } from 'react';
import type { BarSize, RefreshRequest } from '../../api/models';
import { DataTypeField } from '../../shared/DataTypeField';
import { DaysField, InputField, SymbolsField } from '../../shared/InputField';
import { parseSymbols } from '../../shared/format';
import { ErrorNotice } from '../../shared/States';

interface AddSymbolsFormProps {
  defaultExchange: string;
  busy: boolean;
  /** Why the backend refused the last request of this form (e.g. too many IBKR requests). */
  error?: unknown;
  onSubmit: (request: RefreshRequest) => void;
}

const SYMBOL_PATTERN = /^[A-Z0-9.\-]{1,15}$/;

/** Fills the cache for new (or existing) symbols through a refresh job. */
export function AddSymbolsForm({ defaultExchange, busy, error, onSubmit }: AddSymbolsFormProps) {
  const id = useId();
  const [symbolsText, setSymbolsText] = useState('');
  const [dataType, setDataType] = useState<BarSize>('1d');
  const [daysBack, setDaysBack] = useState('30');
  const [exchange, setExchange] = useState('');
  const [force, setForce] = useState(false);
  const [problem, setProblem] = useState<string | null>(null);

  function submit(event: React.FormEvent) {
    event.preventDefault();
    const symbols = parseSymbols(symbolsText);
    const days = Number(daysBack);
    const bad = symbols.filter((symbol) => !SYMBOL_PATTERN.test(symbol));
    if (symbols.length === 0) return setProblem('Enter at least one symbol, e.g. NVDA, TSLA.');
    if (bad.length) return setProblem(`Not a valid symbol: ${bad.join(', ')}.`);
    if (!Number.isInteger(days) || days < 1) return setProblem('Days back must be a whole number of at least 1.');
    setProblem(null);
    onSubmit({
      symbols,
      data_type: dataType,
      days_back: days,
      force,
      ...(exchange.trim() ? { exchange: exchange.trim().toUpperCase() } : {}),
    });
  }

  return (
    <form className="card form-grid" onSubmit={submit} aria-labelledby={`${id}-title`} noValidate>
      <h3 id={`${id}-title`} className="card-title">
        Add symbols to the cache
      </h3>
      <SymbolsField
        id={`${id}-symbols`}
        value={symbolsText}
        onChange={setSymbolsText}
        aria-invalid={Boolean(problem)}
        aria-describedby={problem ? `${id}-problem` : error != null ? `${id}-refused` : undefined}
      />
      <DataTypeField id={`${id}-type`} value={dataType} onChange={setDataType} />
      <DaysField id={`${id}-days`} label="Days back" inputMode="numeric" value={daysBack} onChange={setDaysBack} />
      <InputField
        id={`${id}-exchange`}
        label="Exchange"
        value={exchange}
        onChange={setExchange}
        placeholder={defaultExchange || 'default'}
        autoComplete="off"
      />
      <label className="field-check" htmlFor={`${id}-force`}>
        <input id={`${id}-force`} type="checkbox" checked={force} onChange={(event) => setForce(event.target.checked)} />
        <span>Fetch again even if cached</span>
      </label>
      <div className="form-actions">
        <button type="submit" className="button button-primary" disabled={busy} data-testid="add-symbols-submit">
          {busy ? 'Refreshing…' : 'Add to cache'}
        </button>
      </div>
      {problem && (
        <p id={`${id}-problem`} className="field-error field-wide" role="alert">
          {problem}
        </p>
      )}
      {!problem && error != null && (
        <div id={`${id}-refused`} className="field-wide" data-testid="add-symbols-error">
          <ErrorNotice error={error} title="The symbols were not added" />
        </div>
      )}
    </form>
  );
}
