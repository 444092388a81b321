import { useId, useState } from 'react';
import type { BarSize, RefreshRequest } from '../../api/models';
import { DataTypeField } from '../../shared/DataTypeField';
import { DaysField, InputField, SymbolsField } from '../../shared/InputField';
import { parseSymbols } from '../../shared/format';
import { SelectField } from '../../shared/SelectField';
import {
  ALLOWED_WHAT_TO_SHOW,
  ASSET_CLASS_LABELS,
  DEFAULT_CURRENCY,
  DEFAULT_EXCHANGE,
  DEFAULT_WHAT_TO_SHOW,
  expiryProblem,
  hoursMatter,
  refreshFields,
  SEC_TYPES,
  type SecType,
  type WhatToShow,
} from '../../shared/series';
import { ErrorNotice } from '../../shared/States';

interface AddSymbolsFormProps {
  defaultExchange: string;
  busy: boolean;
  /** Why the backend refused the last request of this form (e.g. too many IBKR requests). */
  error?: unknown;
  onSubmit: (request: RefreshRequest) => void;
}

const SYMBOL_PATTERN = /^[A-Z0-9.\-]{1,15}$/;
/** A base currency (EUR, with the quote in Currency) or a whole pair: EUR.USD or EURUSD. */
const FX_SYMBOL_PATTERN = /^[A-Z]{3}(\.?[A-Z]{3})?$/;
const CURRENCY_PATTERN = /^[A-Z]{3}$/;

/** What the symbols field suggests for each asset class. */
const PLACEHOLDER_SYMBOLS: Record<Exclude<SecType, 'STK'>, string> = {
  IND: 'SPX, VIX',
  FUT: 'ES, NQ',
  CONTFUT: 'ES, NQ',
  CASH: 'EUR.USD, USDJPY',
  CRYPTO: 'BTC, ETH',
};

const ASSET_CLASS_OPTIONS = SEC_TYPES.map((secType) => ({ value: secType, label: ASSET_CLASS_LABELS[secType] }));

type Field = 'symbols' | 'days' | 'currency' | 'expiry' | 'whatToShow';

interface Problem {
  field: Field;
  message: string;
}

