//! HTTP route matching with Spin's route syntax and precedence.
//!
//! Routes are `/exact/path`, `/prefix/...` (the prefix itself and everything below it), the
//! catch-all `/...`, and `:name` segments capturing one path segment (`/users/:id`).
//!
//! When several routes match, the most specific wins: comparing the routes segment by
//! segment, a literal beats a `:param`, which beats the wildcard; a route that ends where the
//! path ends beats a wildcard. So exact routes beat wildcards, and among wildcards the
//! longest prefix wins. Exact routes are found with one hash lookup and no allocation.

use std::collections::HashMap;

/// A trigger names a route the [`Router`] cannot accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The route does not start with `/`.
    #[error("route `{route}` must start with `/`")]
    NoLeadingSlash {
        /// The route.
        route: String,
    },
    /// The route has `//` or ends with `/`.
    #[error("route `{route}` has an empty segment (`//`, or a `/` at the end); write it without")]
    EmptySegment {
        /// The route.
        route: String,
    },
    /// `...` is not the whole last segment.
    #[error("route `{route}`: `...` may only be the whole last segment, as in `/api/...`")]
    MisplacedWildcard {
        /// The route.
        route: String,
    },
    /// A `:` segment lacks a usable name.
    #[error(
        "route `{route}`: parameter segment `{segment}` needs a name of letters, digits, `_` \
         or `-` after the `:`"
    )]
    BadParameter {
        /// The route.
        route: String,
        /// The segment.
        segment: String,
    },
    /// Two `:` segments share a name.
    #[error("route `{route}` uses the parameter name `{name}` twice")]
    DuplicateParameter {
        /// The route.
        route: String,
        /// The repeated name.
        name: String,
    },
    /// The route contains a character that never reaches the router.
    #[error(
        "route `{route}` contains {character:?}; routes match paths only (no query, fragment or spaces)"
    )]
    BadCharacter {
        /// The route.
        route: String,
        /// The offending character.
        character: char,
    },
    /// Two routes match exactly the same paths.
    #[error("route `{route}` duplicates route `{other}`: both match exactly the same paths")]
    Duplicate {
        /// The later route.
        route: String,
        /// The earlier one.
        other: String,
        /// Index of the later route's trigger in the slice given to [`Router::new`].
        index: usize,
    },
}

impl RouteError {
    /// The route at fault.
    pub fn route(&self) -> &str {
        match self {
            Self::NoLeadingSlash { route }
            | Self::EmptySegment { route }
            | Self::MisplacedWildcard { route }
            | Self::BadParameter { route, .. }
            | Self::DuplicateParameter { route, .. }
            | Self::BadCharacter { route, .. }
            | Self::Duplicate { route, .. } => route,
        }
    }
}

/// One segment of a route pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Must equal the path segment.
    Literal(String),
    /// Captures any non-empty path segment under this name.
    Param(String),
}

impl Segment {
    /// Specificity, for ordering: literal over parameter.
    fn rank(&self) -> u8 {
        match self {
            Self::Literal(_) => RANK_LITERAL,
            Self::Param(_) => RANK_PARAM,
        }
    }
}

/// Specificity ranks, compared position by position (higher wins).
const RANK_LITERAL: u8 = 3;
const RANK_PARAM: u8 = 2;
const RANK_END: u8 = 1;
const RANK_WILDCARD: u8 = 0;

/// A parsed route.
#[derive(Debug, Clone)]
struct Pattern {
    segments: Vec<Segment>,
    /// Ends in `...`.
    wildcard: bool,
}

