//! `spin.toml`: the subset of Spin's manifest v2 that tarn serves, strictly validated.
//!
//! ```toml
//! spin_manifest_version = 2
//! [application]
//! name = "tarn-sample"
//! [[trigger.http]]
//! route = "/..."
//! component = "sample"
//! [component.sample]
//! source = "target/wasm32-wasip2/release/tarn_guest.wasm"
//! databases = ["default"]             # tarn: the databases this component may open
//! [component.sample.limits]           # tarn: optional per-component limits
//! memory_mb = 64
//! ```
//!
//! Unknown keys are errors, and so are Spin features tarn does not offer (outbound hosts,
//! files, variables, key-value stores, ...), each with the line and column of the offending
//! key: nothing is silently ignored. A value of the wrong shape is named by its dotted key
//! (`component.sample.limits.memory_mb`) as well as its position.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::route::{RouteError, Router};

/// The largest `memory_mb` a 32-bit Wasm memory can use (4 GiB).
const MAX_MEMORY_MB: u32 = 4096;

/// Spin component settings tarn rejects, with the reason given.
const UNSUPPORTED_COMPONENT_KEYS: [(&str, &str); 11] = [
    (
        "allowed_outbound_hosts",
        "guests have no network access besides their `databases`",
    ),
    (
        "allowed_http_hosts",
        "guests have no network access besides their `databases`",
    ),
    ("files", "guests have no file system access"),
    ("exclude_files", "guests have no file system access"),
    ("variables", "pass settings through `environment` instead"),
    (
        "key_value_stores",
        "tarn offers PostgreSQL through `databases` only",
    ),
    (
        "sqlite_databases",
        "tarn offers PostgreSQL through `databases` only",
    ),
    ("ai_models", "tarn offers no AI inference"),
    (
        "dependencies",
        "component dependencies are not composed by tarn",
    ),
    (
        "dependencies_inherit_configuration",
        "component dependencies are not composed by tarn",
    ),
    ("tool", "tool sections are not used by tarn"),
];

/// A parsed and validated manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// `[application]`.
    pub application: Application,
    /// `[[trigger.http]]` entries, in file order.
    pub triggers: Vec<HttpTrigger>,
    /// `[component.<id>]` tables by id.
    pub components: BTreeMap<String, ComponentSpec>,
    /// The directory relative paths are resolved against (the manifest's).
    pub dir: PathBuf,
}

/// `[application]`: metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    /// The application's name (required).
    pub name: String,
    /// Its version.
    pub version: Option<String>,
    /// A description.
    pub description: Option<String>,
    /// Its authors.
    pub authors: Vec<String>,
}

/// One `[[trigger.http]]`: requests whose path matches `route` go to `component`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTrigger {
    /// Spin route syntax: `/exact`, `/prefix/...`, `/...`, `/users/:id`.
    pub route: String,
    /// The id of a `[component.<id>]`.
    pub component: String,
}

/// One `[component.<id>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentSpec {
    /// The Wasm component file, resolved against the manifest's directory.
    pub source: PathBuf,
    /// A description.
    pub description: Option<String>,
    /// Environment variables the guest sees.
    pub environment: BTreeMap<String, String>,
    /// Named databases this component may open (tarn's grant; none by default).
    pub databases: Vec<String>,
    /// tarn's optional per-component limits.
    pub limits: ComponentLimits,
    /// How to build `source`.
    pub build: Option<BuildSpec>,
}

/// `[component.<id>.limits]`: each unset limit falls back to the runtime's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComponentLimits {
    /// Linear memory cap, in MiB (at most 4096).
    pub memory_mb: Option<u32>,
    /// CPU time per request, in milliseconds.
    pub cpu_ms: Option<u32>,
    /// Wall-clock deadline per request, in milliseconds.
    pub timeout_ms: Option<u32>,
    /// Database connections this component may hold at once.
    pub max_connections: Option<u32>,
    /// Request body cap, in KiB.
    pub max_body_kb: Option<u32>,
}

/// `[component.<id>.build]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSpec {
    /// Shell command that builds the component.
    pub command: String,
    /// Directory to run it in, resolved against the manifest's directory.
    pub workdir: PathBuf,
    /// Glob patterns (relative to `workdir`) of the inputs; a newer match means a rebuild.
    pub watch: Vec<String>,
}

/// Why a manifest could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read manifest {}: {source}", path.display())]
    Read {
        /// The manifest's path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, or does not have the manifest's shape.
    #[error(
        "{}:{line}:{column}: {}{message}",
        path.display(),
        key.as_ref().map(|k| format!("`{k}`: ")).unwrap_or_default()
    )]
    Parse {
        /// The manifest's path.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column (in characters).
        column: usize,
        /// The dotted key whose value is wrong (e.g. `component.sample.databases`), when
        /// the TOML itself parsed.
        key: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// The manifest is well-formed but inconsistent or uses something tarn does not support.
    #[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        /// The manifest's path.
        path: PathBuf,
        /// 1-based line of the offending key, when there is one.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
}

