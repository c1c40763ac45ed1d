-- What the embedder reads of each chunk (its context above its text, special tokens included), as the
-- word-piece ids of the tokenizer named by `tokenizer` (a digest of its vocabulary and rules), int32
-- little-endian. The chunker made them while it counted; the encoder reuses them instead of tokenizing
-- every chunk again, and only when its own tokenizer has the same digest. NULL: tokenize (a tokenizer
-- whose ids of context + text are not those of each part, or chunks from before this column).
ALTER TABLE chunks ADD COLUMN IF NOT EXISTS token_ids bytea;
ALTER TABLE chunks ADD COLUMN IF NOT EXISTS tokenizer text;
