//! Start, stop and restart PostgreSQL clusters from the installed server binaries.
//!
//! Two uses: `tarn up`'s private, persistent cluster when no database URL is configured
//! ([`Cluster::start`] with [`ClusterOptions::new`]), and tests' throwaway clusters
//! ([`Cluster::start_temp`]) that can be stopped, restarted and killed to stage outages.
//!
//! Every cluster listens on 127.0.0.1 only, with trust authentication for the superuser
//! `postgres`. Linux only (process state is read from `/proc`).
//!
//! ```no_run
//! let cluster = tarn_pgctl::Cluster::start_temp()?;
//! assert_eq!(cluster.psql("SELECT 1 + 1")?, "2");
//! println!("connect to {}", cluster.url());
//! # Ok::<(), tarn_pgctl::PgCtlError>(())
//! ```

mod binaries;
mod cluster;
mod config;
mod data_dir;
mod error;
mod options;
mod pidfile;
mod port;
mod process;
mod quote;
mod server_user;
mod temp;

pub use cluster::{Cluster, StopMode};
pub use error::PgCtlError;
pub use options::ClusterOptions;
