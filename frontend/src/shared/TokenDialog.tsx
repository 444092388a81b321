import { useId, useState } from 'react';
import { Modal } from './Modal';

interface TokenDialogProps {
  /** Why the token is asked for, e.g. that the last one was rejected. */
  message: string;
  onSubmit: (token: string) => void;
  onCancel: () => void;
}

export function TokenDialog({ message, onSubmit, onCancel }: TokenDialogProps) {
  const [token, setToken] = useState('');
  const inputId = useId();
  const hintId = useId();
  return (
    <Modal title="API token required" onClose={onCancel} testId="token-dialog">
      <form
        onSubmit={(event) => {
          event.preventDefault();
          if (token.trim()) onSubmit(token.trim());
        }}
      >
        <p id={hintId} className="modal-body">
          {message}
        </p>
        <label className="field" htmlFor={inputId}>
          <span>API token</span>
          <input
            id={inputId}
            type="password"
            autoComplete="off"
            value={token}
            onChange={(event) => setToken(event.target.value)}
            aria-describedby={hintId}
            required
          />
        </label>
        <p className="hint">Kept in this browser tab only (session storage) and sent as a Bearer token.</p>
        <div className="modal-actions">
          <button type="button" className="button" onClick={onCancel}>
            Cancel
          </button>
          <button type="submit" className="button button-primary" disabled={!token.trim()}>
            Use token
          </button>
        </div>
      </form>
    </Modal>
  );
}
