//! environment.yml and plain spec lists: specs to solve.

use rattler_conda_types::{MatchSpec, ParseStrictness, Subdir};
use serde_yaml::Value;

use crate::{yaml_key_string, yaml_scalar_string, EnvFileError, EnvironmentSpec};

/// conda's top-level keys of an environment.yml (`conda env create`).
pub(crate) const KNOWN_KEYS: &[&str] = &["name", "channels", "dependencies", "prefix", "variables"];

/// Parses an environment.yml for `platform`. `origin` names the file in errors.
///
/// mamba's selectors are honoured: an entry `- sel(linux): spec` is taken only
/// when `platform` is a Linux one (`linux`, `osx`, `win`, `unix` are known; any
/// other selector is an error). Each conda spec is checked to be a valid match spec (leniently, as conda
/// reads them); pip entries are kept as written, unchecked (they are pip's
/// requirement syntax, for pip to judge).
pub fn parse_environment_yaml(
    text: &str,
    origin: &str,
    platform: Subdir,
) -> Result<EnvironmentSpec, EnvFileError> {
    let value: Value = serde_yaml::from_str(text).map_err(|source| EnvFileError::Yaml {
        origin: origin.to_owned(),
        source,
    })?;
    environment_from_value(&value, origin, platform)
}

pub(crate) fn environment_from_value(
    value: &Value,
    origin: &str,
    platform: Subdir,
) -> Result<EnvironmentSpec, EnvFileError> {
    let Some(mapping) = value.as_mapping() else {
        return Err(EnvFileError::NotAMapping {
            origin: origin.to_owned(),
        });
    };
    let field = |key: &str, expected| EnvFileError::EnvironmentField {
        origin: origin.to_owned(),
        key: key.to_owned(),
        expected,
    };
    let mut spec = EnvironmentSpec::default();
    for (key, value) in mapping {
        let key = yaml_key_string(key);
        match key.as_str() {
            "name" => spec.name = optional_string(value).map_err(|()| field("name", "a string"))?,
            "prefix" => {
                spec.prefix = optional_string(value)
                    .map_err(|()| field("prefix", "a path"))?
                    .map(Into::into);
            }
            "channels" => {
                spec.channels =
                    string_list(value).ok_or_else(|| field("channels", "a list of strings"))?;
            }
            "variables" => match value {
                Value::Null => {}
                Value::Mapping(vars) => {
                    for (name, value) in vars {
                        let name = yaml_key_string(name);
                        let value = match value {
                            Value::Null => String::new(),
                            other => yaml_scalar_string(other)
                                .ok_or_else(|| field(&format!("variables.{name}"), "a string"))?,
                        };
                        spec.variables.insert(name, value);
                    }
                }
                _ => return Err(field("variables", "a mapping of names to values")),
            },
            "dependencies" => read_dependencies(value, origin, platform, &mut spec)?,
            _ => spec.unknown_keys.push(key),
        }
    }
    Ok(spec)
}

fn read_dependencies(
    value: &Value,
    origin: &str,
    platform: Subdir,
    spec: &mut EnvironmentSpec,
) -> Result<(), EnvFileError> {
    let entries = match value {
        Value::Null => return Ok(()),
        Value::Sequence(entries) => entries,
        _ => {
            return Err(EnvFileError::EnvironmentField {
                origin: origin.to_owned(),
                key: "dependencies".to_owned(),
                expected: "a list",
            })
        }
    };
    for (index, entry) in entries.iter().enumerate() {
        match entry {
            Value::String(s) => {
                check_spec(s, origin, || format!("dependencies[{index}]"))?;
                spec.dependencies.push(s.clone());
            }
            // YAML reads `- 7zip` as a string but `- 2` as a number; conda would
            // take it as a name, and so do we (then the spec check judges it).
            Value::Number(n) => {
                let s = n.to_string();
                check_spec(&s, origin, || format!("dependencies[{index}]"))?;
                spec.dependencies.push(s);
            }
            Value::Mapping(m) if m.len() == 1 && m.contains_key("pip") => {
                let pip = m.get("pip").unwrap_or(&Value::Null);
                let list = string_list(pip).ok_or_else(|| EnvFileError::EnvironmentField {
                    origin: origin.to_owned(),
                    key: format!("dependencies[{index}].pip"),
                    expected: "a list of strings",
                })?;
                spec.pip.extend(list);
            }
            Value::Mapping(m) if m.len() == 1 && selector(m).is_some() => {
                let (key, value) = m.iter().next().unwrap_or((&Value::Null, &Value::Null));
                let name = selector(m).unwrap_or_default();
                let wanted = match name {
                    "linux" => platform.is_linux(),
                    "osx" => platform.is_osx(),
                    "win" => platform.is_windows(),
                    "unix" => platform.is_unix(),
                    _ => {
                        return Err(EnvFileError::DependencyEntry {
                            origin: origin.to_owned(),
                            index,
                            found: format!(
                            "`{}`, a selector pkgr does not know (known: linux, osx, win, unix)",
                            yaml_key_string(key)
                        ),
                        })
                    }
                };
                let Some(s) = yaml_scalar_string(value) else {
                    return Err(EnvFileError::DependencyEntry {
                        origin: origin.to_owned(),
                        index,
                        found: format!(
                            "`{}` with a value that is not a spec",
                            yaml_key_string(key)
                        ),
                    });
                };
                if wanted {
                    check_spec(&s, origin, || format!("dependencies[{index}]"))?;
                    spec.dependencies.push(s);
                }
            }
            other => {
                return Err(EnvFileError::DependencyEntry {
                    origin: origin.to_owned(),
                    index,
                    found: describe(other),
                })
            }
        }
    }
    Ok(())
}

