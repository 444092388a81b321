import { useEffect, useId, useState } from 'react';
import type { BarSize, ExecuteRequest, Strategy, StrategyParameter } from '../../api/models';
import { DataTypeField } from '../../shared/DataTypeField';
import { parseSymbols } from '../../shared/format';
import { DaysField, SymbolsField } from '../../shared/InputField';
import { defaultLookbackDays, slowestWindow } from './lookback';

interface RunWorkflowFormProps {
  strategies: Strategy[];
  defaultSymbols: string[];
  busy: boolean;
  onRun: (request: ExecuteRequest) => void;
}

function parameterProblem(parameter: StrategyParameter, text: string): string | null {
  const value = Number(text);
  if (text.trim() === '' || Number.isNaN(value)) return `${parameter.name} must be a number.`;
  if (parameter.type === 'int' && !Number.isInteger(value)) return `${parameter.name} must be a whole number.`;
  if (parameter.min !== null && value < parameter.min) return `${parameter.name} must be at least ${parameter.min}.`;
  if (parameter.max !== null && value > parameter.max) return `${parameter.name} must be at most ${parameter.max}.`;
  return null;
}

export function RunWorkflowForm({ strategies, defaultSymbols, busy, onRun }: RunWorkflowFormProps) {
  const id = useId();
  const [strategyName, setStrategyName] = useState(strategies[0]?.name ?? '');
  const [symbolsText, setSymbolsText] = useState(defaultSymbols.join(', '));
  const [dataType, setDataType] = useState<BarSize>('1d');
  // What the user typed; until then the lookback follows the strategy's windows and the bar size.
  const [lookbackText, setLookbackText] = useState<string | null>(null);
  const [params, setParams] = useState<Record<string, string>>({});
  const [problem, setProblem] = useState<string | null>(null);

  const strategy = strategies.find((item) => item.name === strategyName);
  const lookbackDays = lookbackText ?? String(defaultLookbackDays(strategy ? slowestWindow(strategy, params) : 0, dataType));

  // A new strategy starts from its own defaults.
  useEffect(() => {
    setParams(Object.fromEntries((strategy?.parameters ?? []).map((parameter) => [parameter.name, String(parameter.default)])));
    setLookbackText(null);
  }, [strategy]);

  // The configured symbols arrive with the config, possibly after the first render.
  useEffect(() => {
    setSymbolsText((text) => text || defaultSymbols.join(', '));
  }, [defaultSymbols]);

  function submit(event: React.FormEvent) {
    event.preventDefault();
    if (!strategy) return setProblem('Choose a strategy.');
    const symbols = parseSymbols(symbolsText);
    if (symbols.length === 0) return setProblem('Enter at least one symbol.');
    const days = Number(lookbackDays);
    if (!Number.isInteger(days) || days < 1) return setProblem('Lookback days must be a whole number of at least 1.');
    for (const parameter of strategy.parameters) {
      const text = params[parameter.name] ?? String(parameter.default);
      const parameterError = parameterProblem(parameter, text);
      if (parameterError) return setProblem(parameterError);
    }
    setProblem(null);
    onRun({
      strategy: strategy.name,
      symbols,
      data_type: dataType,
      lookback_days: days,
      params: Object.fromEntries(
        strategy.parameters.map((parameter) => [parameter.name, Number(params[parameter.name] ?? parameter.default)]),
      ),
    });
  }

  return (
    <form className="card form-grid" onSubmit={submit} aria-labelledby={`${id}-title`} noValidate>
      <h2 id={`${id}-title`} className="card-title">
        Run a strategy
      </h2>
      <label className="field field-wide" htmlFor={`${id}-strategy`}>
        <span>Strategy</span>
        <select id={`${id}-strategy`} value={strategyName} onChange={(event) => setStrategyName(event.target.value)}>
          {strategies.map((item) => (
            <option key={item.name} value={item.name}>
              {item.name}
            </option>
          ))}
        </select>
      </label>
      {strategy?.description && <p className="hint field-wide">{strategy.description}</p>}
      <SymbolsField id={`${id}-symbols`} value={symbolsText} onChange={setSymbolsText} />
      <DataTypeField id={`${id}-type`} value={dataType} onChange={setDataType} />
      <DaysField id={`${id}-lookback`} label="Lookback days" value={lookbackDays} onChange={setLookbackText} />
      {strategy && strategy.parameters.length > 0 && (
        <fieldset className="params field-wide">
          <legend>Parameters</legend>
          {strategy.parameters.map((parameter) => (
            <div key={parameter.name} className="field">
              <label htmlFor={`${id}-param-${parameter.name}`}>{parameter.name}</label>
              <input
                id={`${id}-param-${parameter.name}`}
                type="number"
                step={parameter.type === 'int' ? 1 : 'any'}
                min={parameter.min ?? undefined}
                max={parameter.max ?? undefined}
                value={params[parameter.name] ?? String(parameter.default)}
                onChange={(event) => setParams((current) => ({ ...current, [parameter.name]: event.target.value }))}
                aria-describedby={parameter.description ? `${id}-param-${parameter.name}-hint` : undefined}
              />
              {parameter.description && (
                <small id={`${id}-param-${parameter.name}-hint`} className="hint">
                  {parameter.description}
                </small>
              )}
            </div>
          ))}
        </fieldset>
      )}
      <div className="form-actions field-wide">
        <button type="submit" className="button button-primary" disabled={busy || !strategy} data-testid="run-workflow">
          {busy ? 'Running…' : 'Run workflow'}
        </button>
      </div>
      {problem && (
        <p className="field-error field-wide" role="alert">
          {problem}
        </p>
      )}
    </form>
  );
}
