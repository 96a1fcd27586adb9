//! Code shared by the webhook benchmark programs (bench/README.md, "Webhook").

pub mod baseline;