/// Parses a spec list: one match spec per line, as `conda create --file` reads
/// it. Blank lines and lines starting with `#` are skipped, and a ` #` comment at
/// the end of a line is cut off (a `#` right after a URL is kept: it carries a
/// checksum). Every spec is checked to be a valid match spec; errors name the
/// line.
pub fn parse_spec_list(text: &str, origin: &str) -> Result<Vec<String>, EnvFileError> {
    let mut specs = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = strip_comment(line).trim();
        if line.is_empty() {
            continue;
        }
        check_spec(line, origin, || format!("line {}", number + 1))?;
        specs.push(line.to_owned());
    }
    Ok(specs)
}

fn strip_comment(line: &str) -> &str {
    if line.trim_start().starts_with('#') {
        return "";
    }
    match line.find(" #").or_else(|| line.find("\t#")) {
        Some(at) => &line[..at],
        None => line,
    }
}

fn check_spec(
    spec: &str,
    origin: &str,
    location: impl FnOnce() -> String,
) -> Result<(), EnvFileError> {
    MatchSpec::from_str(spec, ParseStrictness::Lenient)
        .map(|_| ())
        .map_err(|source| EnvFileError::InvalidSpec {
            origin: origin.to_owned(),
            location: location(),
            spec: spec.to_owned(),
            source: Box::new(source),
        })
}

/// `sel(linux)` -> `linux`: mamba's selector syntax in a one-key mapping.
fn selector(m: &serde_yaml::Mapping) -> Option<&str> {
    m.keys()
        .next()?
        .as_str()?
        .strip_prefix("sel(")?
        .strip_suffix(')')
        .map(str::trim)
}

fn optional_string(value: &Value) -> Result<Option<String>, ()> {
    match value {
        Value::Null => Ok(None),
        other => yaml_scalar_string(other).map(Some).ok_or(()),
    }
}

