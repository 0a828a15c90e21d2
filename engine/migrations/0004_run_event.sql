-- The trigger's payload (a webhook event), available to prompts as ${{ event.* }}.
ALTER TABLE runs ADD COLUMN event TEXT;