impl Manifest {
    /// Reads and validates the manifest at `path`; relative paths in it are resolved against
    /// its directory.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_owned(),
            source,
        })?;
        let dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
        Self::parse(&text, &dir, path)
    }

    /// Parses and validates manifest `text`, resolving relative paths against `dir` and naming
    /// `path_for_errors` in errors.
    pub fn parse(
        text: &str,
        dir: &Path,
        path_for_errors: &Path,
    ) -> Result<Manifest, ManifestError> {
        let source = Source {
            text,
            path: path_for_errors,
        };
        let document = DeTable::parse(text).map_err(|e| source.parse_error(&e))?;
        if let Some((span, message)) = unsupported(document.get_ref()) {
            return Err(source.invalid(Some(span), message));
        }
        let raw = RawManifest::deserialize(toml::de::Deserializer::from(document))
            .map_err(|e| source.parse_error(&e))?;
        raw.validate(&source, dir)
    }
}

/// The manifest text, for turning byte offsets into positions in errors.
struct Source<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Source<'_> {
    /// 1-based line and column (in characters) of byte `offset`.
    fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (
            before.matches('\n').count() + 1,
            before[line_start..].chars().count() + 1,
        )
    }

    /// A TOML error. When the text itself parses (the value has the wrong shape), the key
    /// whose value is wrong is named; the text is parsed again for that, on this error path
    /// only (deserializing consumed the first parse).
    fn parse_error(&self, error: &toml::de::Error) -> ManifestError {
        let offset = error.span().map_or(0, |span| span.start);
        let (line, column) = self.position(offset);
        let key = DeTable::parse(self.text)
            .ok()
            .and_then(|document| key_at(document.get_ref(), offset));
        ManifestError::Parse {
            path: self.path.to_owned(),
            line,
            column,
            key,
            message: error.message().trim_end().to_owned(),
        }
    }

    fn invalid(&self, span: Option<Range<usize>>, message: String) -> ManifestError {
        ManifestError::Invalid {
            path: self.path.to_owned(),
            line: span.map(|span| self.position(span.start).0),
            message,
        }
    }
}

/// The dotted path of the innermost key whose key or value spans byte `offset` (array items
/// as `[i]`), e.g. `component.sample.limits.memory_mb` or `trigger.http[0].route`. Tables
/// are searched whatever their span: a `[header]` table's span is its header alone.
fn key_at(table: &DeTable<'_>, offset: usize) -> Option<String> {
    table.iter().find_map(|(key, value)| {
        let name = key.get_ref();
        match inner_key_at(value, offset) {
            Some(rest) => Some(format!("{name}{rest}")),
            None if key.span().contains(&offset) || value.span().contains(&offset) => {
                Some(name.to_string())
            }
            None => None,
        }
    })
}

/// The rest of [`key_at`]'s path below `value`: `.key...` in a table, `[i]...` in an array.
fn inner_key_at(value: &Spanned<DeValue<'_>>, offset: usize) -> Option<String> {
    match value.get_ref() {
        DeValue::Table(inner) => key_at(inner, offset).map(|rest| format!(".{rest}")),
        DeValue::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| match inner_key_at(item, offset) {
                Some(rest) => Some(format!("[{i}]{rest}")),
                None if item.span().contains(&offset) => Some(format!("[{i}]")),
                None => None,
            }),
        _ => None,
    }
}

/// The table `value` holds, if it is one.
fn table<'a, 'i>(value: &'a Spanned<DeValue<'i>>) -> Option<&'a DeTable<'i>> {
    value.get_ref().as_table()
}

