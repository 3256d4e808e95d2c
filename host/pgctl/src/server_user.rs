//! The OS user PostgreSQL runs as: ourselves, or `postgres` when we are root (PostgreSQL
//! refuses to run as root).

use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use crate::{PgCtlError, process};

/// The OS account name PostgreSQL is run as when we are root.
const POSTGRES_ACCOUNT: &str = "postgres";

/// Who runs `initdb` and `postgres`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ServerUser {
    /// The current (non-root) user.
    Current,
    /// Another account, switched to with setuid/setgid when spawning (we are root).
    Account {
        /// Its name, for messages.
        name: String,
        /// Its uid.
        uid: u32,
        /// Its primary gid.
        gid: u32,
    },
}

impl ServerUser {
    /// `Current` unless we are root, else the `postgres` account from `/etc/passwd`.
    pub(crate) fn detect() -> Result<Self, PgCtlError> {
        if !process::is_root() {
            return Ok(Self::Current);
        }
        let passwd = fs::read_to_string("/etc/passwd")
            .map_err(|source| PgCtlError::io("read", "/etc/passwd", source))?;
        let (uid, gid) = lookup(&passwd, POSTGRES_ACCOUNT).ok_or(PgCtlError::NoPostgresUser)?;
        Ok(Self::Account {
            name: POSTGRES_ACCOUNT.to_owned(),
            uid,
            gid,
        })
    }

    /// A command for `program` that will run as this user.
    pub(crate) fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        if let Self::Account { uid, gid, .. } = self {
            command.uid(*uid).gid(*gid);
        }
        command
    }

    /// Makes `path` a directory private to this user (owned by it, mode 0700).
    pub(crate) fn own_private_dir(&self, path: &Path) -> Result<(), PgCtlError> {
        self.give(path)?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o700))
            .map_err(|source| PgCtlError::io("set permissions of", path, source))
    }

    /// Hands `path` over to this user (a no-op for the current user).
    pub(crate) fn give(&self, path: &Path) -> Result<(), PgCtlError> {
        match self {
            Self::Current => Ok(()),
            Self::Account { uid, gid, .. } => chown(path, Some(*uid), Some(*gid))
                .map_err(|source| PgCtlError::io("change the owner of", path, source)),
        }
    }

    /// Maps a failure to spawn a program in directory `dir` to a helpful error: when running as
    /// another account, "permission denied" means that account cannot reach `dir`.
    pub(crate) fn spawn_error(&self, program: &Path, dir: &Path, source: io::Error) -> PgCtlError {
        match self {
            Self::Account { name, .. } if source.kind() == io::ErrorKind::PermissionDenied => {
                PgCtlError::NotAccessible {
                    path: dir.to_owned(),
                    user: name.clone(),
                }
            }
            _ => PgCtlError::Spawn {
                program: program.to_owned(),
                source,
            },
        }
    }
}

/// Finds `name`'s uid and gid in the text of an `/etc/passwd` file.
fn lookup(passwd: &str, name: &str) -> Option<(u32, u32)> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        let _password = fields.next()?;
        Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_accounts_in_passwd_text() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      postgresql:x:5:5::/:/bin/false\n\
                      postgres:x:101:104:PostgreSQL administrator,,,:/var/lib/postgresql:/bin/bash\n";
        assert_eq!(lookup(passwd, "postgres"), Some((101, 104)));
        assert_eq!(lookup(passwd, "root"), Some((0, 0)));
        assert_eq!(lookup(passwd, "nobody"), None);
        assert_eq!(lookup("postgres:x:abc:1:::\n", "postgres"), None);
    }

    #[test]
    fn permission_denied_names_the_directory_for_another_account() {
        let user = ServerUser::Account {
            name: "postgres".into(),
            uid: 1,
            gid: 1,
        };
        let error = user.spawn_error(
            Path::new("/bin/initdb"),
            Path::new("/root/app/.tarn/pgdata"),
            io::Error::from(io::ErrorKind::PermissionDenied),
        );
        let message = error.to_string();
        assert!(message.contains("/root/app/.tarn/pgdata"), "{message}");
        assert!(message.contains("`postgres`"), "{message}");
        let error = ServerUser::Current.spawn_error(
            Path::new("/bin/initdb"),
            Path::new("/x"),
            io::Error::from(io::ErrorKind::PermissionDenied),
        );
        assert!(matches!(error, PgCtlError::Spawn { .. }));
    }
}