impl Pattern {
    fn parse(route: &str) -> Result<Self, RouteError> {
        let owned = || route.to_owned();
        let Some(rest) = route.strip_prefix('/') else {
            return Err(RouteError::NoLeadingSlash { route: owned() });
        };
        if let Some(character) = route
            .chars()
            .find(|c| matches!(c, '?' | '#') || c.is_whitespace())
        {
            return Err(RouteError::BadCharacter {
                route: owned(),
                character,
            });
        }
        let parts: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/').collect()
        };
        let mut segments = Vec::with_capacity(parts.len());
        let mut wildcard = false;
        for (position, part) in parts.iter().enumerate() {
            if part.is_empty() {
                return Err(RouteError::EmptySegment { route: owned() });
            }
            if *part == "..." && position + 1 == parts.len() {
                wildcard = true;
            } else if part.contains("...") {
                return Err(RouteError::MisplacedWildcard { route: owned() });
            } else if let Some(name) = part.strip_prefix(':') {
                let valid = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if !valid {
                    return Err(RouteError::BadParameter {
                        route: owned(),
                        segment: (*part).to_owned(),
                    });
                }
                if segments
                    .iter()
                    .any(|s| *s == Segment::Param(name.to_owned()))
                {
                    return Err(RouteError::DuplicateParameter {
                        route: owned(),
                        name: name.to_owned(),
                    });
                }
                segments.push(Segment::Param(name.to_owned()));
            } else {
                segments.push(Segment::Literal((*part).to_owned()));
            }
        }
        Ok(Self { segments, wildcard })
    }

    /// Whether this is a plain path, matched by string equality.
    fn is_exact(&self) -> bool {
        !self.wildcard
            && self
                .segments
                .iter()
                .all(|s| matches!(s, Segment::Literal(_)))
    }

    /// Specificity key: segment ranks, then how the route ends (compare descending).
    fn specificity(&self) -> Vec<u8> {
        let end = if self.wildcard {
            RANK_WILDCARD
        } else {
            RANK_END
        };
        self.segments
            .iter()
            .map(Segment::rank)
            .chain([end])
            .collect()
    }

    /// Whether both match exactly the same paths (parameter names aside).
    fn same_paths(&self, other: &Self) -> bool {
        self.wildcard == other.wildcard
            && self.segments.len() == other.segments.len()
            && self
                .segments
                .iter()
                .zip(&other.segments)
                .all(|pair| match pair {
                    (Segment::Literal(a), Segment::Literal(b)) => a == b,
                    (Segment::Param(_), Segment::Param(_)) => true,
                    _ => false,
                })
    }
}

/// A compiled route and what it leads to.
#[derive(Debug, Clone)]
struct Route {
    route: String,
    component: String,
    pattern: Pattern,
}

/// The result of routing a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch<'a> {
    /// The component to run.
    pub component: &'a str,
    /// The route as written in the manifest.
    pub route: &'a str,
    /// `:name` captures, in route order (raw, still percent-encoded).
    pub params: Vec<(String, String)>,
    /// For wildcard routes, the rest of the path after the prefix (`/b/c` for `/a/...` and
    /// `/a/b/c`; empty for `/a`); empty for other routes.
    pub trailing: String,
}

/// Maps request paths to components. Build once from the manifest's triggers.
#[derive(Debug, Clone)]
pub struct Router {
    /// Every route, in trigger order.
    routes: Vec<Route>,
    /// Plain paths to their index in `routes`.
    exact: HashMap<String, usize>,
    /// Indexes of the other routes, most specific first.
    ordered: Vec<usize>,
}

impl Router {
    /// Compiles the triggers' routes; rejects invalid routes and routes matching exactly the
    /// same paths as an earlier one.
    pub fn new(triggers: &[crate::manifest::HttpTrigger]) -> Result<Router, RouteError> {
        let mut routes: Vec<Route> = Vec::with_capacity(triggers.len());
        for (index, trigger) in triggers.iter().enumerate() {
            let pattern = Pattern::parse(&trigger.route)?;
            if let Some(earlier) = routes.iter().find(|r| r.pattern.same_paths(&pattern)) {
                return Err(RouteError::Duplicate {
                    route: trigger.route.clone(),
                    other: earlier.route.clone(),
                    index,
                });
            }
            routes.push(Route {
                route: trigger.route.clone(),
                component: trigger.component.clone(),
                pattern,
            });
        }
        let exact = routes
            .iter()
            .enumerate()
            .filter(|(_, r)| r.pattern.is_exact())
            .map(|(index, r)| (r.route.clone(), index))
            .collect();
        let mut ordered: Vec<(Vec<u8>, usize)> = routes
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.pattern.is_exact())
            .map(|(index, r)| (r.pattern.specificity(), index))
            .collect();
        ordered.sort_by(|(a, _), (b, _)| b.cmp(a));
        let ordered = ordered.into_iter().map(|(_, index)| index).collect();
        Ok(Router {
            routes,
            exact,
            ordered,
        })
    }

    /// The most specific route matching `path` (the URI path, without the query), if any.
    pub fn route(&self, path: &str) -> Option<RouteMatch<'_>> {
        if let Some(&index) = self.exact.get(path) {
            let route = &self.routes[index];
            return Some(RouteMatch {
                component: &route.component,
                route: &route.route,
                params: Vec::new(),
                trailing: String::new(),
            });
        }
        if !path.starts_with('/') {
            return None;
        }
        self.ordered.iter().find_map(|&index| {
            let route = &self.routes[index];
            let (params, trailing) = matches(&route.pattern, path)?;
            Some(RouteMatch {
                component: &route.component,
                route: &route.route,
                params,
                trailing,
            })
        })
    }
}

