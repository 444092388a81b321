import type { ReactNode } from 'react';

/** A column heading; `numeric` columns are right-aligned like their figures. */
export type Column = string | { label: ReactNode; numeric?: boolean; className?: string };

/** The heading row of a `data-table`. */
export function TableHead({ columns }: { columns: Column[] }) {
  return (
    <thead>
      <tr>
        {columns.map((column, index) => {
          const { label, numeric, className } = typeof column === 'string' ? { label: column } : column;
          return (
            <th key={index} scope="col" className={numeric ? 'num' : className}>
              {label}
            </th>
          );
        })}
      </tr>
    </thead>
  );
}

/** A right-aligned column of figures. */
export function numeric(label: string): Column {
  return { label, numeric: true };
}
