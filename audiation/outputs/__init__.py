"""What a job leaves, and its format: files on disk before anything else (`disk`), records and their
on-disk format (`results`, `record_schema`), and W&B (`tracking`). Below everything that writes."""
