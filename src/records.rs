//! Records: everything that happened, kept.
//!
//! [`log`] hands queue-log entries to one writer that commits them to the [`store`]
//! (SQLite or PostgreSQL) before anyone sees them; [`history`] replays the stored log into
//! reports (`amico report`, `/api/stats`); [`today`] follows the log since midnight;
//! [`bench`] measures the store (`amico bench-store`).

pub(crate) mod bench;
pub(crate) mod history;
pub(crate) mod log;
pub(crate) mod store;
pub(crate) mod today;