fn string_list(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::Null => Some(Vec::new()),
        Value::Sequence(items) => items.iter().map(yaml_scalar_string).collect(),
        _ => None,
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "empty".to_owned(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Sequence(_) => "a list".to_owned(),
        Value::Mapping(m) => {
            let keys: Vec<String> = m
                .keys()
                .map(|k| format!("`{}`", yaml_key_string(k)))
                .collect();
            format!("a mapping with key(s) {}", keys.join(", "))
        }
        Value::Tagged(t) => format!("a value tagged {}", t.tag),
        Value::String(_) | Value::Number(_) => "a scalar".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_environment() {
        let text = "\
name: nlp
channels:
  - https://localhost/t/${CONDA_TOKEN}/stable
  - conda-forge
  - nodefaults
dependencies:
  - python=3.12
  - numpy >=1.26,<2
  - pip
  - pip:
      - requests==2.31
      - -e ./local
variables:
  VAR: value
  NUM: 3
prefix: /opt/envs/nlp
extra: 1
";
        let spec = parse_environment_yaml(text, "environment.yml", Subdir::Linux64).unwrap();
        assert_eq!(spec.name.as_deref(), Some("nlp"));
        assert_eq!(
            spec.prefix.as_deref(),
            Some(std::path::Path::new("/opt/envs/nlp"))
        );
        assert_eq!(
            spec.channels,
            [
                "https://localhost/t/${CONDA_TOKEN}/stable",
                "conda-forge",
                "nodefaults"
            ]
        );
        assert_eq!(spec.dependencies, ["python=3.12", "numpy >=1.26,<2", "pip"]);
        assert_eq!(spec.pip, ["requests==2.31", "-e ./local"]);
        assert_eq!(spec.variables["VAR"], "value");
        assert_eq!(spec.variables["NUM"], "3");
        assert_eq!(spec.unknown_keys, ["extra"]);
    }

    #[test]
    fn empty_sections() {
        let spec = parse_environment_yaml(
            "name: x\ndependencies:\nchannels:\n",
            "e.yml",
            Subdir::Linux64,
        )
        .unwrap();
        assert!(spec.dependencies.is_empty() && spec.channels.is_empty());
        assert_eq!(spec.name.as_deref(), Some("x"));
    }

    #[test]
    fn bad_dependency_entry() {
        let e = parse_environment_yaml(
            "dependencies:\n  - a\n  - conda: [b]\n",
            "e.yml",
            Subdir::Linux64,
        )
        .unwrap_err();
        let EnvFileError::DependencyEntry { index, found, .. } = &e else {
            panic!("{e}")
        };
        assert_eq!(*index, 1);
        assert!(found.contains("`conda`"), "{found}");
        assert!(e.to_string().contains("e.yml: dependencies[1]"), "{e}");
    }

    #[test]
    fn bad_field_shapes() {
        for (text, key) in [
            ("channels: conda-forge\n", "channels"),
            ("dependencies: numpy\n", "dependencies"),
            ("dependencies:\n  - pip: requests\n", "dependencies[0].pip"),
            ("name: [a]\n", "name"),
            ("prefix: {a: b}\n", "prefix"),
            ("variables: [a]\n", "variables"),
            ("variables:\n  A: [1]\n", "variables.A"),
        ] {
            let e = parse_environment_yaml(text, "e.yml", Subdir::Linux64).unwrap_err();
            let EnvFileError::EnvironmentField { key: got, .. } = &e else {
                panic!("{text}: {e}")
            };
            assert_eq!(got, key, "{text}");
        }
    }

    #[test]
    fn not_a_mapping_and_bad_yaml() {
        assert!(matches!(
            parse_environment_yaml("- a\n", "e.yml", Subdir::Linux64),
            Err(EnvFileError::NotAMapping { .. })
        ));
        assert!(matches!(
            parse_environment_yaml("a: [\n", "e.yml", Subdir::Linux64),
            Err(EnvFileError::Yaml { .. })
        ));
    }

    #[test]
    fn invalid_spec_names_entry() {
        let e = parse_environment_yaml(
            "dependencies:\n  - ok\n  - 'numpy >=>1'\n",
            "e.yml",
            Subdir::Linux64,
        )
        .unwrap_err();
        let EnvFileError::InvalidSpec { location, spec, .. } = &e else {
            panic!("{e}")
        };
        assert_eq!(location, "dependencies[1]");
        assert_eq!(spec, "numpy >=>1");
    }

    #[test]
    fn selectors() {
        let text = "dependencies:\n  - sel(win): a-win\n  - sel(unix): a-unix\n  - sel(linux): a-linux\n  - sel(osx): a-osx\n  - b\n";
        let deps = |p| {
            parse_environment_yaml(text, "e.yml", p)
                .unwrap()
                .dependencies
        };
        assert_eq!(deps(Subdir::Linux64), ["a-unix", "a-linux", "b"]);
        assert_eq!(deps(Subdir::OsxArm64), ["a-unix", "a-osx", "b"]);
        assert_eq!(deps(Subdir::Win64), ["a-win", "b"]);
        let e =
            parse_environment_yaml("dependencies:\n  - sel(bsd): x\n", "e.yml", Subdir::Linux64)
                .unwrap_err();
        assert!(e.to_string().contains("sel(bsd)"), "{e}");
        let e = parse_environment_yaml(
            "dependencies:\n  - sel(linux): [x]\n",
            "e.yml",
            Subdir::Linux64,
        )
        .unwrap_err();
        assert!(
            matches!(e, EnvFileError::DependencyEntry { index: 0, .. }),
            "{e}"
        );
    }

    #[test]
    fn spec_list() {
        let specs = parse_spec_list(
            "# comment\n\nnumpy\n  python >=3.8  # inline\nconda-forge::zlib\n",
            "specs.txt",
        )
        .unwrap();
        assert_eq!(specs, ["numpy", "python >=3.8", "conda-forge::zlib"]);
        let e = parse_spec_list("numpy\n\nnumpy >=>1\n", "specs.txt").unwrap_err();
        assert!(e.to_string().starts_with("specs.txt, line 3:"), "{e}");
    }
}
