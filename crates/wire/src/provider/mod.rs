//! Upstream APIs other than Chat Completions: how the canonical request is written
//! for them and how their answers are read back as Chat Completions, so that
//! everything between the client's dialect and the upstream sees one form.

pub mod anthropic;
