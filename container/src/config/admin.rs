//! `[admin]`: the admin listener, its token, and Tomcat's manager text API.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[admin]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of the admin listener. A non-loopback address needs `token`.
    pub listen: SocketAddr,
    /// The bearer token. Also read from `CRABCAT_ADMIN_TOKEN`. If neither is
    /// set, one is generated at start and written to `token_file`.
    pub token: Option<String>,
    /// Where a generated token is written (readable only by its owner), and
    /// where the admin commands look for it.
    pub token_file: PathBuf,
    /// Largest module upload (`PUT /apps/NAME`); larger gets `413`.
    pub max_upload_bytes: usize,
    /// `[admin.manager]`: Tomcat's manager text API at `/manager/text/`.
    pub manager: ManagerConfig,
}

/// `[admin.manager]`: HTTP Basic credentials of Tomcat's manager text API
/// (`/manager/text/` on the admin listener). The API refuses every call
/// (`401`) while `user` is unset, as a Tomcat with no manager user does.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ManagerConfig {
    /// The Basic user name; unset: the text API is off.
    pub user: Option<String>,
    /// Its password (at least 16 characters). Neither this nor
    /// `password_file` set: the admin token is the password.
    pub password: Option<String>,
    /// A file whose first line is the password; relative to the working
    /// directory, as `admin.token_file`.
    pub password_file: Option<PathBuf>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            token: None,
            token_file: "data/admin.token".into(),
            max_upload_bytes: 512 * 1024 * 1024,
            manager: ManagerConfig::default(),
        }
    }
}