/// The first (in file order) use of a Spin feature tarn does not support: its span and an
/// explanation. Runs before strict parsing so these get a better message than "unknown field".
fn unsupported(document: &DeTable<'_>) -> Option<(Range<usize>, String)> {
    let mut found: Vec<(Range<usize>, String)> = Vec::new();
    if let Some((key, _)) = document.get_key_value("variables") {
        found.push((
            key.span(),
            "application `variables` are not supported by tarn; give components `environment` \
             entries instead"
                .to_owned(),
        ));
    }
    if let Some(application) = document.get("application").and_then(table)
        && let Some((key, _)) = application.get_key_value("trigger")
    {
        found.push((
            key.span(),
            "`[application.trigger]` settings (such as a base path) are not supported by tarn; \
             routes are used as written"
                .to_owned(),
        ));
    }
    if let Some(triggers) = document.get("trigger").and_then(table) {
        for (kind, entries) in triggers.iter() {
            if kind.get_ref() != "http" {
                found.push((
                    kind.span(),
                    format!(
                        "tarn serves HTTP triggers only; `trigger.{}` is not supported",
                        kind.get_ref()
                    ),
                ));
                continue;
            }
            for entry in entries
                .get_ref()
                .as_array()
                .into_iter()
                .flat_map(|a| a.iter())
            {
                let inline = entry.get_ref().as_table().and_then(|t| t.get("component"));
                if let Some(component) = inline.filter(|c| c.get_ref().is_table()) {
                    found.push((
                        component.span(),
                        "inline components are not supported by tarn; define a \
                         `[component.<id>]` table and name its id in `component`"
                            .to_owned(),
                    ));
                }
            }
        }
    }
    if let Some(components) = document.get("component").and_then(table) {
        for (id, spec) in components.iter() {
            let Some(spec) = spec.get_ref().as_table() else {
                continue;
            };
            for (key, reason) in UNSUPPORTED_COMPONENT_KEYS {
                if let Some((key, _)) = spec.get_key_value(key) {
                    found.push((
                        key.span(),
                        format!(
                            "component `{}`: `{}` is not supported by tarn ({reason})",
                            id.get_ref(),
                            key.get_ref()
                        ),
                    ));
                }
            }
            if let Some(source) = spec.get("source").filter(|s| s.get_ref().is_table()) {
                found.push((
                    source.span(),
                    format!(
                        "component `{}`: tarn loads components from local files only; `source` \
                         must be a path, not a table",
                        id.get_ref()
                    ),
                ));
            }
        }
    }
    found.into_iter().min_by_key(|(span, _)| span.start)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    spin_manifest_version: Spanned<toml::Value>,
    application: RawApplication,
    #[serde(default)]
    trigger: RawTriggers,
    #[serde(default)]
    component: BTreeMap<Spanned<String>, RawComponent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApplication {
    name: Spanned<String>,
    version: Option<String>,
    description: Option<String>,
    #[serde(default)]
    authors: Vec<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTriggers {
    #[serde(default)]
    http: Vec<RawHttpTrigger>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttpTrigger {
    route: Spanned<String>,
    component: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponent {
    source: Spanned<String>,
    description: Option<String>,
    #[serde(default)]
    environment: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    databases: Vec<Spanned<String>>,
    limits: Option<RawLimits>,
    build: Option<Spanned<RawBuild>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    memory_mb: Option<Spanned<u32>>,
    cpu_ms: Option<Spanned<u32>>,
    timeout_ms: Option<Spanned<u32>>,
    max_connections: Option<Spanned<u32>>,
    max_body_kb: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuild {
    command: Spanned<String>,
    workdir: Option<Spanned<String>>,
    #[serde(default)]
    watch: Vec<Spanned<String>>,
}

/// A semantic problem: where (if anywhere) and what.
type Problem = (Option<Range<usize>>, String);

impl RawManifest {
    /// Checks what the types cannot express; on success, resolves paths against `dir`.
    fn validate(self, source: &Source<'_>, dir: &Path) -> Result<Manifest, ManifestError> {
        let mut problems: Vec<Problem> = Vec::new();
        let version = &self.spin_manifest_version;
        if version.get_ref().as_integer() != Some(2) {
            problems.push((
                Some(version.span()),
                format!(
                    "`spin_manifest_version` must be 2 (tarn reads Spin manifest v2), not {}",
                    version.get_ref()
                ),
            ));
        }
        if self.application.name.get_ref().trim().is_empty() {
            problems.push((
                Some(self.application.name.span()),
                "`application.name` must not be empty".to_owned(),
            ));
        }
        for (id, component) in &self.component {
            problems.extend(component.problems(id));
        }
        problems.extend(self.trigger_problems(source));
        if let Some((span, message)) = problems
            .into_iter()
            .min_by_key(|(span, _)| span.as_ref().map_or(usize::MAX, |s| s.start))
        {
            return Err(source.invalid(span, message));
        }
        Ok(self.resolve(dir))
    }

    /// Missing triggers, unknown components, and bad or duplicate routes.
    fn trigger_problems(&self, source: &Source<'_>) -> Vec<Problem> {
        let triggers = &self.trigger.http;
        if triggers.is_empty() {
            return vec![(
                None,
                "no HTTP routes: add a `[[trigger.http]]` with a `route` and a `component`"
                    .to_owned(),
            )];
        }
        let mut problems = Vec::new();
        for trigger in triggers {
            let id = trigger.component.get_ref();
            if !self.component.contains_key(id.as_str()) {
                let known: Vec<&str> = self
                    .component
                    .keys()
                    .map(|k| k.get_ref().as_str())
                    .collect();
                let known = if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                };
                problems.push((
                    Some(trigger.component.span()),
                    format!(
                        "route `{}` names component `{id}`, which is not defined (there is no \
                         `[component.{id}]`; defined: {known})",
                        trigger.route.get_ref()
                    ),
                ));
            }
        }
        if let Err(error) = Router::new(&self.http_triggers()) {
            let index = match &error {
                RouteError::Duplicate { index, .. } => *index,
                other => triggers
                    .iter()
                    .position(|t| t.route.get_ref() == other.route())
                    .unwrap_or(0),
            };
            let mut message = error.to_string();
            if let RouteError::Duplicate { other, .. } = &error
                && let Some(earlier) = triggers[..index]
                    .iter()
                    .find(|t| t.route.get_ref() == other)
            {
                let (line, _) = source.position(earlier.route.span().start);
                message.push_str(&format!(" (the earlier one is on line {line})"));
            }
            problems.push((Some(triggers[index].route.span()), message));
        }
        problems
    }

    fn http_triggers(&self) -> Vec<HttpTrigger> {
        self.trigger
            .http
            .iter()
            .map(|t| HttpTrigger {
                route: t.route.get_ref().clone(),
                component: t.component.get_ref().clone(),
            })
            .collect()
    }

    /// The validated manifest, with paths resolved against `dir`.
    fn resolve(self, dir: &Path) -> Manifest {
        let triggers = self.http_triggers();
        let components = self
            .component
            .into_iter()
            .map(|(id, raw)| (id.into_inner(), raw.resolve(dir)))
            .collect();
        Manifest {
            application: Application {
                name: self.application.name.into_inner(),
                version: self.application.version,
                description: self.application.description,
                authors: self.application.authors,
            },
            triggers,
            components,
            dir: dir.to_owned(),
        }
    }
}

impl RawComponent {
    /// What is wrong with component `id`.
    fn problems(&self, id: &Spanned<String>) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut problem = |span: Range<usize>, message: String| {
            problems.push((
                Some(span),
                format!("component `{}`: {message}", id.get_ref()),
            ));
        };
        if !is_kebab_case(id.get_ref()) {
            problem(
                id.span(),
                "component ids must be kebab-case: lowercase words of letters and digits, each \
                 starting with a letter, joined by single `-` (e.g. `notes-api`)"
                    .to_owned(),
            );
        }
        if self.source.get_ref().trim().is_empty() {
            problem(self.source.span(), "`source` must not be empty".to_owned());
        }
        for (name, value) in &self.environment {
            if name.get_ref().is_empty() || name.get_ref().contains(['=', '\0']) {
                problem(
                    name.span(),
                    format!(
                        "environment variable name {:?} must be non-empty, without `=` or NUL",
                        name.get_ref()
                    ),
                );
            }
            if value.get_ref().contains('\0') {
                problem(
                    value.span(),
                    format!(
                        "environment variable `{}` must not contain NUL",
                        name.get_ref()
                    ),
                );
            }
        }
        for (index, name) in self.databases.iter().enumerate() {
            if !is_database_name(name.get_ref()) {
                problem(
                    name.span(),
                    format!(
                        "database grant {:?} must be a database name: non-empty, lowercase \
                         letters, digits, `-` and `_`",
                        name.get_ref()
                    ),
                );
            } else if self.databases[..index]
                .iter()
                .any(|earlier| earlier.get_ref() == name.get_ref())
            {
                problem(
                    name.span(),
                    format!("database `{}` is granted twice", name.get_ref()),
                );
            }
        }
        if let Some(limits) = &self.limits {
            for (key, value) in limits.entries() {
                if let Some(value) = value
                    && *value.get_ref() == 0
                {
                    problem(value.span(), format!("`limits.{key}` must be at least 1"));
                }
            }
            if let Some(memory) = &limits.memory_mb
                && *memory.get_ref() > MAX_MEMORY_MB
            {
                problem(
                    memory.span(),
                    format!(
                        "`limits.memory_mb` = {} exceeds the {MAX_MEMORY_MB} MiB a 32-bit Wasm \
                         memory can address",
                        memory.get_ref()
                    ),
                );
            }
        }
        if let Some(build) = &self.build {
            let build = build.get_ref();
            if build.command.get_ref().trim().is_empty() {
                problem(
                    build.command.span(),
                    "`build.command` must not be empty".to_owned(),
                );
            }
            if let Some(workdir) = build
                .workdir
                .as_ref()
                .filter(|w| w.get_ref().trim().is_empty())
            {
                problem(
                    workdir.span(),
                    "`build.workdir` must not be empty (omit it for the manifest's directory)"
                        .to_owned(),
                );
            }
            for pattern in build.watch.iter().filter(|p| p.get_ref().trim().is_empty()) {
                problem(
                    pattern.span(),
                    "`build.watch` patterns must not be empty".to_owned(),
                );
            }
        }
        problems
    }

    fn resolve(self, dir: &Path) -> ComponentSpec {
        let limits = self.limits.map(|l| ComponentLimits {
            memory_mb: l.memory_mb.map(Spanned::into_inner),
            cpu_ms: l.cpu_ms.map(Spanned::into_inner),
            timeout_ms: l.timeout_ms.map(Spanned::into_inner),
            max_connections: l.max_connections.map(Spanned::into_inner),
            max_body_kb: l.max_body_kb.map(Spanned::into_inner),
        });
        ComponentSpec {
            source: dir.join(self.source.into_inner()),
            description: self.description,
            environment: self
                .environment
                .into_iter()
                .map(|(k, v)| (k.into_inner(), v.into_inner()))
                .collect(),
            databases: self
                .databases
                .into_iter()
                .map(Spanned::into_inner)
                .collect(),
            limits: limits.unwrap_or_default(),
            build: self.build.map(|build| {
                let build = build.into_inner();
                BuildSpec {
                    command: build.command.into_inner(),
                    workdir: build
                        .workdir
                        .map_or_else(|| dir.to_owned(), |w| dir.join(w.into_inner())),
                    watch: build.watch.into_iter().map(Spanned::into_inner).collect(),
                }
            }),
        }
    }
}

impl RawLimits {
    /// Every limit with its key.
    fn entries(&self) -> [(&'static str, Option<&Spanned<u32>>); 5] {
        [
            ("memory_mb", self.memory_mb.as_ref()),
            ("cpu_ms", self.cpu_ms.as_ref()),
            ("timeout_ms", self.timeout_ms.as_ref()),
            ("max_connections", self.max_connections.as_ref()),
            ("max_body_kb", self.max_body_kb.as_ref()),
        ]
    }
}

/// Spin's component id rule: `word(-word)*`, words of lowercase letters and digits starting
/// with a letter.
fn is_kebab_case(id: &str) -> bool {
    id.split('-').all(|word| {
        word.starts_with(|c: char| c.is_ascii_lowercase())
            && word
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    })
}

/// The database-name rule of tarn's configuration.
fn is_database_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"spin_manifest_version = 2

[application]
name = "tarn-sample"
version = "0.1.0"
description = "A sample"
authors = ["Ada <ada@example.com>"]

[[trigger.http]]
route = "/..."
component = "sample"

[[trigger.http]]
route = "/notes/:id"
component = "notes-api"

[component.sample]
source = "target/sample.wasm"
description = "The sample"
databases = ["default", "audit_log"]
environment = { KEY = "value", OTHER = "x=y" }

[component.sample.limits]
memory_mb = 64
cpu_ms = 500
timeout_ms = 2000
max_connections = 3
max_body_kb = 256

[component.sample.build]
command = "cargo build --release"
workdir = "guest"
watch = ["src/**/*.rs"]

[component.notes-api]
source = "/opt/notes.wasm"
"#;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(text, Path::new("/app"), Path::new("spin.toml"))
    }

    /// Parses `text` expecting an error at `line` whose message contains every fragment.
    #[track_caller]
    fn assert_error(text: &str, line: usize, fragments: &[&str]) {
        let message = parse(text).unwrap_err().to_string();
        assert!(
            message.starts_with(&format!("spin.toml:{line}:")),
            "expected line {line}: {message}"
        );
        for fragment in fragments {
            assert!(
                message.contains(fragment),
                "expected {fragment:?} in: {message}"
            );
        }
    }

    /// `VALID` with `from` replaced by `to` (which must occur).
    fn edit(from: &str, to: &str) -> String {
        assert!(VALID.contains(from), "{from:?} not in the sample");
        VALID.replacen(from, to, 1)
    }

    #[test]
    fn parses_and_resolves_a_full_manifest() {
        let manifest = parse(VALID).unwrap();
        assert_eq!(manifest.dir, Path::new("/app"));
        assert_eq!(
            manifest.application,
            Application {
                name: "tarn-sample".into(),
                version: Some("0.1.0".into()),
                description: Some("A sample".into()),
                authors: vec!["Ada <ada@example.com>".into()],
            }
        );
        assert_eq!(
            manifest.triggers,
            vec![
                HttpTrigger {
                    route: "/...".into(),
                    component: "sample".into()
                },
                HttpTrigger {
                    route: "/notes/:id".into(),
                    component: "notes-api".into()
                },
            ]
        );
        let sample = &manifest.components["sample"];
        assert_eq!(sample.source, Path::new("/app/target/sample.wasm"));
        assert_eq!(sample.description.as_deref(), Some("The sample"));
        assert_eq!(sample.databases, ["default", "audit_log"]);
        assert_eq!(sample.environment["OTHER"], "x=y");
        assert_eq!(
            sample.limits,
            ComponentLimits {
                memory_mb: Some(64),
                cpu_ms: Some(500),
                timeout_ms: Some(2000),
                max_connections: Some(3),
                max_body_kb: Some(256),
            }
        );
        let build = sample.build.as_ref().unwrap();
        assert_eq!(build.command, "cargo build --release");
        assert_eq!(build.workdir, Path::new("/app/guest"));
        assert_eq!(build.watch, ["src/**/*.rs"]);
        let notes = &manifest.components["notes-api"];
        assert_eq!(notes.source, Path::new("/opt/notes.wasm"));
        assert!(
            notes.databases.is_empty() && notes.environment.is_empty() && notes.build.is_none()
        );
        assert_eq!(notes.limits, ComponentLimits::default());
    }

    #[test]
    fn build_workdir_defaults_to_the_manifest_directory() {
        let manifest = parse(&edit("workdir = \"guest\"\n", "")).unwrap();
        assert_eq!(
            manifest.components["sample"]
                .build
                .as_ref()
                .unwrap()
                .workdir,
            Path::new("/app")
        );
    }

    #[test]
    fn the_repository_sample_manifest_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../spin.toml");
        let manifest = Manifest::load(&path).unwrap();
        assert!(manifest.dir.is_absolute());
        assert!(!manifest.triggers.is_empty());
        for trigger in &manifest.triggers {
            assert!(manifest.components.contains_key(&trigger.component));
        }
    }

    #[test]
    fn load_resolves_against_the_manifest_directory_and_reports_missing_files() {
        let dir = std::env::temp_dir().join(format!("tarn-manifest-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("spin.toml");
        std::fs::write(&path, VALID).unwrap();
        let manifest = Manifest::load(&path).unwrap();
        assert_eq!(
            manifest.components["sample"].source,
            dir.join("target/sample.wasm")
        );
        std::fs::remove_dir_all(&dir).unwrap();
        let error = Manifest::load(&path).unwrap_err();
        assert!(matches!(error, ManifestError::Read { .. }));
        assert!(error.to_string().contains("spin.toml"), "{error}");
    }

    #[test]
    fn shape_errors_name_the_key() {
        assert_error(
            &edit("memory_mb = 64", "memory_mb = -1"),
            24,
            &["`component.sample.limits.memory_mb`: ", "-1"],
        );
        assert_error(
            &edit(
                "databases = [\"default\", \"audit_log\"]",
                "databases = \"default\"",
            ),
            20,
            &["`component.sample.databases`: ", "expected a sequence"],
        );
        assert_error(
            &edit("route = \"/notes/:id\"", "route = 7"),
            14,
            &["`trigger.http[1].route`: "],
        );
        assert_error(
            &edit(
                "environment = { KEY = \"value\",",
                "environment = { KEY = 1,",
            ),
            21,
            &["`component.sample.environment.KEY`: "],
        );
        // A TOML syntax error has no key to name.
        let message = parse(&edit("cpu_ms = 500", "cpu_ms = "))
            .unwrap_err()
            .to_string();
        assert!(!message.contains('`'), "{message}");
    }

    #[test]
    fn syntax_errors_give_line_and_column() {
        assert_error(
            &edit("name = \"tarn-sample\"", "name = \"tarn-sample"),
            4,
            &["spin.toml:4:"],
        );
        assert_error(
            &edit(
                "version = \"0.1.0\"",
                "version = \"0.1.0\"\nversion = \"2\"",
            ),
            6,
            &["duplicate key"],
        );
        let error = parse(&edit("memory_mb = 64", "memory_mb = -1")).unwrap_err();
        match error {
            ManifestError::Parse {
                line,
                column,
                ref message,
                ..
            } => {
                assert_eq!((line, column), (24, 13), "{message}");
                assert!(message.contains("-1"), "{message}");
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn unknown_and_mistyped_keys_are_rejected_with_their_line() {
        assert_error(
            &edit(
                "spin_manifest_version = 2\n",
                "spin_manifest_version = 2\nfoo = 1\n",
            ),
            2,
            &["unknown field `foo`"],
        );
        assert_error(
            &edit("description = \"A sample\"", "descripton = \"A sample\""),
            6,
            &["unknown field `descripton`"],
        );
        assert_error(
            &edit(
                "component = \"sample\"",
                "component = \"sample\"\nexecutor = { type = \"wagi\" }",
            ),
            12,
            &["unknown field `executor`"],
        );
        assert_error(
            &edit(
                "source = \"target/sample.wasm\"",
                "sorce = \"target/sample.wasm\"",
            ),
            18,
            &["unknown field `sorce`"],
        );
        assert_error(
            &edit("cpu_ms = 500", "cpu_seconds = 1"),
            25,
            &["unknown field `cpu_seconds`", "cpu_ms"],
        );
        assert_error(
            &edit("watch = [", "wach = ["),
            33,
            &["unknown field `wach`"],
        );
        assert_error(
            &edit("memory_mb = 64", "memory_mb = \"64\""),
            24,
            &["invalid type", "string"],
        );
        assert_error(
            &edit("memory_mb = 64", "memory_mb = 99999999999"),
            24,
            &["99999999999"],
        );
        assert_error(
            &edit(
                "databases = [\"default\", \"audit_log\"]",
                "databases = \"default\"",
            ),
            20,
            &["invalid type"],
        );
        assert_error(
            &edit("KEY = \"value\"", "KEY = 1"),
            21,
            &["invalid type", "integer"],
        );
        assert_error(
            &edit("authors = [\"Ada <ada@example.com>\"]", "authors = \"Ada\""),
            7,
            &["invalid type"],
        );
    }

    #[test]
    fn missing_required_keys_are_named() {
        assert_error(
            &edit("spin_manifest_version = 2\n", ""),
            1,
            &["missing field `spin_manifest_version`"],
        );
        assert_error(
            &edit("name = \"tarn-sample\"\n", ""),
            3,
            &["missing field `name`"],
        );
        assert_error(
            &edit(
                "source = \"/opt/notes.wasm\"\n",
                "description = \"no source\"\n",
            ),
            35,
            &["missing field `source`"],
        );
        assert_error(
            &edit("command = \"cargo build --release\"\n", ""),
            30,
            &["missing field `command`"],
        );
        let no_application = "spin_manifest_version = 2\n[[trigger.http]]\nroute = \"/\"\ncomponent = \"a\"\n[component.a]\nsource = \"a.wasm\"\n";
        assert_error(no_application, 1, &["missing field `application`"]);
    }

    #[test]
    fn the_manifest_version_must_be_2() {
        assert_error(
            &edit("spin_manifest_version = 2", "spin_manifest_version = 1"),
            1,
            &["must be 2", "not 1"],
        );
        assert_error(
            &edit("spin_manifest_version = 2", "spin_manifest_version = \"1\""),
            1,
            &["must be 2", "\"1\""],
        );
    }

    #[test]
    fn unsupported_spin_features_are_named_not_ignored() {
        let cases: [(&str, &str, usize, &str); 9] = [
            (
                "description = \"The sample\"",
                "allowed_outbound_hosts = [\"https://example.com\"]",
                19,
                "`allowed_outbound_hosts` is not supported by tarn",
            ),
            (
                "description = \"The sample\"",
                "files = [\"static/**\"]",
                19,
                "`files` is not supported by tarn (guests have no file system access)",
            ),
            (
                "description = \"The sample\"",
                "key_value_stores = [\"default\"]",
                19,
                "`key_value_stores` is not supported",
            ),
            (
                "description = \"The sample\"",
                "variables = { token = \"{{ token }}\" }",
                19,
                "component `sample`: `variables` is not supported",
            ),
            (
                "[component.sample.limits]",
                "[component.sample.variables]\nx = \"1\"\n\n[component.sample.limits]",
                23,
                "`variables` is not supported",
            ),
            (
                "[application]",
                "[variables]\ntoken = { required = true }\n\n[application]",
                3,
                "application `variables` are not supported",
            ),
            (
                "authors = [\"Ada <ada@example.com>\"]",
                "authors = []\n[application.trigger.http]\nbase = \"/api\"",
                8,
                "`[application.trigger]`",
            ),
            (
                "[[trigger.http]]\nroute = \"/...\"",
                "[[trigger.redis]]\nchannel = \"x\"\ncomponent = \"sample\"\n\n[[trigger.http]]\nroute = \"/...\"",
                9,
                "HTTP triggers only; `trigger.redis`",
            ),
            (
                "source = \"/opt/notes.wasm\"",
                "source = { url = \"https://example.com/x.wasm\", digest = \"sha256:00\" }",
                36,
                "local files only",
            ),
        ];
        for (from, to, line, fragment) in cases {
            assert_error(&edit(from, to), line, &[fragment]);
        }
        let inline = edit(
            "component = \"notes-api\"",
            "component = { source = \"notes.wasm\" }",
        );
        assert_error(&inline, 15, &["inline components are not supported"]);
    }

    #[test]
    fn triggers_must_name_defined_components_with_valid_unique_routes() {
        assert_error(
            &edit("component = \"notes-api\"", "component = \"notes\""),
            15,
            &[
                "route `/notes/:id` names component `notes`",
                "defined: notes-api, sample",
            ],
        );
        assert_error(
            &edit("route = \"/notes/:id\"", "route = \"notes\""),
            14,
            &["route `notes` must start with `/`"],
        );
        assert_error(
            &edit("route = \"/notes/:id\"", "route = \"/notes//x\""),
            14,
            &["empty segment"],
        );
        assert_error(
            &edit("route = \"/notes/:id\"", "route = \"/.../notes\""),
            14,
            &["`...` may only be the whole last segment"],
        );
        assert_error(
            &edit("route = \"/notes/:id\"", "route = \"/notes/:\""),
            14,
            &["parameter segment `:`"],
        );
        assert_error(
            &edit("route = \"/notes/:id\"", "route = \"/...\""),
            14,
            &[
                "route `/...` duplicates route `/...`",
                "the earlier one is on line 10",
            ],
        );
        let no_triggers = VALID.replace("[[trigger.http]]\nroute = \"/...\"\ncomponent = \"sample\"\n\n[[trigger.http]]\nroute = \"/notes/:id\"\ncomponent = \"notes-api\"\n", "");
        let message = parse(&no_triggers).unwrap_err().to_string();
        assert_eq!(
            message,
            "spin.toml: no HTTP routes: add a `[[trigger.http]]` with a `route` and a `component`"
        );
    }

    #[test]
    fn component_settings_are_validated() {
        assert_error(
            &edit("[component.notes-api]", "[component.Notes_API]")
                .replace("\"notes-api\"", "\"Notes_API\""),
            35,
            &["component `Notes_API`", "kebab-case"],
        );
        assert_error(
            &edit("[component.notes-api]", "[component.notes--api]")
                .replace("\"notes-api\"", "\"notes--api\""),
            35,
            &["kebab-case"],
        );
        assert_error(
            &edit("[component.notes-api]", "[component.2notes]")
                .replace("\"notes-api\"", "\"2notes\""),
            35,
            &["kebab-case"],
        );
        assert_error(
            &edit("source = \"/opt/notes.wasm\"", "source = \" \""),
            36,
            &["component `notes-api`: `source` must not be empty"],
        );
        assert_error(
            &edit("\"default\", \"audit_log\"", "\"default\", \"\""),
            20,
            &["database grant \"\"", "non-empty"],
        );
        assert_error(
            &edit("\"default\", \"audit_log\"", "\"default\", \"Audit Log\""),
            20,
            &["database grant \"Audit Log\""],
        );
        assert_error(
            &edit("\"default\", \"audit_log\"", "\"default\", \"default\""),
            20,
            &["database `default` is granted twice"],
        );
        assert_error(
            &edit("KEY = \"value\"", "\"\" = \"value\""),
            21,
            &["environment variable name \"\""],
        );
        assert_error(
            &edit("memory_mb = 64", "memory_mb = 0"),
            24,
            &["component `sample`: `limits.memory_mb` must be at least 1"],
        );
        assert_error(
            &edit("memory_mb = 64", "memory_mb = 5000"),
            24,
            &["5000 exceeds the 4096 MiB"],
        );
        assert_error(
            &edit("max_connections = 3", "max_connections = 0"),
            27,
            &["`limits.max_connections` must be at least 1"],
        );
        assert_error(
            &edit("timeout_ms = 2000", "timeout_ms = 0"),
            26,
            &["`limits.timeout_ms`"],
        );
        assert_error(
            &edit("command = \"cargo build --release\"", "command = \"  \""),
            31,
            &["`build.command` must not be empty"],
        );
        assert_error(
            &edit("workdir = \"guest\"", "workdir = \"\""),
            32,
            &["`build.workdir` must not be empty"],
        );
        assert_error(
            &edit("[\"src/**/*.rs\"]", "[\"\"]"),
            33,
            &["`build.watch` patterns must not be empty"],
        );
        assert_error(
            &edit("name = \"tarn-sample\"", "name = \"\""),
            4,
            &["`application.name` must not be empty"],
        );
    }

    #[test]
    fn the_first_problem_in_the_file_is_reported() {
        let text = edit("memory_mb = 64", "memory_mb = 0")
            .replace("spin_manifest_version = 2", "spin_manifest_version = 3");
        assert_error(&text, 1, &["must be 2"]);
    }
}
