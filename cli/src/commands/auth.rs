//! `pkgr auth login/logout/list`: credentials stored in pkgr's auth file
//! (mode 0600), used for every request to their host. See `pkgr_fetch`'s
//! auth module for where else credentials come from and how they are sent.

use anyhow::{bail, Context};
use pkgr_fetch::{AuthFile, Credential};

use crate::cli::{AuthCommand, AuthLoginArgs, GlobalArgs};
use crate::output::{print_json, print_stdout};
use crate::paths;

/// `pkgr auth ...`.
pub fn run(global: &GlobalArgs, command: &AuthCommand) -> anyhow::Result<()> {
    let path = paths::auth_file()
        .context("cannot find where the auth file goes (set HOME or PKGR_AUTH_FILE)")?;
    let mut file = AuthFile::read(&path)?;
    if !file.hosts.is_empty() {
        if let Some(warning) = pkgr_fetch::auth_file_exposure(&path) {
            crate::output::print_warning(&warning);
        }
    }
    match command {
        AuthCommand::Login(args) => {
            let host = normalized_host(&args.host)?;
            let credential = credential_of(args)?;
            file.hosts.insert(host.clone(), credential);
            file.write(&path)?;
            if global.json {
                return print_json(&serde_json::json!({"success": true, "host": host}));
            }
            if !global.quiet {
                print_stdout(&format!(
                    "Stored a credential for {host} in {}\n",
                    path.display()
                ));
            }
        }
        AuthCommand::Logout { host } => {
            let host = normalized_host(host)?;
            if file.hosts.remove(&host).is_none() {
                bail!("no credential is stored for {host} (in {})", path.display());
            }
            file.write(&path)?;
            if global.json {
                return print_json(&serde_json::json!({"success": true, "host": host}));
            }
            if !global.quiet {
                print_stdout(&format!("Removed the credential for {host}\n"));
            }
        }
        AuthCommand::List => {
            let hosts: Vec<serde_json::Value> = file
                .hosts
                .iter()
                .map(|(host, c)| {
                    let kind = match c {
                        Credential::Token(_) => "token",
                        Credential::Bearer(_) => "bearer",
                        Credential::Basic { .. } => "basic",
                    };
                    serde_json::json!({"host": host, "kind": kind})
                })
                .collect();
            if global.json {
                return print_json(&serde_json::json!({"hosts": hosts, "file": path}));
            }
            let mut out = String::new();
            for host in &hosts {
                out.push_str(&format!(
                    "{}  ({})\n",
                    host["host"].as_str().unwrap_or_default(),
                    host["kind"].as_str().unwrap_or_default()
                ));
            }
            if hosts.is_empty() {
                out.push_str("(no stored credentials)\n");
            }
            print_stdout(&out);
        }
    }
    Ok(())
}

/// `host` or `host:port`, lower case; a URL is taken for its host.
fn normalized_host(given: &str) -> anyhow::Result<String> {
    let text = given.trim();
    let host = match url::Url::parse(text) {
        Ok(url) if url.host_str().is_some() => match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => unreachable_host(given)?,
        },
        _ => text.trim_end_matches('/').to_owned(),
    };
    if host.is_empty() || host.contains(['/', ' ', '@']) {
        unreachable_host(given)?;
    }
    // A URL never carries its scheme's default port (https://h:443/ is
    // https://h/), so neither does the key it is looked up by.
    let host = host
        .strip_suffix(":443")
        .or_else(|| host.strip_suffix(":80"))
        .unwrap_or(&host)
        .to_owned();
    Ok(host.to_ascii_lowercase())
}

fn unreachable_host(given: &str) -> anyhow::Result<String> {
    bail!("`{given}` is not a host (give `host` or `host:port`)")
}

fn stdin_line(what: &str) -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .with_context(|| format!("could not read the {what} from stdin"))?;
    let line = line.trim_end_matches(['\r', '\n']).to_owned();
    if line.is_empty() {
        bail!("no {what} on stdin");
    }
    Ok(line)
}

fn credential_of(args: &AuthLoginArgs) -> anyhow::Result<Credential> {
    let secret = |given: &str, what: &str| -> anyhow::Result<String> {
        if given == "-" {
            stdin_line(what)
        } else {
            Ok(given.to_owned())
        }
    };
    if args.token_stdin {
        return Ok(Credential::Token(stdin_line("token")?));
    }
    if let Some(token) = &args.token {
        return Ok(Credential::Token(secret(token, "token")?));
    }
    if let Some(token) = &args.bearer {
        return Ok(Credential::Bearer(secret(token, "token")?));
    }
    if let Some(username) = &args.username {
        if !args.password_stdin {
            bail!("give the password on stdin with --password-stdin (so it shows in no process list or shell history)");
        }
        return Ok(Credential::Basic {
            username: username.clone(),
            password: stdin_line("password")?,
        });
    }
    bail!("give --token-stdin, --token, --bearer or --username")
}

#[cfg(test)]
mod tests {
    use super::normalized_host;

    #[test]
    fn hosts_are_keyed_as_urls_look_them_up() {
        let host = |h: &str| normalized_host(h).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(host("Conda.Example.COM"), "conda.example.com");
        assert_eq!(host("conda.example.com:443"), "conda.example.com");
        assert_eq!(
            host("https://conda.example.com/conda-forge"),
            "conda.example.com"
        );
        assert_eq!(host("127.0.0.1:8080"), "127.0.0.1:8080");
        assert!(normalized_host("user@host").is_err());
    }
}
