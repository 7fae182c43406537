-- 2: how many extra attempts (429, 5xx, timeouts) an API completion needed, so an audit can show them.
ALTER TABLE completions ADD COLUMN retries INTEGER DEFAULT 0;
