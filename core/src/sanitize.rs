//! Neutralises host-reserved control tokens in text placed into prompts.
