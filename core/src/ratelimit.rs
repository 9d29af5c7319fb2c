//! Per-key sliding-window rate limiting (L2). Pure: time is passed in.
