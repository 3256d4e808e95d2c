//! Locating the PostgreSQL binaries (`initdb`, `postgres`, `psql`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::PgCtlError;

/// The programs a directory must hold to be usable.
const REQUIRED: [&str; 3] = ["initdb", "postgres", "psql"];

/// Parent directories whose versioned subdirectories hold binaries: `(parent, name prefix,
/// path below the versioned directory)`, e.g. Debian's `/usr/lib/postgresql/15/bin` and
/// the PGDG RPMs' `/usr/pgsql-15/bin`.
const VERSIONED_ROOTS: [(&str, &str, &str); 2] = [
    ("/usr/lib/postgresql", "", "bin"),
    ("/usr", "pgsql-", "bin"),
];

/// The default prefix of a source build.
const SOURCE_BUILD_BINDIR: &str = "/usr/local/pgsql/bin";

/// A directory holding a usable set of PostgreSQL binaries.
#[derive(Debug, Clone)]
pub(crate) struct Binaries {
    bindir: PathBuf,
}

impl Binaries {
    /// Finds the binaries: in `explicit` only, if given; otherwise the newest versioned
    /// install (preferring major version `preferred_major`, the one an existing data directory
    /// was made with), then `pg_config --bindir`, then `PATH`, then a source build's prefix.
    pub(crate) fn locate(
        explicit: Option<&Path>,
        preferred_major: Option<u32>,
    ) -> Result<Self, PgCtlError> {
        if let Some(dir) = explicit {
            return Self::at(dir).ok_or_else(|| PgCtlError::NoServerBinaries {
                searched: vec![dir.display().to_string()],
            });
        }
        let mut searched = Vec::new();
        let mut versioned = Vec::new();
        for (parent, prefix, below) in VERSIONED_ROOTS {
            searched.push(format!("{parent}/{prefix}*/{below}"));
            versioned.extend(versioned_dirs(Path::new(parent), prefix, below));
        }
        // Newest first, but the preferred major version before all others.
        versioned.sort_by(|(a, _), (b, _)| {
            let preferred = |v: &Vec<u32>| preferred_major.is_some_and(|m| v.first() == Some(&m));
            preferred(b).cmp(&preferred(a)).then_with(|| b.cmp(a))
        });
        if let Some(found) = versioned.iter().find_map(|(_, dir)| Self::at(dir)) {
            return Ok(found);
        }
        searched.push("`pg_config --bindir`".to_owned());
        if let Some(found) = pg_config_bindir().and_then(|dir| Self::at(&dir)) {
            return Ok(found);
        }
        searched.push("PATH".to_owned());
        let path = std::env::var_os("PATH").unwrap_or_default();
        if let Some(found) = std::env::split_paths(&path).find_map(|dir| Self::at(&dir)) {
            return Ok(found);
        }
        searched.push(SOURCE_BUILD_BINDIR.to_owned());
        Self::at(Path::new(SOURCE_BUILD_BINDIR)).ok_or(PgCtlError::NoServerBinaries { searched })
    }

    /// `dir` if it holds every required program.
    fn at(dir: &Path) -> Option<Self> {
        REQUIRED
            .iter()
            .all(|program| dir.join(program).is_file())
            .then(|| Self {
                bindir: dir.to_owned(),
            })
    }

    /// The directory holding the binaries.
    pub(crate) fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// Path of `initdb`.
    pub(crate) fn initdb(&self) -> PathBuf {
        self.bindir.join("initdb")
    }

    /// Path of the server, `postgres`.
    pub(crate) fn postgres(&self) -> PathBuf {
        self.bindir.join("postgres")
    }

    /// Path of `psql`.
    pub(crate) fn psql(&self) -> PathBuf {
        self.bindir.join("psql")
    }
}

/// `(version, parent/prefix<version>/below)` for every versioned subdirectory of `parent`.
fn versioned_dirs(parent: &Path, prefix: &str, below: &str) -> Vec<(Vec<u32>, PathBuf)> {
    let Ok(entries) = fs::read_dir(parent) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = parse_version(entry.file_name().to_str()?.strip_prefix(prefix)?)?;
            Some((version, entry.path().join(below)))
        })
        .collect()
}

/// Parses a version directory name such as `15` or `9.6` into its numeric parts.
fn parse_version(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|part| part.parse().ok()).collect()
}

/// What `pg_config --bindir` prints, if `pg_config` exists and succeeds.
fn pg_config_bindir() -> Option<PathBuf> {
    let output = Command::new("pg_config").arg("--bindir").output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !text.trim().is_empty()).then(|| PathBuf::from(text.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_version_directory_names() {
        assert_eq!(parse_version("15"), Some(vec![15]));
        assert_eq!(parse_version("9.6"), Some(vec![9, 6]));
        assert_eq!(parse_version("common"), None);
        assert_eq!(parse_version(""), None);
    }

    #[test]
    fn explicit_bindir_without_binaries_is_a_clear_error() {
        let error = Binaries::locate(Some(Path::new("/nonexistent/pg/bin")), None).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("/nonexistent/pg/bin"), "{message}");
        assert!(message.contains("apt-get install postgresql"), "{message}");
    }

    #[test]
    fn finds_the_installed_binaries() {
        let found = Binaries::locate(None, None).expect("PostgreSQL is installed here");
        assert!(found.initdb().is_file());
        assert!(found.postgres().is_file());
        assert!(found.psql().is_file());
    }
}