/// Matches `path` against `pattern`; returns the captures and, for a wildcard, the rest of
/// the path after the matched prefix.
fn matches(pattern: &Pattern, path: &str) -> Option<(Vec<(String, String)>, String)> {
    let mut params = Vec::new();
    // The unmatched rest of the path: empty, or starting with `/`.
    let mut rest = path;
    for segment in &pattern.segments {
        let after_slash = rest.strip_prefix('/')?;
        let end = after_slash.find('/').unwrap_or(after_slash.len());
        let part = &after_slash[..end];
        match segment {
            Segment::Literal(literal) if literal == part => {}
            Segment::Param(name) if !part.is_empty() => {
                params.push((name.clone(), part.to_owned()))
            }
            _ => return None,
        }
        rest = &after_slash[end..];
    }
    if pattern.wildcard {
        Some((params, rest.to_owned()))
    } else {
        rest.is_empty().then_some((params, String::new()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::HttpTrigger;

    fn router(routes: &[(&str, &str)]) -> Router {
        Router::new(&triggers(routes)).unwrap()
    }

    fn triggers(routes: &[(&str, &str)]) -> Vec<HttpTrigger> {
        routes
            .iter()
            .map(|(route, component)| HttpTrigger {
                route: (*route).into(),
                component: (*component).into(),
            })
            .collect()
    }

    fn component<'a>(router: &'a Router, path: &str) -> Option<&'a str> {
        router.route(path).map(|m| m.component)
    }

    fn error(routes: &[&str]) -> RouteError {
        let pairs: Vec<(&str, &str)> = routes.iter().map(|r| (*r, "c")).collect();
        Router::new(&triggers(&pairs)).unwrap_err()
    }

    #[test]
    fn exact_routes_match_only_themselves() {
        let r = router(&[("/", "root"), ("/foo", "foo"), ("/foo/bar", "bar")]);
        assert_eq!(component(&r, "/"), Some("root"));
        assert_eq!(component(&r, "/foo"), Some("foo"));
        assert_eq!(component(&r, "/foo/bar"), Some("bar"));
        assert_eq!(component(&r, "/foo/"), None);
        assert_eq!(component(&r, "/foobar"), None);
        assert_eq!(component(&r, "/foo/bar/baz"), None);
        assert_eq!(component(&r, ""), None);
        let m = r.route("/foo").unwrap();
        assert_eq!(
            m,
            RouteMatch {
                component: "foo",
                route: "/foo",
                params: vec![],
                trailing: String::new()
            }
        );
    }

    #[test]
    fn wildcards_match_the_prefix_and_below_with_the_trailing_path() {
        let r = router(&[("/foo/...", "foo")]);
        let at = |path| r.route(path).map(|m| m.trailing);
        assert_eq!(at("/foo"), Some(String::new()));
        assert_eq!(at("/foo/"), Some("/".to_owned()));
        assert_eq!(at("/foo/bar"), Some("/bar".to_owned()));
        assert_eq!(at("/foo/bar/baz"), Some("/bar/baz".to_owned()));
        assert_eq!(at("/foobar"), None);
        assert_eq!(at("/"), None);
        assert_eq!(r.route("/foo/x").unwrap().route, "/foo/...");
    }

    #[test]
    fn catch_all_matches_everything_with_the_whole_path_trailing() {
        let r = router(&[("/...", "all")]);
        assert_eq!(r.route("/").unwrap().trailing, "/");
        assert_eq!(r.route("/a/b").unwrap().trailing, "/a/b");
        assert_eq!(component(&r, "/anything/at/all"), Some("all"));
        assert_eq!(component(&r, "no-slash"), None);
    }

    #[test]
    fn exact_beats_wildcard_and_longest_prefix_wins() {
        let r = router(&[
            ("/...", "all"),
            ("/api/...", "api"),
            ("/api/v2/...", "v2"),
            ("/api/v2/health", "health"),
            ("/api", "api-root"),
        ]);
        assert_eq!(component(&r, "/api"), Some("api-root"));
        assert_eq!(component(&r, "/api/x"), Some("api"));
        assert_eq!(component(&r, "/api/v2"), Some("v2"));
        assert_eq!(component(&r, "/api/v2/users"), Some("v2"));
        assert_eq!(component(&r, "/api/v2/health"), Some("health"));
        assert_eq!(component(&r, "/api/v2/health/deep"), Some("v2"));
        assert_eq!(component(&r, "/other"), Some("all"));
        assert_eq!(component(&r, "/"), Some("all"));
    }

    #[test]
    fn parameters_capture_segments() {
        let r = router(&[("/users/:id", "user"), ("/users/:id/posts/:post", "post")]);
        let m = r.route("/users/42").unwrap();
        assert_eq!(m.params, vec![("id".to_owned(), "42".to_owned())]);
        assert_eq!(m.trailing, "");
        let m = r.route("/users/42/posts/7").unwrap();
        assert_eq!(m.component, "post");
        assert_eq!(
            m.params,
            vec![("id".into(), "42".into()), ("post".into(), "7".into())]
        );
        assert_eq!(component(&r, "/users"), None);
        assert_eq!(
            component(&r, "/users/"),
            None,
            "parameters do not capture empty segments"
        );
        assert_eq!(component(&r, "/users/42/"), None);
        assert_eq!(component(&r, "/users/42/posts"), None);
    }

    #[test]
    fn literals_beat_parameters_which_beat_wildcards() {
        let r = router(&[
            ("/users/...", "users-any"),
            ("/users/:id", "user"),
            ("/users/me", "me"),
            ("/users/:id/...", "user-any"),
            ("/users/me/...", "me-any"),
        ]);
        assert_eq!(component(&r, "/users/me"), Some("me"));
        assert_eq!(component(&r, "/users/7"), Some("user"));
        assert_eq!(component(&r, "/users"), Some("users-any"));
        assert_eq!(component(&r, "/users/7/x"), Some("user-any"));
        assert_eq!(component(&r, "/users/me/x"), Some("me-any"));
        let m = r.route("/users/7/a/b").unwrap();
        assert_eq!(
            (m.params, m.trailing.as_str()),
            (vec![("id".into(), "7".into())], "/a/b")
        );
    }

    #[test]
    fn parameter_routes_with_literals_earlier_win() {
        let r = router(&[("/:kind/items", "by-kind"), ("/shop/:item", "shop")]);
        assert_eq!(component(&r, "/shop/items"), Some("shop"));
        assert_eq!(component(&r, "/toys/items"), Some("by-kind"));
    }

    #[test]
    fn invalid_routes_are_rejected_naming_the_route() {
        let cases: [(&str, &str); 10] = [
            ("foo", "must start with `/`"),
            ("", "must start with `/`"),
            ("/foo//bar", "empty segment"),
            ("/foo/", "empty segment"),
            ("/.../foo", "`...` may only be the whole last segment"),
            ("/foo...", "`...` may only be the whole last segment"),
            ("/users/:", "parameter segment `:`"),
            ("/users/:a.b", "parameter segment `:a.b`"),
            ("/a?b=1", "'?'"),
            ("/a b", "' '"),
        ];
        for (route, expected) in cases {
            let message = error(&[route]).to_string();
            assert!(
                message.contains(&format!("`{route}`")),
                "{route}: {message}"
            );
            assert!(message.contains(expected), "{route}: {message}");
        }
        let message = error(&["/x/:id/y/:id"]).to_string();
        assert!(message.contains("parameter name `id` twice"), "{message}");
    }

    #[test]
    fn duplicate_routes_are_rejected_with_both_named() {
        let e = error(&["/a", "/b/...", "/b/..."]);
        assert_eq!(
            e,
            RouteError::Duplicate {
                route: "/b/...".into(),
                other: "/b/...".into(),
                index: 2
            }
        );
        let message = error(&["/u/:id", "/u/:name"]).to_string();
        assert!(
            message.contains("`/u/:name` duplicates route `/u/:id`"),
            "{message}"
        );
        // Same prefix, but one is exact and one a wildcard: both allowed.
        router(&[("/a", "x"), ("/a/...", "y"), ("/a/:p", "z")]);
    }

    #[test]
    fn an_empty_router_matches_nothing() {
        let r = router(&[]);
        assert!(r.route("/").is_none());
    }
}
