-- The machine that ran an agent's latest attempt (a local slot, a worker, a VM).
ALTER TABLE agents ADD COLUMN machine TEXT;
