"""``tritoncls compress``: the fastest served variant of a fine-tuned model within an accuracy budget (config,
search, compress, report)."""