/** Fills the cache for new (or existing) symbols through a refresh job. */
export function AddSymbolsForm({ defaultExchange, busy, error, onSubmit }: AddSymbolsFormProps) {
  const id = useId();
  const [symbolsText, setSymbolsText] = useState('');
  const [secType, setSecType] = useState<SecType>('STK');
  const [dataType, setDataType] = useState<BarSize>('1d');
  const [daysBack, setDaysBack] = useState('30');
  const [exchange, setExchange] = useState('');
  const [currency, setCurrency] = useState(DEFAULT_CURRENCY);
  const [expiry, setExpiry] = useState('');
  const [whatToShow, setWhatToShow] = useState<WhatToShow>('TRADES');
  /** Picked in the select, rather than the asset class's usual one. */
  const [whatToShowPicked, setWhatToShowPicked] = useState(false);
  const [useRth, setUseRth] = useState(true);
  const [force, setForce] = useState(false);
  const [problem, setProblem] = useState<Problem | null>(null);

  const isFuture = secType === 'FUT';
  const withHours = hoursMatter(secType);
  const allowed = ALLOWED_WHAT_TO_SHOW[secType];

  function chooseAssetClass(next: SecType) {
    setSecType(next);
    // A series picked by hand stays where the new asset class has it; otherwise its usual one.
    if (!whatToShowPicked || !ALLOWED_WHAT_TO_SHOW[next].includes(whatToShow)) {
      setWhatToShow(DEFAULT_WHAT_TO_SHOW[next]);
      setWhatToShowPicked(false);
    }
    if (problem?.field === 'expiry' || problem?.field === 'whatToShow') setProblem(null);
  }

  function findProblem(symbols: string[], days: number, quote: string): Problem | null {
    if (symbols.length === 0) return { field: 'symbols', message: 'Enter at least one symbol, e.g. NVDA, TSLA.' };
    const pattern = secType === 'CASH' ? FX_SYMBOL_PATTERN : SYMBOL_PATTERN;
    const bad = symbols.filter((symbol) => !pattern.test(symbol) || (secType === 'CASH' && symbol === quote));
    if (bad.length && secType === 'CASH') {
      return {
        field: 'symbols',
        message: `Not an FX pair: ${bad.join(', ')}. Enter pairs such as EUR.USD or USDJPY, or base currencies (EUR) quoted in Currency.`,
      };
    }
    if (bad.length) return { field: 'symbols', message: `Not a valid symbol: ${bad.join(', ')}.` };
    if (secType === 'CASH' && quote !== DEFAULT_CURRENCY) {
      const pairs = symbols.filter((symbol) => symbol.length > 3);
      if (pairs.length) {
        return {
          field: 'currency',
          message: `${pairs.join(', ')} already ${pairs.length === 1 ? 'names its' : 'name their'} quote currency: set Currency back to USD, or enter base currencies alone.`,
        };
      }
    }
    if (!Number.isInteger(days) || days < 1) return { field: 'days', message: 'Days back must be a whole number of at least 1.' };
    if (!CURRENCY_PATTERN.test(quote)) {
      return { field: 'currency', message: 'Currency must be a 3-letter code such as USD, EUR or JPY.' };
    }
    if (isFuture) {
      const message = expiryProblem(expiry);
      if (message) return { field: 'expiry', message };
    }
    if (whatToShow === 'ADJUSTED_LAST' && (dataType === '1w' || dataType === '1mo')) {
      return {
        field: 'whatToShow',
        message: 'IBKR serves ADJUSTED_LAST in bars of a day or less: choose 1d or a smaller bar size, or TRADES.',
      };
    }
    return null;
  }

  function submit(event: React.FormEvent) {
    event.preventDefault();
    const symbols = parseSymbols(symbolsText);
    const quote = currency.trim().toUpperCase();
    const found = findProblem(symbols, Number(daysBack), quote);
    setProblem(found);
    if (found) return;
    onSubmit({
      symbols,
      data_type: dataType,
      days_back: Number(daysBack),
      force,
      ...(exchange.trim() ? { exchange: exchange.trim().toUpperCase() } : {}),
      ...refreshFields({
        sec_type: secType,
        currency: quote,
        expiry: isFuture ? expiry.trim() : '',
        what_to_show: whatToShow,
        use_rth: withHours ? useRth : true,
      }),
    });
  }

  const problemId = `${id}-problem`;
  /** The field a problem is about points at its message, so a screen reader reads it there. */
  const described = (field: Field, otherwise?: string) =>
    problem?.field === field
      ? { 'aria-invalid': true, 'aria-describedby': problemId }
      : { 'aria-invalid': false, 'aria-describedby': otherwise };

  return (
    <form className="card form-grid" onSubmit={submit} aria-labelledby={`${id}-title`} noValidate>
      <h3 id={`${id}-title`} className="card-title">
        Add symbols to the cache
      </h3>
      <SymbolsField
        id={`${id}-symbols`}
        value={symbolsText}
        onChange={setSymbolsText}
        placeholder={secType === 'STK' ? 'NVDA, TSLA' : PLACEHOLDER_SYMBOLS[secType]}
        {...described('symbols', error != null ? `${id}-refused` : undefined)}
      />
      <SelectField
        id={`${id}-asset`}
        label="Asset class"
        value={secType}
        options={ASSET_CLASS_OPTIONS}
        onChange={chooseAssetClass}
      />
      <DataTypeField id={`${id}-type`} value={dataType} onChange={setDataType} />
      <DaysField
        id={`${id}-days`}
        label="Days back"
        inputMode="numeric"
        value={daysBack}
        onChange={setDaysBack}
        {...described('days')}
      />
      {isFuture && (
        <InputField
          id={`${id}-expiry`}
          label="Expiry (YYYYMM or YYYYMMDD)"
          value={expiry}
          onChange={setExpiry}
          placeholder="202503"
          inputMode="numeric"
          autoComplete="off"
          required
          {...described('expiry')}
        />
      )}
      <SelectField
        id={`${id}-what`}
        label="What to show"
        value={whatToShow}
        options={allowed.map((value) => ({ value, label: value }))}
        onChange={(value) => {
          setWhatToShow(value);
          setWhatToShowPicked(true);
        }}
        {...described('whatToShow')}
      />
      <InputField
        id={`${id}-exchange`}
        label="Exchange"
        value={exchange}
        onChange={setExchange}
        placeholder={secType === 'STK' ? defaultExchange || 'default' : DEFAULT_EXCHANGE[secType]}
        autoComplete="off"
      />
      <InputField
        id={`${id}-currency`}
        label="Currency"
        value={currency}
        onChange={(text) => setCurrency(text.toUpperCase())}
        maxLength={3}
        autoComplete="off"
        spellCheck={false}
        {...described('currency')}
      />
      {withHours && (
        <fieldset className="field field-choice">
          <legend>Hours</legend>
          <div className="choice-options">
            <label htmlFor={`${id}-rth`}>
              <input id={`${id}-rth`} type="radio" name={`${id}-hours`} checked={useRth} onChange={() => setUseRth(true)} />
              Regular hours
            </label>
            <label htmlFor={`${id}-all-hours`}>
              <input
                id={`${id}-all-hours`}
                type="radio"
                name={`${id}-hours`}
                checked={!useRth}
                onChange={() => setUseRth(false)}
              />
              All hours
            </label>
          </div>
        </fieldset>
      )}
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
        <p id={problemId} className="field-error field-wide" role="alert">
          {problem.message}
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
